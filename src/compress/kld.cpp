#include "compress/kld.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "compress/calib.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/logits.h"
#include "engine/model.h"
#include "eval/run.h"

namespace cogumi {

namespace {

// log-softmax of one row into `out`; returns the argmax.
int log_softmax(const float* logits, int n, float* out) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (logits[i] > logits[best]) best = i;
  const double mx = logits[best];
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(sum);
  for (int i = 0; i < n; ++i) out[i] = float(double(logits[i]) - lse);
  return best;
}

// One model's scored rows of one chunk: log-probabilities, argmax, and the next token's NLL.
struct Scored {
  std::vector<float> logp;  // [n_rows][n_vocab]
  std::vector<int> argmax;
  double nll = 0;
};

// Rows first..n_ctx-2 predict tokens first+1..n_ctx-1 (llama-perplexity's second half).
Scored score_chunk(const Model& m, const std::vector<Token>& chunk, int first, int n_threads) {
  const int n_vocab = m.n_vocab(), n_ctx = int(chunk.size()), n_rows = n_ctx - 1 - first;
  std::vector<float> logits = model_logits(m, chunk, "", 1.0f, n_threads);
  Scored s;
  s.logp.resize(size_t(n_rows) * n_vocab);
  s.argmax.resize(size_t(n_rows));
  for (int r = 0; r < n_rows; ++r) {
    float* lp = s.logp.data() + size_t(r) * n_vocab;
    s.argmax[size_t(r)] = log_softmax(logits.data() + size_t(first + r) * n_vocab, n_vocab, lp);
    s.nll -= lp[chunk[size_t(first + r + 1)]];
  }
  return s;
}

struct Accum {
  std::vector<float> kld;
  int64_t agree = 0;
  double nll = 0;
};

double quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  size_t k = size_t(std::min<double>(double(v.size() - 1), std::floor(q * double(v.size() - 1) + 0.5)));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

double eval_accuracy(const ReportOptions& o, const fs::path& model, const std::string& name) {
  EvalOptions e;
  e.model = model;
  for (const auto& s : o.benches) e.benches.push_back(parse_bench_spec(s));
  e.limit = o.eval_limit;
  e.out_dir = o.eval_dir / name;
  e.progress = o.progress;
  e.validate();
  json summary = run_eval(e);
  return summary["total"]["accuracy"].get<double>();
}

}  // namespace

double kl_divergence(const float* base_logits, const float* cand_logits, int n_vocab) {
  std::vector<float> p(static_cast<size_t>(n_vocab)), q(static_cast<size_t>(n_vocab));
  log_softmax(base_logits, n_vocab, p.data());
  log_softmax(cand_logits, n_vocab, q.data());
  double kl = 0;
  for (int i = 0; i < n_vocab; ++i) kl += std::exp(double(p[i])) * (double(p[i]) - double(q[i]));
  return std::max(0.0, kl);
}

void ReportOptions::validate() const {
  if (base.empty()) fail("report: BASE model is required");
  if (candidates.empty()) fail("report: at least one CANDIDATE model is required");
  if (data.empty()) fail("report: --data is required");
  for (const auto& p : std::vector<fs::path>{base, data})
    if (!fs::exists(p)) fail("report: file not found: '{}'", p.string());
  for (const auto& c : candidates)
    if (!fs::exists(c)) fail("report: candidate model not found: '{}'", c.string());
  if (ctx < 16 || ctx > 131072) fail("report: --ctx must be in [16, 131072] tokens (got {})", ctx);
  if (chunks < 0) fail("report: --chunks must be >= 0 (got {})", chunks);
  if (n_threads < 0) fail("report: --threads must be >= 0 (got {})", n_threads);
  if (eval_limit > 0 && benches.empty()) fail("report: --eval-limit needs at least one --bench KIND=PATH");
  for (const auto& b : benches) parse_bench_spec(b);
}

ReportResult compress_report(const ReportOptions& opts) {
  opts.validate();
  auto t0 = std::chrono::steady_clock::now();
  engine_init();
  ModelOptions mo;
  mo.repack = opts.repack;
  auto base = Model::load(opts.base, mo);
  std::vector<std::shared_ptr<Model>> cands;
  for (const auto& c : opts.candidates) {
    cands.push_back(Model::load(c, mo));
    if (cands.back()->n_vocab() != base->n_vocab())
      fail("report: '{}' has a vocabulary of {} tokens, the base '{}' {}", c.string(), cands.back()->n_vocab(),
           opts.base.string(), base->n_vocab());
  }
  auto chunks = calibration_chunks(*base, load_calibration_text(opts.data), opts.ctx, opts.chunks, 1, opts.data.string());
  const int n_vocab = base->n_vocab(), first = opts.ctx / 2;
  double base_nll = 0;
  std::vector<Accum> acc(cands.size());
  Progress bar("report", int64_t(chunks.size()), opts.progress);
  for (size_t ci = 0; ci < chunks.size(); ++ci) {
    Scored b = score_chunk(*base, chunks[ci], first, opts.n_threads);
    base_nll += b.nll;
    for (size_t k = 0; k < cands.size(); ++k) {
      Scored c = score_chunk(*cands[k], chunks[ci], first, opts.n_threads);
      acc[k].nll += c.nll;
      for (size_t r = 0; r < b.argmax.size(); ++r) {
        const float* p = b.logp.data() + r * size_t(n_vocab);
        const float* q = c.logp.data() + r * size_t(n_vocab);
        double kl = 0;
        for (int i = 0; i < n_vocab; ++i) kl += std::exp(double(p[i])) * (double(p[i]) - double(q[i]));
        acc[k].kld.push_back(float(std::max(0.0, kl)));
        acc[k].agree += b.argmax[r] == c.argmax[r];
      }
    }
    bar.update(int64_t(ci + 1));
  }
  bar.finish();
  ReportResult r;
  r.base = opts.base.string();
  r.base_bytes = fs::file_size(opts.base);
  r.n_chunks = int(chunks.size());
  r.ctx = opts.ctx;
  r.n_scored = int64_t(chunks.size()) * (opts.ctx - 1 - first);
  r.base_ppl = std::exp(base_nll / double(r.n_scored));
  if (opts.eval_limit > 0) r.base_accuracy = eval_accuracy(opts, opts.base, "base");
  for (size_t k = 0; k < cands.size(); ++k) {
    KldStats s;
    s.path = opts.candidates[k].string();
    s.bytes = fs::file_size(opts.candidates[k]);
    double sum = 0;
    for (float v : acc[k].kld) sum += v;
    s.kld_mean = sum / double(acc[k].kld.size());
    s.kld_median = quantile(acc[k].kld, 0.5);
    s.kld_p99 = quantile(acc[k].kld, 0.99);
    s.kld_max = *std::max_element(acc[k].kld.begin(), acc[k].kld.end());
    s.top1_agreement = double(acc[k].agree) / double(r.n_scored);
    s.ppl = std::exp(acc[k].nll / double(r.n_scored));
    s.ppl_ratio = s.ppl / r.base_ppl;
    if (opts.eval_limit > 0) {
      s.accuracy = eval_accuracy(opts, opts.candidates[k], fmt::format("candidate-{}", k));
      s.accuracy_delta = s.accuracy - r.base_accuracy;
    }
    r.candidates.push_back(s);
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json report_json(const ReportResult& r) {
  nlohmann::json c = nlohmann::json::array();
  for (const auto& s : r.candidates) {
    nlohmann::json j = {{"path", s.path},         {"bytes", s.bytes},
                        {"size_ratio", r.base_bytes ? double(s.bytes) / double(r.base_bytes) : 0.0},
                        {"kld_mean", s.kld_mean}, {"kld_median", s.kld_median},
                        {"kld_p99", s.kld_p99},   {"kld_max", s.kld_max},
                        {"top1_agreement", s.top1_agreement}, {"ppl", s.ppl},
                        {"ppl_ratio", s.ppl_ratio}};
    if (s.accuracy >= 0) {
      j["accuracy"] = s.accuracy;
      j["accuracy_delta"] = s.accuracy_delta;
    }
    c.push_back(j);
  }
  nlohmann::json out = {{"base", r.base},          {"base_bytes", r.base_bytes}, {"base_ppl", r.base_ppl},
                        {"chunks", r.n_chunks},     {"ctx", r.ctx},               {"scored_tokens", r.n_scored},
                        {"candidates", c},          {"seconds", r.seconds}};
  if (r.base_accuracy >= 0) out["base_accuracy"] = r.base_accuracy;
  return out;
}

std::string report_table(const ReportResult& r) {
  std::string t = fmt::format("base {} ({:.2f} MiB), PPL {:.4f}; {} chunks x {} tokens, {} scored per model{}\n", r.base,
                              r.base_bytes / 1048576.0, r.base_ppl, r.n_chunks, r.ctx, r.n_scored,
                              r.base_accuracy >= 0 ? fmt::format(", accuracy {:.1f}%", 100 * r.base_accuracy) : "");
  t += fmt::format("{:<40} {:>9} {:>10} {:>10} {:>10} {:>8} {:>9}{}\n", "candidate", "MiB", "KLD mean", "median", "p99",
                   "same top", "PPL ratio", r.base_accuracy >= 0 ? "  acc delta" : "");
  for (const auto& s : r.candidates)
    t += fmt::format("{:<40} {:>9.2f} {:>10.6f} {:>10.6f} {:>10.6f} {:>7.2f}% {:>9.4f}{}\n", s.path, s.bytes / 1048576.0,
                     s.kld_mean, s.kld_median, s.kld_p99, 100 * s.top1_agreement, s.ppl_ratio,
                     s.accuracy >= 0 ? fmt::format("  {:+.1f} pts", 100 * s.accuracy_delta) : "");
  return t;
}

}  // namespace cogumi
