// cogumi/pipeline: the config's `compress:` section. What the pipeline does to the trained system
// to make it smaller (issue 15, "The pipeline"); the stages are in stages_compress.cpp.
//
//   compress:
//     quantize: q4_k_m            # any llama-quantize type (q8_0, q6_k, q5_k_m, iq4_xs, ...); omit: keep F16
//     imatrix: curriculum         # importance-matrix calibration text: "curriculum" (the curriculum's
//                                 # training splits, interleaved), a text/.jsonl file, or none.
//                                 # Default: curriculum when the config has one, else none
//     tensor_types: {output: q8_0, token_embd: q8_0}   # per-tensor overrides, regex -> ggml type
//     prune: {level: 0.2, what: [ffn], uniform: true, multiple: 0, calibration: PATH,
//             recover: {data: curriculum, steps: 200, lr: 2e-3, rank: 16, batch: 8, seq_len: 256, full: false}}
//                                 # structured pruning first (F16 base); calibration defaults to imatrix's;
//                                 # recover: fine-tuned after pruning (a LoRA merged back, or full with
//                                 # full: true) on SFT data ("curriculum": the base's mix, mix/train.jsonl)
//     lora_rank: 8                # each modifier's rank cut to this by SVD (lora shrink); omit: keep
//     pack: true                  # the compressed base packed losslessly (zstd, .czst), size reported
//     measure: {data: curriculum, ctx: 128, chunks: 16}  # KLD/agreement/PPL text: "curriculum" (the dev
//                                 # splits, interleaved) or a file; required without a curriculum
//     calib: {ctx: 128, chunks: 32}  # chunks of the imatrix and pruning calibration
//     eval: true                  # the compressed system on every test set (accuracy delta)
//
// What a user gets: the trained system is left as it is (WORK/system.yaml); the compressed system
// (the compressed base, the modifiers (shrunk), the router) is WORK/system.compressed.yaml, written
// there only when every gate that names a compress.* metric passed. Gate names (gates.h):
// compress.kld (mean), compress.kld_p99, compress.agreement (0..1), compress.ppl_ratio,
// compress.size_mb (compressed base + modifiers + router), compress.packed_mb (with the base packed),
// compress.accuracy_delta (points, the worst domain: compressed system minus routed system).
// A pruned base changes the shapes the modifiers were trained on, so with `prune` the compressed
// system is the pruned (and recovered) base alone and its accuracy delta is against the base.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/io.h"

namespace YAML {
class Node;
}

namespace cogumi {

struct CompressSource {  // calibration or measurement text
  bool curriculum = false;
  fs::path file;  // when not the curriculum; both empty: none
  bool none() const { return !curriculum && file.empty(); }
};

struct CompressConfig {
  bool enabled = false;
  std::string quantize;                   // llama-quantize type; empty: no quantization
  CompressSource imatrix;                 // none: quantize without an importance matrix
  bool imatrix_set = false;               // given in the file (else the default applies)
  std::vector<std::string> tensor_types;  // "regex=type"
  double prune_level = 0;                 // (0, 0.9]; 0: no pruning
  std::vector<std::string> prune_what = {"ffn"};
  bool prune_uniform = true;              // one width in every layer (llama); false: deci
  int prune_multiple = 0;                 // 0..65536 (0: auto)
  CompressSource prune_calib;             // default: imatrix's source, else the curriculum
  bool recover = false;                   // prune.recover given
  CompressSource recover_data;            // SFT JSONL; curriculum: its mix/train.jsonl
  int recover_steps = 200;                // 1..10^6
  double recover_lr = 2e-3;               // (0, 1]
  int recover_rank = 16;                  // 1..4096
  int recover_batch = 8;                  // 1..4096
  int recover_seq_len = 256;              // 16..65536
  bool recover_full = false;
  int lora_rank = 0;                      // 1..4096; 0: modifiers kept as they are
  bool pack = false;
  CompressSource measure;                 // KLD text
  int measure_ctx = 128;                  // 16..65536
  int measure_chunks = 16;                // 1..4096
  int calib_ctx = 128;                    // 16..65536
  int calib_chunks = 32;                  // 1..4096
  bool eval = true;
  json to_json() const;                   // the settings (without file identities)
  // Cross-field checks; `curriculum`: the config has one. Throws Error naming compress.KEY.
  void validate(bool curriculum) const;
};

namespace pipeline_detail {
class Reader;
// Reads the `compress:` mapping into `c` (every key checked; errors name FILE:LINE and the key).
void read_compress(const Reader& r, const YAML::Node& n, bool curriculum, CompressConfig& c);
}  // namespace pipeline_detail

}  // namespace cogumi
