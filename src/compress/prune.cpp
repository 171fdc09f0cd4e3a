#include "compress/prune.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "compress/calib.h"
#include "compress/prune_gguf.h"
#include "compress/prune_plan.h"
#include "compress/prune_recover.h"
#include "compress/prune_stats.h"
#include "core/error.h"
#include "core/io.h"
#include "engine/logits.h"
#include "engine/model.h"

namespace cogumi {

namespace {

// A calibration or evaluation file's tokens in chunks of exactly ctx, read as imatrix and the
// quality report read theirs (calib.h: a .jsonl file gives every string value of every record).
std::vector<std::vector<Token>> text_chunks(const Model& model, const fs::path& path, int ctx, int max_chunks,
                                            const char* option) {
  return calibration_chunks(model, load_calibration_text(path), ctx, max_chunks, 1,
                            fmt::format("{} '{}'", option, path.string()));
}

// log-softmax of one row, in place (double accumulation).
void log_softmax(std::vector<double>& row, const float* logits, int n) {
  double mx = logits[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, double(logits[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(logits[i]) - mx);
  const double lse = mx + std::log(s);
  row.resize(size_t(n));
  for (int i = 0; i < n; ++i) row[size_t(i)] = double(logits[i]) - lse;
}

// The parameter budget of each kind of structure: level x the layers' parameters, split by size.
PruneBudget make_budget(const PruneSource& src, const PruneOptions& o, int multiple) {
  std::set<std::string> what(o.what.begin(), o.what.end());
  const double total = o.level * double(src.n_layer_params());
  double ffn = 0, attn = 0;
  for (int il = 0; il < src.n_layer(); ++il) {
    ffn += 3.0 * src.n_embd() * src.n_ff(il);
    attn += double(src.n_embd()) * src.head_dim() * (2.0 * src.n_head(il) + 2.0 * src.n_head_kv(il));
  }
  const double layers = double(src.n_layer_params());
  const double sum = (what.count("ffn") ? ffn : 0) + (what.count("heads") ? attn : 0) + (what.count("layers") ? layers : 0);
  PruneBudget b;
  b.uniform = o.uniform;
  b.multiple = multiple;
  if (what.count("layers"))
    b.drop_layers = int(std::llround(total * layers / sum / (layers / src.n_layer())));
  // What the dropped layers do not cover goes to the other kinds, in proportion to their size.
  const double rest = std::max(0.0, total - b.drop_layers * (layers / src.n_layer()));
  const double other = (what.count("ffn") ? ffn : 0) + (what.count("heads") ? attn : 0);
  if (other > 0) {
    if (what.count("ffn")) b.ffn_params = uint64_t(rest * ffn / other);
    if (what.count("heads")) b.head_params = uint64_t(rest * attn / other);
  }
  return b;
}

}  // namespace

void PruneOptions::validate() const {
  if (model.empty()) fail("prune: -m/--model is required");
  if (calib.empty()) fail("prune: --calib is required");
  if (out.empty()) fail("prune: -o/--out is required");
  if (fs::exists(out) && fs::exists(model) && fs::equivalent(out, model)) fail("prune: --out '{}' is the input model", out.string());
  if (!(level >= 0.0 && level <= 0.9)) fail("prune: --level {} is outside [0, 0.9]", level);
  if (what.empty()) fail("prune: --what names no structure (ffn, heads, layers)");
  std::set<std::string> seen;
  for (const auto& w : what) {
    if (w != "ffn" && w != "heads" && w != "layers") fail("prune: --what '{}' is not one of ffn, heads, layers", w);
    if (!seen.insert(w).second) fail("prune: --what names '{}' twice", w);
  }
  if (multiple < 0 || multiple > 65536) fail("prune: --multiple {} is outside [0, 65536]", multiple);
  if (ctx < 16 || ctx > 16384) fail("prune: --ctx {} is outside [16, 16384]", ctx);
  if (max_chunks < 1 || max_chunks > 100000) fail("prune: --chunks {} is outside [1, 100000]", max_chunks);
  if (eval_chunks < 1 || eval_chunks > 100000) fail("prune: --eval-chunks {} is outside [1, 100000]", eval_chunks);
  if (n_threads < 0 || n_threads > 1024) fail("prune: --threads {} is outside [0, 1024]", n_threads);
  if (recover_data.empty()) return;
  if (!fs::exists(recover_data)) fail("prune: --recover-data '{}' not found", recover_data.string());
  if (recover_steps < 1 || recover_steps > 1000000) fail("prune: --recover-steps {} is outside [1, 1000000]", recover_steps);
  if (!(recover_lr > 0.0f && recover_lr <= 1.0f)) fail("prune: --recover-lr {} is outside (0, 1]", recover_lr);
  if (recover_rank < 1 || recover_rank > 4096) fail("prune: --recover-rank {} is outside [1, 4096]", recover_rank);
  if (recover_batch < 1 || recover_batch > 4096) fail("prune: --recover-batch {} is outside [1, 4096]", recover_batch);
  if (recover_seq_len < 16 || recover_seq_len > 65536)
    fail("prune: --recover-seq-len {} is outside [16, 65536]", recover_seq_len);
  if (fs::exists(model) && fs::exists(unrecovered_path(out)) && fs::equivalent(unrecovered_path(out), model))
    fail("prune: the model before recovery would be written over the input '{}'; choose another --out", model.string());
}

nlohmann::json PruneResult::to_json() const {
  nlohmann::json layers_j = nlohmann::json::array();
  for (const auto& l : layers)
    layers_j.push_back({{"source_layer", l.source_layer}, {"n_ff", l.n_ff}, {"n_head", l.n_head}, {"n_head_kv", l.n_head_kv}});
  nlohmann::json j = {{"arch", arch},
                      {"multiple", multiple},
                      {"params_before", params_before},
                      {"params_after", params_after},
                      {"removed_fraction", params_before ? 1.0 - double(params_after) / double(params_before) : 0.0},
                      {"layer_params_before", layer_params_before},
                      {"layer_params_after", layer_params_after},
                      {"layer_removed_fraction",
                       layer_params_before ? 1.0 - double(layer_params_after) / double(layer_params_before) : 0.0},
                      {"file_bytes", file_bytes},
                      {"layers", layers_j}};
  auto q_json = [](const PruneQuality& q) {
    return nlohmann::json{{"n_tokens", q.n_tokens}, {"kld_mean", q.kld_mean},     {"kld_p99", q.kld_p99},
                          {"top1_agree", q.top1_agree}, {"ppl_base", q.ppl_base}, {"ppl_pruned", q.ppl_pruned}};
  };
  if (has_quality) j["quality"] = q_json(quality);
  if (recovered) {
    j["recovery"] = {{"mode", recovery.mode},
                     {"steps", recovery.steps},
                     {"skipped_steps", recovery.n_skipped},
                     {"first_loss", recovery.first_loss},
                     {"last_loss", recovery.last_loss},
                     {"seconds", recovery.seconds},
                     {"adapter", recovery.adapter.string()}};
    if (has_quality) j["quality_unrecovered"] = q_json(quality_unrecovered);
  }
  return j;
}

PruneResult prune_model(const PruneOptions& o) {
  o.validate();
  engine_init();
  PruneSource src(o.model);
  const int multiple = prune_multiple(src, o.multiple);
  PruneScores scores;
  {
    ModelOptions mo;
    auto model = Model::load(o.model, mo);
    const auto chunks = text_chunks(*model, o.calib, o.ctx, o.max_chunks, "--calib");
    scores = prune_scores(src, collect_prune_acts(*model, chunks, o.n_threads));
  }
  const std::vector<PruneLayerPlan> plan = plan_prune(src, scores, make_budget(src, o, multiple));
  const bool recover = !o.recover_data.empty();
  const fs::path pruned_path = recover ? unrecovered_path(o.out) : o.out;
  src.write_pruned(pruned_path, plan);
  PruneResult r;
  PruneSource pruned(pruned_path);
  r.arch = pruned.arch();
  r.multiple = multiple;
  r.params_before = src.n_params();
  r.params_after = pruned.n_params();
  r.layer_params_before = src.n_layer_params();
  r.layer_params_after = pruned.n_layer_params();
  for (int il = 0; il < pruned.n_layer(); ++il)
    r.layers.push_back({plan[size_t(il)].source, pruned.n_ff(il), pruned.n_head(il), pruned.n_head_kv(il)});
  if (recover) {
    r.recovery = recover_pruned(pruned_path, o.out, o);
    r.recovered = true;
  }
  r.file_bytes = uint64_t(fs::file_size(o.out));
  if (!o.eval.empty()) {
    r.quality = prune_quality(o.model, o.out, o.eval, o.ctx, o.eval_chunks, o.n_threads);
    if (recover) r.quality_unrecovered = prune_quality(o.model, pruned_path, o.eval, o.ctx, o.eval_chunks, o.n_threads);
    r.has_quality = true;
  }
  fs::path summary = o.out;
  summary.replace_extension(".prune.json");
  nlohmann::json j = r.to_json();
  j["model"] = o.model.string();
  j["calib"] = o.calib.string();
  j["level"] = o.level;
  j["what"] = o.what;
  j["uniform"] = o.uniform;
  if (recover) {
    j["recovery"]["data"] = o.recover_data.string();
    j["recovery"]["lr"] = o.recover_lr;
    j["recovery"]["rank"] = o.recover_full ? 0 : o.recover_rank;
    j["recovery"]["batch"] = o.recover_batch;
    j["recovery"]["seq_len"] = o.recover_seq_len;
    j["recovery"]["unrecovered"] = pruned_path.string();
  }
  write_file_atomic(summary, j.dump(2) + "\n");
  return r;
}

PruneQuality prune_quality(const fs::path& base, const fs::path& candidate, const fs::path& text, int ctx, int n_chunks,
                           int n_threads) {
  engine_init();
  auto mb = Model::load(base), mc = Model::load(candidate);
  if (mb->n_vocab() != mc->n_vocab())
    fail("'{}' has {} tokens, '{}' has {}: not the same vocabulary", base.string(), mb->n_vocab(), candidate.string(),
         mc->n_vocab());
  const auto chunks = text_chunks(*mb, text, ctx, n_chunks, "--eval");
  const int nv = mb->n_vocab();
  std::vector<double> klds, lp, lq;
  double nll_b = 0, nll_c = 0;
  int64_t agree = 0, n_pred = 0;
  for (const auto& chunk : chunks) {
    const std::vector<float> a = model_logits(*mb, chunk, "", 1.0f, n_threads), b = model_logits(*mc, chunk, "", 1.0f, n_threads);
    for (size_t i = 0; i < chunk.size(); ++i) {
      log_softmax(lp, &a[i * size_t(nv)], nv);
      log_softmax(lq, &b[i * size_t(nv)], nv);
      double kl = 0;
      for (int v = 0; v < nv; ++v) kl += std::exp(lp[size_t(v)]) * (lp[size_t(v)] - lq[size_t(v)]);
      klds.push_back(std::max(0.0, kl));
      agree += std::max_element(lp.begin(), lp.end()) - lp.begin() == std::max_element(lq.begin(), lq.end()) - lq.begin();
      if (i + 1 < chunk.size()) {
        nll_b -= lp[size_t(chunk[i + 1])];
        nll_c -= lq[size_t(chunk[i + 1])];
        n_pred++;
      }
    }
  }
  PruneQuality q;
  q.n_tokens = int(klds.size());
  for (double k : klds) q.kld_mean += k;
  q.kld_mean /= double(klds.size());
  std::sort(klds.begin(), klds.end());
  q.kld_p99 = klds[std::min(klds.size() - 1, size_t(0.99 * double(klds.size())))];
  q.top1_agree = double(agree) / double(q.n_tokens);
  q.ppl_base = std::exp(nll_b / double(std::max<int64_t>(1, n_pred)));
  q.ppl_pruned = std::exp(nll_c / double(std::max<int64_t>(1, n_pred)));
  return q;
}

}  // namespace cogumi
