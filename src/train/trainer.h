// cogumi/train: `cogumi train`. Supervised fine-tuning of a llama GGUF on ggml-opt (AdamW),
// LoRA or full-parameter, with prompt masking, on Cogumi's own static training graph (built
// once, reused for every micro-batch). Output: a LoRA adapter GGUF that llama.cpp loads, or a
// full model GGUF.
//
// With --val-split the best validated weights are kept and written; --patience stops early.
// Checkpoints (--save-steps) hold everything the loop needs; --resume continues from the last
// one along the same loss curve, and refuses a checkpoint of a run with other data (by content),
// model, optimizer, LoRA or schedule settings. A step whose gradient norm is not finite (with a
// finite loss) is skipped: no update, no checkpoint; kMaxSkips of them in a row stop the run.
// An epoch ends with a short micro-batch (and step) rather than wrapping to its first rows. Every layer runs on one device: the first GPU when there is one, or the one `device` names
// (cpu, gpu, gpu:N).
// Artifacts beside OUT: OUT.log.jsonl (one line per step), OUT.summary.json, OUT.loss.svg,
// OUT.ckpt.gguf (the checkpoint).
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <string>

#include "core/error.h"
#include "train/base_weights.h"
#include "train/lora_spec.h"
#include "train/sft_data.h"

struct ggml_backend;

namespace cogumi {

struct TrainGraphOptions;  // train/step.h

// The trainer's two benchmark switches, read from the environment in one place each and checked (an Error names a
// bad value): GGML_COGUMI_BACKWARD_WEIGHT_TYPE, the type of the frozen weights' transposed copies in patch 0002's
// backward ("" for unset or auto, else "f32" or "bf16"), and COGUMI_LORA_GROUP_FORWARD (true for split, false for
// unset or group). They change the floats' rounding and order, so resume fingerprints and pipeline keys record them.
std::string backward_weight_type_switch();
bool lora_forward_split_switch();

// One training file and its mixing weight: 1 uses every example once, 0.3 a seeded 30% sample,
// 2.5 every example twice plus a seeded half of them again.
struct DataSource {
  std::filesystem::path path;
  double weight = 1.0;
};
// "PATH" or "PATH:WEIGHT"; throws Error naming a bad weight.
DataSource parse_data_source(const std::string& spec);

struct TrainOptions {
  std::filesystem::path model;   // base GGUF; LoRA: any type, kept as is; full: F32/F16/BF16 (trained as F32)
  std::vector<DataSource> data;  // SFT JSONL files with mixing weights
  std::filesystem::path out;     // adapter GGUF (LoRA) or model GGUF (full)
  bool full = false;             // full-parameter training (--full); otherwise LoRA
  LoraSpec lora;                 // rank 16, alpha 16, all seven linear modules (ignored with full)
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
  std::vector<std::filesystem::path> val_data;  // or validate on these files (a dev split)
  int eval_steps = 0;            // validate every N optimizer steps (0: at the end of each epoch)
  int patience = 0;              // stop after this many validations without improvement (0: never)
  std::filesystem::path log;     // JSONL, one line per optimizer step (default OUT.log.jsonl)
  float clip = 1.0f;             // max global gradient norm (0: off)
  bool pack = false;             // pack several short examples into each row
  int save_steps = 0;            // checkpoint every N optimizer steps (0: only when interrupted)
  bool resume = false;           // continue from OUT.ckpt.gguf
  bool cpu_only = false;         // ignore GPUs
  double max_memory_gib = 0;     // refuse to start a run needing more on the device (0: its free memory)
  std::string device;            // "" or "auto": the first GPU, else the CPU; "cpu"; "gpu" or "gpu:N" (error without one)
  // Recompute each block's activations in the backward pass from its input (--checkpoint-activations):
  // far less activation memory at long sequences, one more forward pass per step; the same losses
  // and gradients, so it is not part of what --resume checks.
  bool checkpoint_activations = false;
  // Checkpoint only the first N blocks (--checkpoint-blocks, TrainGraphOptions::checkpoint_blocks): memory
  // and speed between none and --checkpoint-activations. 0: none. 0..65536, at most the model's blocks, or
  // kCheckpointBlocksAuto (--checkpoint-blocks auto): the fewest that fit the device (resolve_checkpoint_blocks).
  static constexpr int kCheckpointBlocksAuto = -1;
  int checkpoint_blocks = 0;
  // Flash attention in the forward pass, the attention probabilities recomputed in the backward
  // (--flash-attn, TrainGraphOptions::flash_attn): "auto" (on a GPU, off on the CPU), "on", "off".
  // Numerics change only by F16 rounding inside attention, so like checkpointing it is not part of
  // what --resume checks.
  std::string flash_attn = "auto";
  // With flash attention, its gradients by the fused kernels of patch 0009 or by the recomputed softmax
  // graph (--flash-attn-backward, TrainGraphOptions::fused_attention): "auto" (fused on a GPU whose backend
  // runs the kernels, backend_runs_fused_attention_back: NVIDIA cc 8.0+, head sizes 64 and 128; recomputed
  // otherwise), "fused", "recompute". Rounding-level changes only.
  std::string flash_attn_backward = "auto";
  // A quantized base's weights multiplied as BF16 copies dequantized on the fly in the forward
  // pass and for the input gradients (--dequant-forward, TrainGraphOptions::dequant_forward): "auto"
  // (on a GPU), "on", "off".
  // With flash attention or checkpointing only. Not part of what --resume checks.
  std::string dequant_forward = "auto";
  // F32 matmuls' gradients (LoRA A/B, attention) by OUT_PROD GEMMs that read the operands transposed
  // in place (--out-prod-grads, TrainGraphOptions::out_prod_grads): "auto" (on a GPU, whose OUT_PROD is
  // a GEMM; off on the CPU, whose OUT_PROD is fast only for products with a narrow side), "on", "off".
  // Off, the narrow products (a LoRA's A and B at rank >= 16) are still OUT_PROD on every backend
  // (patch 0012; GGML_COGUMI_NARROW_GRADS=0 keeps their copies). Rounding-level changes only.
  std::string out_prod_grads = "auto";
  // How a LoRA's frozen F16 or BF16 base is held (--base-weights): "file" (the file's types); "f32" (widened at
  // load, the same values: the CPU multiplies F32 by F32 without converting either operand and rounds no
  // activation to 16 bits; 16-bit weights convert both, a nano LoRA step ~8% slower on an AVX512-FP16 Xeon);
  // "bf16" (F16 rounded to the nearest BF16 at load: a CPU with AVX512-BF16 multiplies BF16 pairs at twice F32's
  // rate, a nano LoRA step 18-46% faster than F32 on a Zen 4 EPYC; the weights, the activations entering each base
  // matmul and, through patch 0002's BF16 transposed copies, the gradients flowing back through it are rounded to
  // BF16; the adapter is served on the file's F16 base); "auto": on the CPU, bf16 where it has AVX512-BF16, else f32 when the
  // widened weights take at most a quarter of its free memory and no --max-memory-gib is given; a GPU and
  // --full keep the file's types (--full widens every weight anyway). Rounding-level changes only.
  std::string base_weights = "auto";
  const std::atomic<bool>* cancel = nullptr;  // set (Ctrl-C): checkpoint and return
  // When set and above 0: the CPU threads from the next step on (cogumi run raises it when the stages beside
  // this one finish). A step's numbers are the same on any count.
  const std::atomic<int>* threads_live = nullptr;
  bool progress = true;
  // Every numeric option in its range; errors name the command-line option.
  void validate() const;
  // --flash-attn resolved for a run whose first backend is `device`.
  bool flash_attn_on(ggml_backend* device) const;
  // --flash-attn-backward resolved for a run whose first backend is `device` and a model of `head_dim`.
  bool fused_attention_on(ggml_backend* device, int head_dim) const;
  // --dequant-forward resolved for a run whose first backend is `device`.
  bool dequant_forward_on(ggml_backend* device) const;
  // --out-prod-grads resolved for a run whose first backend is `device`.
  bool out_prod_grads_on(ggml_backend* device) const;
  // --base-weights resolved for a run of `model` whose first backend is `device`: the type its F16/BF16
  // matrices are held in.
  BaseWeights base_weights_on(ggml_backend* device) const;
  // TrainGraphOptions with the options above resolved for `device`; COGUMI_LORA_GROUP_FORWARD=split
  // (a benchmark switch, bench/device.sh's SPLIT=) sets split_lora_groups, "group" or unset clears it.
  TrainGraphOptions graph_options(ggml_backend* device, int head_dim) const;
};

struct TrainStep {
  int step = 0;
  double loss = 0.0;             // mean cross-entropy over target tokens
  float lr = 0.0f;
  double tokens_per_s = 0.0;
  double val_loss = -1.0;        // set on validation steps
  double grad_norm = 0.0;        // before clipping
  bool skipped = false;          // the norm was not finite: no update was made
  int threads = 0;               // with threads_live: the CPU threads the step ran on (also in the log)
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
  bool interrupted = false;      // cancelled: a checkpoint was written, nothing else
  int resumed_from = 0;          // the checkpoint's step, when resumed
  int diverged_at = 0;           // first step the smoothed loss was flagged as diverging (0: never)
  int n_skipped = 0;             // steps whose update was skipped (non-finite gradient norm)
  std::vector<double> losses;    // per step, this process's steps only
  // Bytes on the training device: planned before anything was allocated (train/memory.h), and
  // what the run reserved (weights, LoRA, accumulators and moments, compute buffer).
  size_t memory_estimate = 0, memory_reserved = 0;
  // Positions per batch whose logits the loss computed (TrainGraphOptions::loss_rows; 0: all), and the batches
  // that held more targets than that and took extra passes (0 when loss_rows was sized from the run's batches).
  int64_t loss_rows = 0, loss_extra_passes = 0;
  BaseWeights base_weights = BaseWeights::file;  // how the base's 16-bit matrices were held (--base-weights)
};

// Flags a diverging run: after warm-up, the smoothed loss (EMA, weight 0.1) stays above 1.3x its
// best plus 0.05 for 20 steps in a row. update() returns true once, at the step it fires.
class DivergenceWatch {
 public:
  explicit DivergenceWatch(int warmup) : warmup_(warmup) {}
  bool update(int step, double loss);

 private:
  int warmup_, rising_ = 0;
  double ema_ = -1, best_ = -1;
  bool fired_ = false;
};

// What train() throws when --resume finds a checkpoint written by another run (other options, data,
// base weights or attention): a caller that resumes on its own (the pipeline) may start afresh instead.
class CheckpointMismatch : public Error {
 public:
  using Error::Error;
};

TrainResult train(const TrainOptions& opts, const std::function<void(const TrainStep&)>& on_step = {});

class ModelGraph;
// The graph's LoRA as an adapter GGUF in llama.cpp's layout, tagged with the base's architecture
// (llama.cpp checks it against the base it is applied to: `llama`, or `deci` for uneven prunes).
void save_lora(const ModelGraph& mg, const std::filesystem::path& out);

// Labels for a micro-batch: position (s * T + i) holds tokens[s][i + 1] when that token is a
// target, -1 otherwise (masked prompt tokens, padding). Returns the target count.
size_t make_labels(const std::vector<std::vector<Token>>& tokens, const std::vector<std::vector<uint8_t>>& target,
                   int T, std::vector<int32_t>& labels);

}  // namespace cogumi
