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
  // Same FFN width / head count in every layer (a llama GGUF); false: widths ranked across layers
  // (a deci GGUF). Uniform is the default: it measured better on the nano at every level, before and
  // after recovery (bench/RESULTS.md, "Structured pruning").
  bool uniform = true;
  int multiple = 0;                       // FFN width granularity (k-quants: 256); 0: auto
  int ctx = 128;                          // calibration chunk length (tokens)
  int max_chunks = 16;                    // calibration chunks read (cost: one forward each)
  fs::path eval;                          // optional held-out text: KLD/perplexity vs the original
  int eval_chunks = 8;
  int n_threads = 0;                      // 0: all cores
  // Recovery (with recover_data): the pruned model fine-tuned on SFT data (cogumi train's JSONL
  // formats, loss on the answers) becomes OUT; the model before it is kept as OUT stem +
  // ".unrecovered.gguf". A rank-`recover_rank` LoRA on all seven linear modules merged back into
  // the weights, or full-parameter SFT with recover_full. Warm-up 10% of the steps, cosine, packed rows.
  fs::path recover_data;
  int recover_steps = 200;                // optimizer steps, [1, 1e6]
  float recover_lr = 2e-3f;               // peak learning rate, (0, 1]
  bool recover_full = false;
  int recover_rank = 16;                  // [1, 4096]
  int recover_batch = 8;                  // sequences per step, [1, 4096]
  int recover_seq_len = 256;              // tokens per packed row, [16, 65536]
  uint64_t recover_seed = 1;
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

struct PruneRecovery {  // what recovery training did
  std::string mode;      // lora or full
  int steps = 0, n_skipped = 0;
  double first_loss = 0, last_loss = 0, seconds = 0;
  fs::path adapter;      // the LoRA merged in (lora mode)
};

struct PruneResult {
  std::string arch;                      // llama or deci
  int multiple = 0;                      // the FFN granularity used
  uint64_t params_before = 0, params_after = 0;        // every tensor
  uint64_t layer_params_before = 0, layer_params_after = 0;  // blk.* tensors
  uint64_t file_bytes = 0;
  std::vector<PruneLayerShape> layers;
  bool has_quality = false;
  PruneQuality quality;                  // of OUT (after recovery when there was one)
  bool recovered = false;
  PruneRecovery recovery;
  PruneQuality quality_unrecovered;      // with recovery and --eval: the pruned model before it
  nlohmann::json to_json() const;
};

// Prunes opts.model to opts.out (atomic write), recovers it when opts.recover_data is set, and
// writes OUT stem + ".prune.json". Throws Error on bad options,
// an unsupported model (quantized tensors, another architecture) or a level the shape cannot give.
PruneResult prune_model(const PruneOptions& opts);

// Quality of `candidate` against `base` on a text file: per-token KL(base || candidate), top-1
// agreement and both perplexities over up to n_chunks chunks of ctx tokens.
PruneQuality prune_quality(const fs::path& base, const fs::path& candidate, const fs::path& text, int ctx,
                           int n_chunks, int n_threads = 0);

}  // namespace cogumi
