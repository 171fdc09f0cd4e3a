// cogumi/train: the memory a training run needs, known before anything is allocated.
//
// The base is read for its tensor shapes and types only (no weights), the training graphs are
// built exactly as a run builds them, and ggml's graph allocator plans their compute buffer
// without allocating it (ggml_backend_sched_reserve_size). So the estimate is what the run
// will reserve: the weights in their types (F32 with --full), the LoRA tensors, the gradient
// accumulators and AdamW moments (F32, three per trained value), and the activations,
// their gradients, logits and loss of one micro-batch (--batch x --seq-len; logits for every row: on the CPU a
// run with prompt masking computes them only for rows that can have a target, TrainGraphOptions::loss_rows, and
// reserves less than estimated). Not counted: the
// backends' own scratch (ggml's CPU work buffer; on a GPU the CUDA context, cuBLAS workspace and
// ggml-cuda's pool) and the host's copy of the data (bench/RESULTS.md: RSS ~30 MiB over it on the nano).
// train() checks it against the device's free memory (and --max-memory-gib) before loading
// anything, and a run that will not fit stops with the numbers and the options that reduce it.
#pragma once

#include <string>
#include <vector>

#include "train/trainer.h"

struct ggml_backend;

namespace cogumi {

struct TrainMemory {
  std::string device;           // where the weights go: "CPU", "CUDA0", ...
  bool device_is_cpu = true;
  bool flash = false;           // flash attention (TrainOptions::flash_attn resolved for the device)
  size_t weights = 0;           // the base as held (its file's types; F32 with --full)
  size_t lora = 0;              // LoRA A and B (0 with --full: the weights are the parameters)
  size_t optimizer = 0;         // gradient accumulators, AdamW m and v, step inputs
  size_t activations = 0;       // compute buffer on the device: activations, gradients, logits
  size_t host_compute = 0;      // compute buffer on the CPU when the device is a GPU (copies, CPU-only ops)
  size_t best_copy = 0;         // host copy of the best validated weights (with validation)
  size_t device_free = 0;       // ggml_backend_dev_memory's free memory (CPU: MemAvailable when known)
  size_t limit = 0;             // what the run may use: device_free, or less with --max-memory-gib
  bool limit_from_option = false;
  size_t q4k_weights = 0;       // about what the weights would be as Q4_K (LoRA on a 16/32-bit base; else 0)
  int n_layer = 0;              // the model's blocks (what --checkpoint-blocks counts)
  // On a GPU, memory kept back beyond the allocator's plan for cuBLAS's workspace and ggml-cuda's pool
  // (scratch of dequantized weights, flash attention): the H200 ran 1.8 GiB above the plan with the CUDA
  // context, which the free memory read here already excludes (bench/RESULTS.md). 0 on the CPU.
  static constexpr size_t kGpuReserve = size_t(3) << 29;  // 1.5 GiB
  size_t gpu_reserve = 0;

  // Bytes on the device the weights go to (on the CPU, the host parts too; on a GPU, gpu_reserve too).
  size_t device_total() const;
  bool fits() const { return device_total() <= limit; }
  // A few lines: each part in GiB, the total and what is available.
  std::string report(const TrainOptions& o) const;
};

// The devices train() uses for `o` (--cpu, --device): the device first, the CPU last (or alone).
// The caller frees them (ggml_backend_free).
std::vector<ggml_backend*> train_devices(const TrainOptions& o);
// The estimate on these backends (train()'s list: the device first, the CPU last). Reads the
// base's GGUF header only.
TrainMemory estimate_train_memory(const TrainOptions& o, const std::vector<ggml_backend*>& backends);
// The same on the device train() would pick for `o` (`cogumi train --dry-run`).
TrainMemory estimate_train_memory(const TrainOptions& o);
// Throws an Error when `m` does not fit: GiB needed and available, and the options that reduce
// it, each with its estimate (half the batch, half the sequence, a Q4_K base).
void check_train_memory(const TrainMemory& m, const TrainOptions& o, const std::vector<ggml_backend*>& backends);
// The same on the devices train() would pick (`cogumi train --dry-run`).
void check_train_memory(const TrainMemory& m, const TrainOptions& o);
// --checkpoint-blocks auto (TrainOptions::kCheckpointBlocksAuto) resolved on these backends: 0 when the run fits
// as it is, else the fewest first blocks checkpointed that fit, else every block (checkpoint_activations) when
// that fits, else 0 (check_train_memory then says what else would need less). Any other value: unchanged.
// Returns a line saying what was chosen ("" when nothing was to choose).
std::string resolve_checkpoint_blocks(TrainOptions& o, const std::vector<ggml_backend*>& backends);
// The same on the devices train() would pick (`cogumi train --dry-run`).
std::string resolve_checkpoint_blocks(TrainOptions& o);

}  // namespace cogumi
