// cogumi/train: `cogumi train`. Supervised fine-tuning of a llama GGUF on ggml-opt (AdamW),
// LoRA or full-parameter, with prompt masking, on Cogumi's own static training graph (built
// once, reused for every micro-batch). Output: a LoRA adapter GGUF that llama.cpp loads, or a
// full model GGUF.
//
// With --val-split the best validated weights are kept and written; --patience stops early.
// Not yet: checkpoints and --resume, gradient clipping,
// packing, CUDA placement (the graph takes any ggml backend; only CPU
// is wired), labels are dense one-hot rows (n_vocab floats per position: fine for small
// vocabularies, too large for 128k-vocabulary models at long sequence lengths).
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "train/lora_spec.h"
#include "train/sft_data.h"

namespace cogumi {

// One training file and its mixing weight: 1 uses every example once, 0.3 a seeded 30% sample,
// 2.5 every example twice plus a seeded half of them again.
struct DataSource {
  std::filesystem::path path;
  double weight = 1.0;
};
// "PATH" or "PATH:WEIGHT"; throws Error naming a bad weight.
DataSource parse_data_source(const std::string& spec);

struct TrainOptions {
  std::filesystem::path model;   // base GGUF (F32 for full training; F32/F16 for LoRA)
  std::vector<DataSource> data;  // SFT JSONL files with mixing weights
  std::filesystem::path out;     // adapter GGUF (LoRA) or model GGUF (full)
  LoraSpec lora;                 // rank 0: full-parameter training
  SftOptions sft;
  int batch = 4;                 // sequences per micro-batch
  int grad_accum = 1;            // micro-batches per optimizer step
  int epochs = 1;
  int max_steps = 0;             // optimizer steps; 0: run the epochs
  float lr = 1e-3f;
  float weight_decay = 0.0f;
  float beta1 = 0.9f, beta2 = 0.999f;
  int warmup = 0;                // optimizer steps of linear warm-up
  std::string schedule = "cosine";  // cosine, linear, constant (after warm-up)
  uint64_t seed = 1;
  int n_threads = 0;
  double val_split = 0.0;        // share of examples held out for validation (the plan's 0.05)
  int eval_steps = 0;            // validate every N optimizer steps (0: at the end of each epoch)
  int patience = 0;              // stop after this many validations without improvement (0: never)
  std::filesystem::path log;     // JSONL, one line per optimizer step
  bool progress = true;
  void validate() const;
};

struct TrainStep {
  int step = 0;
  double loss = 0.0;             // mean cross-entropy over target tokens
  float lr = 0.0f;
  double tokens_per_s = 0.0;
  double val_loss = -1.0;        // set on validation steps
};

struct TrainResult {
  int steps = 0;
  double first_loss = 0.0, last_loss = 0.0;
  SftStats data;
  double tokens_per_s = 0.0;
  size_t n_train = 0, n_val = 0;  // examples after mixing and the validation split
  double best_val_loss = -1.0;   // the weights written are the best validated ones
  int best_step = 0;
  bool stopped_early = false;
};

TrainResult train(const TrainOptions& opts, const std::function<void(const TrainStep&)>& on_step = {});

// Dense labels for a micro-batch: row (s * T + i) is one-hot for tokens[s][i + 1] when that
// token is a target, zero otherwise (masked prompt tokens, padding). Returns the target count.
size_t make_labels(const std::vector<std::vector<Token>>& tokens, const std::vector<std::vector<uint8_t>>& target,
                   int T, int n_vocab, std::vector<float>& labels);

}  // namespace cogumi
