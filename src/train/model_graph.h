// cogumi/train: a llama-architecture model as a ggml graph Cogumi builds itself, for training.
//
// llama.cpp's own training entry (llama_opt_epoch) one-hot-labels every position (no prompt
// masking), rebuilds the graph per micro-batch and trains only model tensors (no LoRA), so the
// trainer builds the forward pass here, from the same GGUF weights, using only ggml ops that
// have a backward pass. The forward pass matches llama.cpp's logits for the same model and
// adapter (tests/train/model_graph_test.cpp), so what is trained is what llama.cpp serves.
// `deci` GGUFs (per-block FFN widths and head counts, as `cogumi compress prune` writes uneven
// ones) are read too and computed as llama.cpp's deci graph does: a llama block at each block's shape.
//
// Weights live in one backend buffer (CPU here; the same code takes a CUDA backend).
// LoRA: for each targeted weight W, trainable A [n_in, r] and B [r, n_out];
// y = W x + (alpha / r) * B (A x), as llama.cpp applies adapters (alpha 0 in an adapter file
// means scale 1 there, so here too).
// RoPE: rope_freqs.weight (Llama 3.1's frequency factors) and the rope scaling keys are applied
// as llama.cpp's llama graph applies them with its default context parameters.
#pragma once

#include <ggml-backend.h>
#include <ggml-cpu.h>
#include <ggml.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "train/base_weights.h"
#include "train/lora_spec.h"

struct gguf_context;

namespace cogumi {

// ggml_rope_ext's arguments as llama.cpp derives them from the GGUF (llama-model.cpp's hparams,
// llama-context.cpp's cparams with default context parameters).
struct RopeParams {
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;   // 1 / llama.rope.scaling.factor; 1 for scaling type "none"
  float ext_factor = 0.0f;   // 1 for yarn
  float attn_factor = 1.0f;  // yarn's magnitude correction times llama.rope.scaling.attn_factor
  float beta_fast = 32.0f, beta_slow = 1.0f;
  int n_ctx_orig = 0;        // llama.rope.scaling.original_context_length, else the training context
};

// One block's shape. The same in every block of a `llama` GGUF; per block in a `deci` GGUF
// (Llama-3.1-Nemotron's architecture, which `cogumi compress prune` writes for uneven widths).
struct LayerShape {
  int n_head = 0, n_head_kv = 0, n_ff = 0;
};

struct LlamaHparams {
  std::string arch = "llama";  // llama or deci: the GGUF's general.architecture (and its keys' prefix)
  // n_head, n_head_kv and n_ff are the largest over the blocks (the shape of a llama GGUF's every
  // block); `layers` holds each block's own.
  int n_vocab = 0, n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0, n_ff = 0, n_ctx_train = 0, n_rot = 0;
  int n_embd_head = 0;  // attention.key_length, else n_embd / block 0's head count (as llama.cpp)
  std::vector<LayerShape> layers;
  float rms_eps = 1e-5f;
  RopeParams rope;
  int head_dim() const { return n_embd_head; }
};

// Tensors of the forward graph that a training step treats specially (TrainGraph), recorded by
// ModelGraph::build_hidden, block 0 first.
struct GraphMarks {
  // Each block's input (the residual stream entering it): what --checkpoint-activations keeps
  // (train/checkpoint_graph.h).
  std::vector<ggml_tensor*> block_inputs;
  // Tensors cheap to recompute from the matmul outputs a block keeps: the attention probabilities
  // (scores, mask, softmax: [T, T] per head), the grouped-query K/V expansions, the RMS norms and
  // the SwiGLU activation and product. What flash attention's backward pass recomputes.
  std::vector<ggml_tensor*> recompute;
  // The BF16 copies of quantized weights (ModelGraph::set_dequant_forward), also in `recompute`: never kept
  // for the backward pass, whatever else a block keeps (partial checkpointing without flash attention).
  std::vector<ggml_tensor*> weight_copies;
  // One block's attention: out [hd, n_head, T, S] from q [hd, T, n_head, S] (a view), k and v
  // [hd, T, n_head_kv, S] (views) under `mask` (F32 [T, T, 1, S]) with the scale 1 / sqrt(hd).
  struct Attention {
    ggml_tensor *out = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *mask = nullptr;
    float scale = 1.0f;
  };
  std::vector<Attention> attention;
};

class ModelGraph {
 public:
  // Loads a llama or deci GGUF into `backend`'s memory. With `keep_file_types` (LoRA: the base is
  // frozen) each matrix stays in its file's type, F32, F16, BF16 or any quantized type: the
  // gradient through a frozen matmul is W^T dy, which patch 0002 computes with a matmul from a
  // dequantized, transposed copy made on the fly. Vectors (norms, rope_freqs) are always F32.
  // Without it (full-parameter training, where every weight is trained) F16 and BF16 weights are
  // widened to F32 and quantized ones are refused with an error naming the tensor, its type and
  // a command that makes a trainable copy. Throws Error for other architectures and for tensors
  // or settings this graph would not compute as llama.cpp does (biases, experts, longrope).
  // Without `load_data` nothing is allocated or read (a memory estimate, train/memory.h): the
  // tensors, LoRA ones too, have their shapes and types only, enough to build the graphs.
  // `hold_16bit` holds F16 and BF16 matrices as F32 (exactly: the same values) or BF16 (F16 rounded to the
  // nearest) even with `keep_file_types` (TrainOptions::base_weights: the CPU's defaults).
  ModelGraph(const std::filesystem::path& gguf, ggml_backend_t backend, bool keep_file_types = false,
             bool load_data = true, BaseWeights hold_16bit = BaseWeights::file);
  // The bytes `gguf`'s F16 and BF16 matrices take widened to F32 (its metadata only; 0 when none).
  static size_t widened_16bit_bytes(const std::filesystem::path& gguf);
  ~ModelGraph();
  ModelGraph(const ModelGraph&) = delete;
  ModelGraph& operator=(const ModelGraph&) = delete;

  const LlamaHparams& hparams() const { return hp_; }
  const std::string& arch() const { return hp_.arch; }  // llama or deci (its adapters must say the same)
  // Adds LoRA tensors or loads them from an adapter GGUF (`from`). Fresh ones start as PEFT's
  // do: A ~ Kaiming-uniform with a = sqrt(5), i.e. U(-1/sqrt(n_in), 1/sqrt(n_in)), seeded with
  // `seed`; B zero (unless init_b_std > 0), so the adapter starts as a no-op. Throws for an
  // unknown target.
  void add_lora(const LoraSpec& spec, uint64_t seed, const std::filesystem::path& from = {}, float init_b_std = 0.0f);
  bool has_lora() const { return has_lora_; }
  const LoraSpec& lora() const { return lora_; }
  // The factor on B (A x): alpha / rank, or 1 when alpha is 0 (llama.cpp's reading).
  float lora_scale() const;

  // Builds logits [n_vocab, n_tokens * n_seq] for tokens [n_tokens, n_seq] (I32) in `ctx`.
  // Without `mask`: `pos` is I32 [n_tokens] holding 0..n_tokens-1, attention is causal.
  // With `mask` (F32 [n_tokens, n_tokens, 1, n_seq], 0 where query i may attend key j, -inf
  // elsewhere): `pos` is I32 [n_tokens * n_seq], each token's position in its own example.
  // That is how packed rows keep their examples apart.
  // With `marks`, the tensors a training step treats specially are recorded there (GraphMarks).
  ggml_tensor* build_logits(ggml_context* ctx, ggml_tensor* tokens, ggml_tensor* pos, ggml_tensor* mask = nullptr,
                            GraphMarks* marks = nullptr) const;
  // build_logits in two parts: the final normed hidden state [n_embd, n_tokens * n_seq], and the
  // output projection of hidden rows [n_embd, rows] to logits [n_vocab, rows] (a loss can project
  // a chunk of rows at a time).
  ggml_tensor* build_hidden(ggml_context* ctx, ggml_tensor* tokens, ggml_tensor* pos, ggml_tensor* mask = nullptr,
                            GraphMarks* marks = nullptr) const;
  // The attention `a` by ggml's flash attention: K and V cast to F16 (its kernels' type), the mask
  // to F16 (or `mask16`, already cast); the result has the shape and meaning of a.out, without the [T, T]
  // probabilities. With `marks` the casts are marked for recomputation.
  ggml_tensor* flash_attention(ggml_context* ctx, const GraphMarks::Attention& a, ggml_tensor* mask16 = nullptr,
                               GraphMarks* marks = nullptr) const;
  ggml_tensor* output_logits(ggml_context* ctx, ggml_tensor* hidden) const;
  // The matrix output_logits multiplies by: output.weight, or token_embd.weight when tied.
  ggml_tensor* output_weight() const;

  // Quantized frozen weights multiplied in the forward pass as a BF16 copy dequantized on the fly
  // (one per matmul, marked for recomputation in GraphMarks::recompute): BF16 GEMMs on a GPU's
  // tensor cores instead of the quantized kernels. Only where the backward pass recomputes marked
  // tensors (flash attention, checkpointing): otherwise every block's copies would be kept.
  // The input gradient then multiplies by a BF16 copy too (patch 0002's auto type follows the copy):
  // BF16 tensor-core GEMMs in the backward pass as well, at a BF16 base's precision.
  void set_dequant_forward(bool on) { dequant_forward_ = on; }
  // A shared-input group's LoRA A product computed per module (one matmul per row range of the group's
  // tensor) rather than once for the group: the same values and gradients, in other kernels. A
  // benchmark switch (COGUMI_LORA_GROUP_FORWARD=split): 2-3.4% slower than grouped on the H200 at 8B, 5.4% at
  // 1B 4 x 1024.
  // Set while a graph is built.
  void set_split_lora_groups(bool on) { split_lora_groups_ = on; }
  // Attention as ggml_flash_attn_ext in the graph itself (K, V and the mask cast to F16, marked for
  // recomputation), differentiated by patch 0009's fused backward (ggml_cogumi_flash_attn_ext_back: no
  // [T, T] probabilities in either pass), rather than the plain softmax graph whose forward is replaced
  // by flash attention afterwards (TrainGraph::rebuild_backward). Set while a graph is built.
  void set_fused_attention(bool on) { fused_attention_ = on; }

  // Trainable tensors: LoRA A/B when LoRA is on, otherwise every weight (not rope_freqs: fixed
  // by the model's RoPE scaling, and ggml has no gradient for it). The LoRA A matrices of modules
  // that read the same input (a block's q/k/v, its gate/up) are one tensor, trained as one: its
  // rows are the modules' A matrices one after another (see lora_tensors).
  std::vector<ggml_tensor*> trainable() const;
  // name -> tensor, weights and LoRA.
  const std::map<std::string, ggml_tensor*>& tensors() const { return by_name_; }
  // The adapter's tensors by their llama.cpp names (blk.N.attn_q.weight.lora_a, ...): A matrices
  // of a shared-input group are contiguous views of their group's tensor.
  std::map<std::string, ggml_tensor*> lora_tensors() const;
  const std::filesystem::path& path() const { return path_; }
  // Bytes of the weights as held (after any widening).
  size_t weight_bytes() const;

 private:
  ggml_tensor* linear(ggml_context* ctx, ggml_tensor* x, const std::string& weight, GraphMarks* marks = nullptr) const;
  // The projections of one input by several weights, with their LoRA deltas (alpha / rank) B (A x)
  // (the scale applied to the rank-wide A x): one matmul for the A matrices of a shared-input group.
  std::vector<ggml_tensor*> linears(ggml_context* ctx, ggml_tensor* x, const std::vector<std::string>& weights,
                                    GraphMarks* marks = nullptr) const;
  ggml_tensor* rope(ggml_context* ctx, ggml_tensor* t, ggml_tensor* pos, bool per_token) const;
  // One block's attention as the plain softmax graph, out [hd, n_head, T, S] (also set in att.out, and att
  // recorded in marks for TrainGraph::rebuild_backward); v is the block's [hd, n_head_kv, T, S] values.
  ggml_tensor* plain_attention(ggml_context* ctx, GraphMarks::Attention& att, ggml_tensor* v, int n_head,
                               int n_head_kv, GraphMarks* marks) const;
  void read_hparams(gguf_context* g);
  void check_tensors();  // every tensor known and of its shape; sets n_vocab and rope_freqs_

  std::filesystem::path path_;
  LlamaHparams hp_;
  LoraSpec lora_;
  bool has_lora_ = false;
  bool dequant_forward_ = false;
  bool split_lora_groups_ = false;
  bool fused_attention_ = false;
  ggml_tensor* rope_freqs_ = nullptr;  // Llama 3.1 frequency factors, or null
  ggml_backend_t backend_;
  // Whether the weights live on the CPU backend, whose matmul takes strided operands through a slow dot-product loop.
  bool on_cpu() const { return backend_ && ggml_backend_is_cpu(backend_); }
  ggml_context* ctx_w_ = nullptr;   // weights (no_alloc; data in buf_w_)
  ggml_backend_buffer_t buf_w_ = nullptr;
  ggml_context* ctx_l_ = nullptr;   // LoRA tensors
  ggml_backend_buffer_t buf_l_ = nullptr;
  std::map<std::string, ggml_tensor*> by_name_;
  std::map<std::string, std::pair<ggml_tensor*, ggml_tensor*>> lora_ab_;  // weight name -> (A, B)
  std::vector<ggml_tensor*> lora_groups_;  // the shared-input groups' A tensors (their members' A are views)
};

}  // namespace cogumi
