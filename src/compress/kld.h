// cogumi/compress: what a compressed model costs in quality. The candidate's next-token
// distribution against the base's over the same calibration chunks (llama-perplexity
// --kl-divergence's footing: each chunk of n_ctx tokens scored on its second half): KL divergence
// KL(base || candidate) per token (mean, median, 99th percentile, max), top-1 agreement ("same
// top p"), perplexity of both and their ratio; optionally the accuracy change on benchmarks
// (the eval harness, greedy). The plan's gate is 95% top-1 agreement.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

struct ReportOptions {
  fs::path base;                     // required: the reference model (F16/F32, or the uncompressed one)
  std::vector<fs::path> candidates;  // required: one or more compressed models, each against `base`
  fs::path data;                     // required: text (.txt) or records (.jsonl, every string value)
  int ctx = 512;                     // tokens per chunk; each chunk is one batch per model
  int chunks = 16;                   // at most this many chunks (0: every chunk the data gives)
  int n_threads = 0;                 // 0: every core
  // Accuracy delta: each of these benchmarks ("kind=path", as cogumi eval --bench) run on the
  // base and each candidate, `eval_limit` items each (0: no accuracy delta), runs under eval_dir.
  std::vector<std::string> benches;
  size_t eval_limit = 0;
  fs::path eval_dir = "runs/compress-report";
  bool progress = true;
  // llama.cpp's CPU weight repacking (engine/model.h): off, so KLD is measured with the same
  // kernels on every CPU (as llama-perplexity --no-repack).
  bool repack = false;
  void validate() const;             // throws Error naming the option
};

struct KldStats {
  std::string path;
  uint64_t bytes = 0;
  double kld_mean = 0, kld_median = 0, kld_p99 = 0, kld_max = 0;
  double top1_agreement = 0;   // fraction of scored tokens where both models' argmax agree
  double ppl = 0;              // candidate's perplexity on the scored tokens
  double ppl_ratio = 0;        // ppl / base ppl
  double accuracy = -1, accuracy_delta = 0;  // with benches: candidate accuracy and minus the base's
};

struct ReportResult {
  std::string base;
  uint64_t base_bytes = 0;
  double base_ppl = 0;
  double base_accuracy = -1;
  int n_chunks = 0, ctx = 0;
  int64_t n_scored = 0;        // tokens scored per model
  std::vector<KldStats> candidates;
  double seconds = 0;
};

ReportResult compress_report(const ReportOptions& opts);

// Log-softmax statistics for one scored position, exposed for tests: KL(p || q) with p, q the
// softmax of the two logit rows.
double kl_divergence(const float* base_logits, const float* cand_logits, int n_vocab);

nlohmann::json report_json(const ReportResult& r);
std::string report_table(const ReportResult& r);

}  // namespace cogumi
