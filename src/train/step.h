// cogumi/train: one training step on ggml, owned by Cogumi rather than ggml-opt.
//
// ggml-opt keeps its AdamW moments and step count private, has no gradient clipping, and
// averages the loss over every row including masked ones. TrainGraph builds the same static
// graphs itself:
//   - forward + backward: logits -> cross-entropy over target rows only (loss = mean over the
//     micro-batch's target tokens), from token ids: softmax over the logits, each target row's
//     label probability picked with ggml_get_rows from a [1, n_vocab * rows] view, weighted by
//     1 / targets (0 for prompt and padding rows), so no dense one-hot labels [n_vocab, rows]
//     are uploaded per step; gradients accumulated in place into per-parameter buffers
//     (ggml_build_backward_expand with our accumulators), so gradient accumulation is free.
//     With TrainGraphOptions::checkpoint_activations the backward part reads recomputed copies
//     of each block's activations instead of the forward pass's (train/checkpoint_graph.h); with
//     TrainGraphOptions::flash_attn the forward's attention is ggml's flash attention and the
//     backward recomputes the attention probabilities (the same mechanism, a smaller set);
//   - forward only, for validation;
//   - the optimizer step: the global gradient norm (on the device), then, only when it is
//     finite, AdamW (ggml_opt_step_adamw) on accumulated gradients / micro-batches times the
//     clip factor min(1, clip / norm). A non-finite norm (an overflowing gradient) skips the
//     update: the weights, moments and step count stay as they were.
// Moments, accumulators and the step count are ours: checkpoints save and restore them exactly.
// Each row of a batch is one example or several packed ones; `mask` keeps packed examples apart.
#pragma once

#include <ggml-backend.h>
#include <ggml.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "train/model_graph.h"
#include "train/op_profile.h"

namespace cogumi {

// One micro-batch on the host, S rows of T tokens.
struct HostBatch {
  std::vector<int32_t> tokens;  // [S * T]
  std::vector<int32_t> pos;     // [S * T] position within its example
  std::vector<float> mask;      // [S * T * T] 0 or -inf, row-major [s][query][key]
  std::vector<int32_t> labels;  // [S * T] the token each position predicts; -1: no target (prompt, padding)
  size_t n_targets = 0;
  size_t n_tokens = 0;          // real (non-padding) tokens
};

struct AdamWParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float clip = 0.0f;  // max global gradient norm (0: no clipping)
};

// What a TrainGraph holds beyond the model's weights and LoRA tensors, in bytes.
struct TrainGraphBytes {
  size_t static_bytes = 0;     // inputs, gradient accumulators and AdamW moments (first backend)
  std::vector<size_t> compute;  // the scheduler's compute buffer per backend: activations, their
                                // gradients, logits and loss of the largest graph
};

// How the training graph is built.
struct TrainGraphOptions {
  // Activation checkpointing (train/checkpoint_graph.h): only each block's input outlives the
  // forward pass, the rest is recomputed block by block in the backward pass. Far less activation
  // memory at long sequences for one more forward pass; the same gradients. Default off.
  bool checkpoint_activations = false;
  // Partial checkpointing: only the first `checkpoint_blocks` blocks checkpointed as above, the others
  // keep their activations as without it; memory and recompute in between none and all (the blocks'
  // activations are about equal, so each checkpointed block saves about 1 / n_layer of the difference).
  // 0: none (checkpoint_activations: all); up to the model's block count (more is an error). 0..65536.
  int checkpoint_blocks = 0;
  // Attention by flash attention in the forward pass (ggml_flash_attn_ext, K and V in F16): no
  // [T, T] probabilities per head and block are kept for the backward pass, which recomputes them
  // (and the other tensors GraphMarks::recompute lists: norms, SwiGLU, K/V expansions) from the
  // matmul outputs each block keeps. Far less memory at long sequences for a recomputed softmax
  // per block; the gradients are the plain attention's at flash-computed activations (the kernels
  // round K and V, and on CUDA Q and the probabilities, to F16).
  bool flash_attn = false;
  // With flash_attn: attention's gradients by patch 0009's fused backward (ggml_cogumi_flash_attn_ext_back,
  // ModelGraph::set_fused_attention) instead of the recomputed softmax graph: no [T, T] tensors in the
  // backward pass either. CPU (a plain loop, for tests) and CUDA (head sizes 64 and 128).
  bool fused_attention = false;
  // Quantized frozen weights as BF16 copies dequantized per matmul in the forward pass and
  // recomputed in the backward (ModelGraph::set_dequant_forward): a GPU's BF16 GEMMs instead of
  // its quantized kernels, forward and backward (the input gradients' weight copies are BF16 too,
  // not F32). Takes effect with flash_attn or checkpointing (of any block) only.
  bool dequant_forward = false;
  // F32 x F32 matmuls' gradients (LoRA A/B, attention) as OUT_PROD GEMMs reading their operands
  // transposed in place (patch 0002's ggml_cogumi_set_out_prod_grads), not ggml_mul_mat of
  // transposed copies: on CUDA no [T, T] transposes per block. Off (the CPU's default), products with a
  // narrow side (a LoRA's A and B) are OUT_PROD anyway: the CPU runs them as register tiles (patch 0012).
  bool out_prod_grads = false;
  // ModelGraph::set_split_lora_groups: each module's LoRA A x by its own matmul, not one per group.
  bool split_lora_groups = false;
  // Rows of the loss's logits computed at a time (the output projection, softmax and picked
  // label probability per chunk). With checkpointing only one chunk's logits and probabilities
  // live at a time in the backward pass; the gradients are the same bit for bit whatever the
  // chunk. 0: automatic (all rows at once without checkpointing; with it, as many rows as keep a
  // chunk's F32 logits within 256 MiB). 0 or 1..2^20.
  int loss_chunk_rows = 0;
  // Rows of a batch whose logits are computed: 0, all T x S rows; N > 0: the batch's positions with a target are
  // gathered first (N of them, in order; unused ones padded with weight 0), so the output projection, softmax
  // and their gradients skip prompt and padding positions (with prompt masking most of a row). A batch with
  // more targets takes more than one pass (same loss and gradients, more time). The trainer sets it on the CPU
  // from its data (the largest batch of an epoch). 0..2^30.
  int loss_rows = 0;
  void validate() const;
  // Whether the backward graph is rebuilt to read recomputed tensors (train/checkpoint_graph.h).
  bool rebuilds_backward() const { return checkpoints() || flash_attn; }
  // Whether any block is checkpointed (checkpoint_activations or checkpoint_blocks).
  bool checkpoints() const { return checkpoint_activations || checkpoint_blocks > 0; }
};

class TrainGraph {
 public:
  // backends: the devices to use, CPU last (ggml's scheduler falls back to it).
  TrainGraph(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S, TrainGraphOptions opts = {});
  ~TrainGraph();
  TrainGraph(const TrainGraph&) = delete;
  TrainGraph& operator=(const TrainGraph&) = delete;

  // What a TrainGraph on `mg` would allocate, planned by ggml's graph allocator without
  // allocating: `mg` is loaded without data (ModelGraph's load_data false; its tensors are given
  // an empty placeholder buffer). The graphs are the ones a real TrainGraph builds.
  static TrainGraphBytes measure(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S,
                                 TrainGraphOptions opts = {});
  // What this one has reserved so far (the compute buffers grow to the largest graph run).
  TrainGraphBytes reserved() const;

  // Forward + backward; gradients are added to the accumulators. Returns the mean loss over
  // the batch's target tokens (0 when it has none).
  double accumulate(const HostBatch& b);
  // Forward only (validation): the mean loss over target tokens.
  double evaluate(const HostBatch& b);
  // AdamW on the accumulated gradients (averaged over `n_micro` micro-batches, then clipped),
  // then zeroes the accumulators. Returns the global gradient norm before clipping; when it is
  // not finite nothing is updated (the accumulators are still zeroed).
  double step(const AdamWParams& p, int n_micro);
  int64_t steps_done() const { return iter_; }
  // Passes past the first that batches with more targets than TrainGraphOptions::loss_rows took (loss_of).
  int64_t extra_passes() const { return extra_passes_; }

  // The trainable tensors and their accumulated gradients (sums over accumulate() calls since
  // the last step()), in the same order.
  const std::vector<ggml_tensor*>& params() const { return params_; }
  // The loss's vocabulary width: n_vocab, or n_vocab padded for the CPU's matmul (see Vp_).
  int loss_vocab() const { return Vp_; }
  const std::vector<ggml_tensor*>& gradients() const { return acc_; }
  // Nodes of the forward + backward graph with operation `op` (which kernels a step runs), only those
  // whose first source has type `src0_type` when it is not negative.
  int backward_op_count(int op, int src0_type = -1) const;

  // Optimizer state for checkpoints: m and v per trainable tensor, and the step count.
  std::vector<ggml_tensor*> moments() const;
  void set_steps_done(int64_t n) { iter_ = n; }

 private:
  TrainGraph(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S, TrainGraphOptions opts, bool measure);
  void make_static_tensors(bool measure);
  void build_graphs();
  void rebuild_backward(const GraphMarks& marks, ggml_tensor* hidden);
  void set_inputs(const HostBatch& b, size_t first_target = 0);
  ggml_tensor* build_loss(ggml_context* c, ggml_tensor* hidden);
  void compute(ggml_cgraph* g);
  void report_placement(ggml_cgraph* g) const;
  double loss_of(const HostBatch& b, ggml_cgraph* g);  // inputs, compute `g`, read the loss

  ModelGraph& mg_;
  std::vector<ggml_backend_t> backends_;
  int T_, S_, V_;
  // The loss's vocabulary: V_ rounded up to kVocabMultiple when the output weight is frozen, the
  // device is the CPU and V_ is not a multiple (the nano's 2,357): the backward matmul through the output weight contracts
  // over the vocabulary, and ggml's CPU sgemm takes only multiples of 16 (others fell back to a
  // dot-product loop 5x slower: 14% of a nano LoRA step). out_pad_ is the weight with zero rows
  // appended, pad_bias_ is 0 on real entries and -inf on padding, so softmax gives padding 0.
  int Vp_ = 0;
  static constexpr int kVocabMultiple = 32;
  ggml_tensor *out_pad_ = nullptr, *pad_bias_ = nullptr;
  std::vector<ggml_tensor*> held_;  // measuring: tensors given the placeholder buffer (released with it)
  int chunk_ = 1;  // rows per loss chunk (TrainGraphOptions::loss_chunk_rows resolved)
  int64_t loss_rows_ = 0;  // rows the loss computes logits for: T x S, or TrainGraphOptions::loss_rows gathered
  ggml_tensor* loss_sel_ = nullptr;  // with gathering: the batch rows (I32 [loss_rows_]) the loss reads
  TrainGraphOptions opts_;
  std::vector<ggml_tensor*> params_;
  ggml_context* ctx_static_ = nullptr;   // inputs, accumulators, moments, step parameters
  ggml_backend_buffer_t buf_static_ = nullptr;  // or, measuring, an empty placeholder
  size_t static_bytes_ = 0;
  ggml_context* ctx_graph_ = nullptr;    // graph nodes (no data)
  ggml_backend_sched_t sched_ = nullptr;
  ggml_tensor *tokens_ = nullptr, *pos_ = nullptr, *mask_ = nullptr, *label_idx_ = nullptr, *label_w_ = nullptr;
  ggml_tensor *seed_ = nullptr, *adamw_ = nullptr, *factor_ = nullptr, *inv_micro_ = nullptr;
  ggml_tensor *loss_ = nullptr, *norm_ = nullptr;
  std::vector<ggml_tensor*> acc_, m_, v_;
  ggml_cgraph *gf_ = nullptr, *gb_ = nullptr, *gnorm_ = nullptr, *gopt_ = nullptr;
  ggml_cgraph* allocated_ = nullptr;
  bool placement_reported_ = false;
  std::unique_ptr<OpProfile> profile_;  // COGUMI_TRAIN_PROFILE=1: per-op times
  int64_t iter_ = 0, extra_passes_ = 0;
  // per-step label indices, the batch's target positions, those of this pass, and weights (reused buffers)
  std::vector<int32_t> idx_host_, sel_all_, sel_host_;
  std::vector<float> w_host_;
};

// The trainer's device list: a GPU (all layers on it) unless `cpu_only`, then the CPU with
// n_threads. gpu < 0: the first GPU ggml knows, if any; gpu >= 0: that GPU, and an Error naming
// what exists when there is none (a CPU-only build says how to build with CUDA). Caller frees them.
std::vector<ggml_backend_t> train_backends(bool cpu_only, int n_threads, int gpu = -1);

// Whether backend `dev` itself runs patch 0009's fused attention backward for heads of `head_dim`: asked of the
// backend with a small op of that shape (the CUDA kernels need an NVIDIA GPU of compute capability 8.0 or later and
// head size 64 or 128; the CPU's loop takes any). Where it does not, ggml's scheduler would run the op on the CPU.
bool backend_runs_fused_attention_back(ggml_backend_t dev, int head_dim);

}  // namespace cogumi
