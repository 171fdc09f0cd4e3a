// cogumi/compress: structured pruning that makes llama.cpp faster for real. Unstructured sparsity
// buys llama.cpp nothing (no sparse kernels), so whole structures go: FFN neurons (rows of
// ffn_gate/ffn_up, columns of ffn_down), attention heads (whole key/value groups, so GQA stays
// valid) and whole layers. Each is ranked by an importance measure from calibration activations
// collected through llama.cpp's eval callback:
//   - FFN neuron j (Wanda, |W| x ||X|| summed per neuron): sum_i |G[j,i]| x_i + sum_i |U[j,i]| x_i
//     + h_j sum_o |D[o,j]|, x = the FFN input's column norms, h = ffn_down's input column norms;
//   - KV group: the same sum over the rows of attn_q/k/v and the columns of attn_output it owns;
//   - layer: block influence (ShortGPT), the mean of 1 - cos(layer input, layer output).
// Neuron and group scores are divided by their layer's mean so layers compare on one scale.
// One width and head count in every layer writes a `llama` GGUF; uneven ones write a `deci`
// GGUF (Llama-3.1-Nemotron's architecture: per-layer feed_forward_length and head counts), both
// loaded by stock llama.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

struct PruneOptions {
  fs::path model;                         // F32/F16/BF16 llama (or deci) GGUF
  fs::path calib;                         // calibration text (.jsonl: every string value; else text)
  fs::path out;                           // pruned GGUF (OUT.json beside it: the summary)
  double level = 0.2;                     // fraction of the layers' parameters removed, [0, 0.9]
  std::vector<std::string> what = {"ffn"};  // any of ffn, heads, layers; the budget is split by size
  bool uniform = false;                   // same FFN width / head count in every layer (llama arch)
  int multiple = 0;                       // FFN width granularity (k-quants: 256); 0: auto
  int ctx = 128;                          // calibration chunk length (tokens)
  int max_chunks = 16;                    // calibration chunks read (cost: one forward each)
  fs::path eval;                          // optional held-out text: KLD/perplexity vs the original
  int eval_chunks = 8;
  int n_threads = 0;                      // 0: all cores
  void validate() const;                  // throws Error naming the option
};

// One layer's shape (after pruning in PruneResult).
struct PruneLayerShape {
  int source_layer = 0;  // index in the original model
  int n_ff = 0, n_head = 0, n_head_kv = 0;
};

struct PruneQuality {  // the pruned model against the original on held-out text
  int n_tokens = 0;
  double kld_mean = 0, kld_p99 = 0, top1_agree = 0, ppl_base = 0, ppl_pruned = 0;
};

struct PruneResult {
  std::string arch;                      // llama or deci
  int multiple = 0;                      // the FFN granularity used
  uint64_t params_before = 0, params_after = 0;        // every tensor
  uint64_t layer_params_before = 0, layer_params_after = 0;  // blk.* tensors
  uint64_t file_bytes = 0;
  std::vector<PruneLayerShape> layers;
  bool has_quality = false;
  PruneQuality quality;
  nlohmann::json to_json() const;
};

// Prunes opts.model to opts.out (atomic write) and writes OUT.json. Throws Error on bad options,
// an unsupported model (quantized tensors, another architecture) or a level the shape cannot give.
PruneResult prune_model(const PruneOptions& opts);

// Quality of `candidate` against `base` on a text file: per-token KL(base || candidate), top-1
// agreement and both perplexities over up to n_chunks chunks of ctx tokens.
PruneQuality prune_quality(const fs::path& base, const fs::path& candidate, const fs::path& text, int ctx,
                           int n_chunks, int n_threads = 0);

}  // namespace cogumi
