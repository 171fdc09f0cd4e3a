#include "train/step.h"

#include <ggml-alloc.h>
#include <ggml-cpu.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <mutex>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <unordered_set>

#include <fmt/format.h>

#include "core/error.h"
#include "train/checkpoint_graph.h"
#include "train/trainer.h"  // backward_weight_type_switch

namespace cogumi {

namespace {
constexpr size_t kGraphSize = 32768;

// Attention's softmax is the one whose mask is the batch's causal mask; its input and its gradient dP (the input of
// SOFT_MAX_BACK) are [keys, queries] products whose outputs with key > query are unused; products that take P or dS
// themselves as src1 ([keys, queries], zero where key > query) sum only key <= query, and out_prods over the queries
// that take them (dV's, dK's) sum only the queries at or after each key. Operands reached through a view
// or a copy are left alone: their layout is not known to be [keys, queries].
void mark_causal_products(ggml_cgraph* g, const ggml_tensor* mask) {
  std::unordered_set<const ggml_tensor*> zero_above;  // P and dS
  auto mark = [](ggml_tensor* t, int mode) {
    if (t && t->op == GGML_OP_MUL_MAT) ggml_cogumi_mul_mat_set_causal(t, mode);
  };
  for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
    ggml_tensor* n = ggml_graph_node(g, i);
    if (n->op == GGML_OP_SOFT_MAX && mask && n->src[1] == mask) {
      zero_above.insert(n);
      mark(n->src[0], 1);
    }
  }
  for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
    ggml_tensor* n = ggml_graph_node(g, i);
    if (n->op == GGML_OP_SOFT_MAX_BACK && zero_above.count(n->src[1])) {
      zero_above.insert(n);
      mark(n->src[0], 1);
    }
  }
  for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
    ggml_tensor* n = ggml_graph_node(g, i);
    if (n->op == GGML_OP_MUL_MAT && zero_above.count(n->src[1])) mark(n, 2);
    // dV's (src0 = P) and dK's (src1 = dS) out_prods: each output sums only the queries at or after its key
    if (n->op == GGML_OP_OUT_PROD && zero_above.count(n->src[0])) ggml_cogumi_out_prod_set_causal(n, 1);
    if (n->op == GGML_OP_OUT_PROD && zero_above.count(n->src[1])) ggml_cogumi_out_prod_set_causal(n, 2);
  }
}
}  // namespace

std::vector<ggml_backend_t> train_backends(bool cpu_only, int n_threads, int gpu) {
  std::vector<ggml_backend_t> out;
  if (!cpu_only) {
    std::vector<ggml_backend_dev_t> gpus;
    for (size_t i = 0; i < ggml_backend_dev_count(); ++i)
      if (ggml_backend_dev_type(ggml_backend_dev_get(i)) == GGML_BACKEND_DEVICE_TYPE_GPU)
        gpus.push_back(ggml_backend_dev_get(i));
    if (gpu >= 0 && gpus.empty()) fail("--device gpu: no GPU backend in this build; rebuild with scripts/build.sh --cuda");
    if (gpu >= int(gpus.size())) fail("--device gpu:{}: this machine has {} GPU(s) (gpu:0..gpu:{})", gpu, gpus.size(), gpus.size() - 1);
    if (!gpus.empty()) {
      ggml_backend_t b = ggml_backend_dev_init(gpus[size_t(std::max(gpu, 0))], nullptr);
      if (!b && gpu >= 0) fail("--device gpu:{}: cannot start {}", gpu, ggml_backend_dev_name(gpus[size_t(gpu)]));
      if (b) out.push_back(b);
    }
  }
  ggml_backend_t cpu = ggml_backend_cpu_init();
  if (!cpu) fail("cannot start ggml's CPU backend");
  ggml_backend_cpu_set_n_threads(cpu, n_threads);
  out.push_back(cpu);
  return out;
}

bool backend_runs_fused_attention_back(ggml_backend_t dev, int head_dim) {
  ggml_init_params ip{8 * ggml_tensor_overhead(), nullptr, true};
  ggml_context* ctx = ggml_init(ip);
  if (!ctx) fail("out of memory for a 1 KB ggml context");
  const int T = 64, H = 2;  // a small op of the model's head size, in the types the trainer's graph uses
  ggml_tensor* q = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, head_dim, T, H, 1);
  ggml_tensor* k = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, head_dim, T, 1, 1);
  ggml_tensor* v = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, head_dim, T, 1, 1);
  ggml_tensor* mask = ggml_new_tensor_4d(ctx, GGML_TYPE_F16, T, T, 1, 1);
  ggml_tensor* o = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, head_dim, H, T, 1);
  ggml_tensor* d = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, head_dim, H, T, 1);
  ggml_tensor* op = ggml_cogumi_flash_attn_ext_back(ctx, q, k, v, mask, o, d, 1.0f);
  const bool ok = ggml_backend_supports_op(dev, op);
  ggml_free(ctx);
  return ok;
}

TrainGraph::TrainGraph(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S, TrainGraphOptions opts)
    : TrainGraph(mg, std::move(backends), T, S, opts, false) {}

TrainGraph::TrainGraph(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S, TrainGraphOptions opts,
                       bool measure)
    : mg_(mg), backends_(std::move(backends)), T_(T), S_(S), V_(mg.hparams().n_vocab), opts_(opts) {
  opts_.validate();
  params_ = mg.trainable();
  for (ggml_tensor* t : params_) ggml_set_param(t);
  // Padded only for the CPU's sgemm (a GPU's matmuls take any width; the copy would cost device memory).
  const bool out_frozen = !(mg.output_weight()->flags & GGML_TENSOR_FLAG_PARAM);
  const bool pad = out_frozen && ggml_backend_is_cpu(backends_.front());
  Vp_ = pad ? (V_ + kVocabMultiple - 1) / kVocabMultiple * kVocabMultiple : V_;
  loss_rows_ = opts_.loss_rows > 0 ? std::min<int64_t>(int64_t(T) * S, opts_.loss_rows) : int64_t(T) * S;
  const int64_t rows = loss_rows_;
  // Automatic: one chunk without checkpointing (every chunk's probabilities are kept for the
  // backward pass anyway, and each chunk's backward makes its own transposed copy of the output
  // weight, patch 0002); with it (of any block), chunks of at most 256 MiB of F32 logits (512 rows at a 128K
  // vocabulary: 4 chunks and 4 such copies at 1 x 2048).
  const int64_t auto_rows =
      opts_.checkpoints() ? std::max<int64_t>(1, (int64_t(256) << 20) / (4 * int64_t(Vp_))) : rows;
  chunk_ = int(std::min<int64_t>(rows, opts_.loss_chunk_rows > 0 ? opts_.loss_chunk_rows : auto_rows));
  // A label's index into its chunk's flattened probabilities is an I32.
  if (int64_t(Vp_) * chunk_ > int64_t(INT32_MAX))
    fail("a loss chunk of {} rows x {} vocabulary entries is over 2^31 logits: use fewer rows per chunk", chunk_, Vp_);
  make_static_tensors(measure);
  build_graphs();
  std::vector<ggml_backend_buffer_type_t> bufts;
  for (auto* b : backends_) bufts.push_back(ggml_backend_get_default_buffer_type(b));
  sched_ = ggml_backend_sched_new(backends_.data(), bufts.data(), int(backends_.size()), kGraphSize, false, true);
  if (!sched_) fail("cannot create the ggml scheduler for training");
  if (OpProfile::requested() && !measure) {
    profile_ = std::make_unique<OpProfile>();
    profile_->attach(sched_);
  }
}

// Inputs, gradient accumulators, AdamW moments and step parameters, on the first backend. When
// measuring, their size is taken and they (and the model's unallocated tensors) are given an
// empty placeholder buffer of that backend's type: the graph allocator then treats them as held
// elsewhere, as it treats the real ones, and plans only the compute buffer.
void TrainGraph::make_static_tensors(bool measure) {
  const int T = T_, S = S_;
  const size_t n_static = 18 + 3 * params_.size();
  ggml_init_params sp{n_static * ggml_tensor_overhead(), nullptr, true};
  ctx_static_ = ggml_init(sp);
  tokens_ = ggml_new_tensor_2d(ctx_static_, GGML_TYPE_I32, T, S);
  pos_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_I32, int64_t(T) * S);
  mask_ = ggml_new_tensor_4d(ctx_static_, GGML_TYPE_F32, T, T, 1, S);
  label_idx_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_I32, loss_rows_);
  label_w_ = ggml_new_tensor_2d(ctx_static_, GGML_TYPE_F32, 1, loss_rows_);
  if (loss_rows_ < int64_t(T) * S) {
    loss_sel_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_I32, loss_rows_);
    ggml_set_input(loss_sel_);
  }
  seed_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_F32, 1);
  adamw_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_F32, 7);
  factor_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_F32, 1);
  inv_micro_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_F32, 1);
  for (ggml_tensor* t : {tokens_, pos_, mask_, label_idx_, label_w_, seed_, adamw_, factor_, inv_micro_}) ggml_set_input(t);
  if (Vp_ != V_) {
    const ggml_tensor* w = mg_.output_weight();
    out_pad_ = ggml_new_tensor_2d(ctx_static_, w->type, w->ne[0], Vp_);
    pad_bias_ = ggml_new_tensor_1d(ctx_static_, GGML_TYPE_F32, Vp_);
  }
  for (ggml_tensor* p : params_) {
    acc_.push_back(ggml_new_tensor(ctx_static_, GGML_TYPE_F32, GGML_MAX_DIMS, p->ne));
    m_.push_back(ggml_new_tensor(ctx_static_, GGML_TYPE_F32, GGML_MAX_DIMS, p->ne));
    v_.push_back(ggml_new_tensor(ctx_static_, GGML_TYPE_F32, GGML_MAX_DIMS, p->ne));
  }
  ggml_backend_buffer_type_t buft = ggml_backend_get_default_buffer_type(backends_.front());
  if (measure) {
    static_bytes_ = ggml_backend_alloc_ctx_tensors_from_buft_size(ctx_static_, buft);
    buf_static_ = ggml_backend_buft_alloc_buffer(buft, 0);  // ggml's empty placeholder buffer
    auto hold = [&](ggml_tensor* t) {
      if (!t->buffer && !t->data && !t->view_src) {
        t->buffer = buf_static_;
        held_.push_back(t);
      }
    };
    for (ggml_tensor* t = ggml_get_first_tensor(ctx_static_); t; t = ggml_get_next_tensor(ctx_static_, t)) hold(t);
    for (auto& [_, t] : mg_.tensors()) hold(t);
    for (ggml_tensor* t : mg_.trainable()) hold(t);  // LoRA groups' A tensors, then their views:
    for (auto& [_, t] : mg_.lora_tensors())
      if (t->view_src && !t->buffer) {  // placed like their tensor (ggml would need its data to place them)
        t->buffer = buf_static_;
        held_.push_back(t);
      } else {
        hold(t);
      }
    return;
  }
  buf_static_ = ggml_backend_alloc_ctx_tensors(ctx_static_, backends_.front());
  if (!buf_static_) fail("cannot allocate the trainer's buffers (accumulators and AdamW moments) on the device");
  static_bytes_ = ggml_backend_buffer_get_size(buf_static_);
  ggml_backend_buffer_clear(buf_static_, 0);
  const float one = 1.0f;
  ggml_backend_tensor_set(seed_, &one, 0, sizeof one);
  if (out_pad_) {
    // Rows V_.. of out_pad_ stay zero (the buffer was cleared): their logits are 0 before the bias.
    std::vector<uint8_t> w(ggml_nbytes(mg_.output_weight()));
    ggml_backend_tensor_get(mg_.output_weight(), w.data(), 0, w.size());
    ggml_backend_tensor_set(out_pad_, w.data(), 0, w.size());
    std::vector<float> bias(size_t(Vp_), 0.0f);
    std::fill(bias.begin() + V_, bias.end(), -INFINITY);
    ggml_backend_tensor_set(pad_bias_, bias.data(), 0, bias.size() * sizeof(float));
  }
}

// forward (gf_), forward + backward into the accumulators (gb_), the gradient norm (gnorm_), AdamW (gopt_).
void TrainGraph::build_graphs() {
  // Patch 0002 reads GGML_COGUMI_BACKWARD_WEIGHT_TYPE (the type of the frozen weights' transposed copies in the
  // backward pass: auto, the default, is bf16 for BF16 weights and f32 for the others; f32 or bf16 force one)
  // when the backward graph is built; a bad value aborts there, so it is checked here first.
  backward_weight_type_switch();
  // Up to seven graphs: forward, backward, norm, AdamW, and with checkpointing or flash attention the
  // rebuilt backward (two with flash attention) and the rebuilt forward.
  ggml_init_params gp{4 * kGraphSize * ggml_tensor_overhead() + 7 * ggml_graph_overhead_custom(kGraphSize, true), nullptr,
                      true};
  ctx_graph_ = ggml_init(gp);
  ggml_context* c = ctx_graph_;
  GraphMarks marks;
  struct GraphFlagsScope {  // the model is shared: the flags hold for this graph's build only, even on a throw
    ModelGraph& m;
    GraphFlagsScope(ModelGraph& g, bool on, bool split, bool fused) : m(g) {
      m.set_dequant_forward(on);
      m.set_split_lora_groups(split);
      m.set_fused_attention(fused);
    }
    ~GraphFlagsScope() {
      m.set_dequant_forward(false);
      m.set_split_lora_groups(false);
      m.set_fused_attention(false);
    }
  };
  ggml_tensor* hidden = nullptr;
  {
    GraphFlagsScope dq(mg_, opts_.dequant_forward && opts_.rebuilds_backward(), opts_.split_lora_groups,
                       opts_.flash_attn && opts_.fused_attention);
    hidden = mg_.build_hidden(c, tokens_, pos_, mask_, &marks);
  }
  loss_ = build_loss(c, hidden);
  ggml_set_name(loss_, "loss");
  ggml_set_loss(loss_);
  ggml_set_output(loss_);
  gf_ = ggml_new_graph_custom(c, kGraphSize, true);
  ggml_build_forward_expand(gf_, loss_);
  const int n_nodes = ggml_graph_n_nodes(gf_);
  std::vector<ggml_tensor*> grad_accs(size_t(n_nodes), nullptr);
  for (int i = 0; i < n_nodes; ++i) {
    ggml_tensor* n = ggml_graph_node(gf_, i);
    if (n->flags & GGML_TENSOR_FLAG_LOSS) grad_accs[size_t(i)] = seed_;
    for (size_t k = 0; k < params_.size(); ++k)
      if (n == params_[k]) grad_accs[size_t(i)] = acc_[k];
  }
  gb_ = ggml_graph_dup(c, gf_, true);
  {
    // Patch 0002's flag is global: set for this build only, even on a throw, and one build at a time (cogumi run
    // --jobs builds two trainings' graphs at once, maybe one for the CPU and one for a GPU).
    static std::mutex build_mu;
    std::lock_guard build_lock(build_mu);
    struct OutProdScope {
      bool prev = ggml_cogumi_get_out_prod_grads();
      explicit OutProdScope(bool on) { ggml_cogumi_set_out_prod_grads(on); }
      ~OutProdScope() { ggml_cogumi_set_out_prod_grads(prev); }
    } out_prod(opts_.out_prod_grads);
    ggml_build_backward_expand(c, gb_, grad_accs.data());
  }
  if (opts_.rebuilds_backward()) rebuild_backward(marks, hidden);
  // Patch 0011: the CPU may sum a LoRA's rank-long products (B (A x), A^T g) and attention's permuted ones as
  // scaled rows, not dot products (a nano LoRA step ~10% faster); inference graphs keep ggml's kernels.
  for (ggml_cgraph* g : {gf_, gb_})
    for (int i = 0; i < ggml_graph_n_nodes(g); ++i)
      if (ggml_graph_node(g, i)->op == GGML_OP_MUL_MAT) ggml_cogumi_mul_mat_allow_small_k(ggml_graph_node(g, i));
  // Patch 0020: the mask hides every key after its query (fill_batch), so attention's products skip that half:
  // K Q^T and its gradient dP (outputs above the diagonal unused: mode 1), P V and dS K (P and dS zero there: mode 2).
  for (ggml_cgraph* g : {gf_, gb_}) mark_causal_products(g, mask_);

  // The optimizer step in two graphs: the norm of the averaged gradients, read on the host to
  // decide whether to update at all and by what clip factor; then AdamW.
  gnorm_ = ggml_new_graph_custom(c, kGraphSize, false);
  ggml_tensor* sumsq = nullptr;
  for (ggml_tensor* a : acc_) {
    ggml_tensor* s = ggml_sum(c, ggml_sqr(c, a));
    sumsq = sumsq ? ggml_add(c, sumsq, s) : s;
  }
  // norm of (acc / n_micro) = sqrt(sumsq) * inv_micro
  norm_ = ggml_mul(c, ggml_sqrt(c, sumsq), inv_micro_);
  ggml_set_name(norm_, "grad_norm");
  ggml_set_output(norm_);
  ggml_build_forward_expand(gnorm_, norm_);
  gopt_ = ggml_new_graph_custom(c, kGraphSize, false);
  for (size_t k = 0; k < params_.size(); ++k) {
    ggml_tensor* g = ggml_mul(c, acc_[k], factor_);  // factor = inv_micro * min(1, clip / norm)
    ggml_build_forward_expand(gopt_, ggml_opt_step_adamw(c, params_[k], g, m_[k], v_[k], adamw_));
  }
}

// The backward graph reading recomputed tensors (train/checkpoint_graph.h): with checkpointing
// everything but the block inputs is recomputed; with flash attention only the tensors the model
// marks as cheap (and views of them), and the forward's attention outputs come from flash attention.
// With partial checkpointing (checkpoint_blocks) the first blocks keep only their inputs, every node from
// the first uncheckpointed block's input to `hidden` is kept as without checkpointing, and the loss chunks
// are recomputed as with full checkpointing.
void TrainGraph::rebuild_backward(const GraphMarks& marks, ggml_tensor* hidden) {
  const int n_blocks = int(marks.block_inputs.size());
  if (opts_.checkpoint_blocks > n_blocks)
    fail("--checkpoint-blocks {} is more than the model's {} blocks (--checkpoint-activations checkpoints them all)",
         opts_.checkpoint_blocks, n_blocks);
  const int n_ckpt = opts_.checkpoint_activations ? n_blocks : opts_.checkpoint_blocks;
  std::vector<ggml_tensor*> keep;
  if (n_ckpt > 0) {
    keep = marks.block_inputs;
    // Kept too: the loss chunks' backward then recomputes only their own projection, not the last block.
    keep.push_back(hidden);
  }
  if (n_ckpt < n_blocks) {
    const std::unordered_set<ggml_tensor*> cheap(marks.recompute.begin(), marks.recompute.end()),
        copies(marks.weight_copies.begin(), marks.weight_copies.end());
    // From the first uncheckpointed block's input to the last block's output (`hidden`): with some blocks
    // checkpointed the loss chunks after it are recomputed chunk by chunk, as with all of them.
    bool kept_part = n_ckpt == 0, past_hidden = false;
    for (int i = 0; i < ggml_graph_n_nodes(gf_) && !past_hidden; ++i) {
      ggml_tensor* t = ggml_graph_node(gf_, i);
      kept_part = kept_part || t == marks.block_inputs[size_t(n_ckpt)];
      past_hidden = n_ckpt > 0 && t == hidden;
      if (!kept_part) continue;
      ggml_tensor* root = t;
      while (root->view_src) root = root->view_src;
      // without flash attention an uncheckpointed block keeps all it computed but its weights' BF16 copies
      if (copies.count(t) || copies.count(root)) continue;
      if (!opts_.flash_attn || (!cheap.count(t) && !cheap.count(root))) keep.push_back(t);
    }
  }
  std::vector<GraphReplacement> replace;
  if (opts_.flash_attn)
    for (const auto& a : marks.attention) replace.push_back({a.out, mg_.flash_attention(ctx_graph_, a)});
  CheckpointedGraph r = build_checkpointed_backward(ctx_graph_, gf_, gb_, keep, kGraphSize, replace);
  gb_ = r.graph;
  if (r.forward) gf_ = r.forward;
}

TrainGraphBytes TrainGraph::measure(ModelGraph& mg, std::vector<ggml_backend_t> backends, int T, int S,
                                    TrainGraphOptions opts) {
  TrainGraph tg(mg, std::move(backends), T, S, opts, true);
  TrainGraphBytes out;
  out.static_bytes = tg.static_bytes_;
  out.compute.assign(tg.backends_.size(), 0);
  std::vector<size_t> sizes(tg.backends_.size());
  // The scheduler's buffers only grow, so a run needs the largest graph's size on each backend.
  for (ggml_cgraph* g : {tg.gb_, tg.gf_, tg.gnorm_, tg.gopt_}) {
    ggml_backend_sched_reserve_size(tg.sched_, g, sizes.data());
    for (size_t i = 0; i < sizes.size(); ++i) out.compute[i] = std::max(out.compute[i], sizes[i]);
  }
  return out;
}

int TrainGraph::backward_op_count(int op, int src0_type) const {
  int n = 0;
  for (int i = 0; i < ggml_graph_n_nodes(gb_); ++i) {
    const ggml_tensor* t = ggml_graph_node(gb_, i);
    n += int(t->op) == op && (src0_type < 0 || (t->src[0] && int(t->src[0]->type) == src0_type));
  }
  return n;
}

TrainGraphBytes TrainGraph::reserved() const {
  TrainGraphBytes out;
  out.static_bytes = static_bytes_;
  for (auto* b : backends_) out.compute.push_back(ggml_backend_sched_get_buffer_size(sched_, b));
  return out;
}

void TrainGraphOptions::validate() const {
  if (loss_rows < 0 || loss_rows > (1 << 30)) fail("loss_rows is {}: use 0 (all rows) or 1..{}", loss_rows, 1 << 30);
  if (loss_chunk_rows < 0 || loss_chunk_rows > (1 << 20))
    fail("loss_chunk_rows is {}: use 0 (automatic) or 1..{}", loss_chunk_rows, 1 << 20);
  if (checkpoint_blocks < 0 || checkpoint_blocks > 65536)
    fail("--checkpoint-blocks must be in [0, 65536], got {}", checkpoint_blocks);
}

// -sum_rows w_row * log(softmax(logits_row)[label_row]): the mean cross-entropy over target rows
// when w is 1 / targets on them and 0 elsewhere, the logits projected from `hidden` [n_embd, rows]
// a chunk of rows at a time. The 1e-30 keeps a row whose label probability underflows at a loss
// of 69 rather than inf (and 0 * log(p) finite on masked rows); it changes no loss that is not
// already past 60 nats. The probabilities are not graph outputs: patch 0005 keeps the allocator
// from computing SOFT_MAX_BACK in place over them (its CPU kernel would read overwritten values),
// so with checkpointing they are recomputed chunk by chunk rather than kept for the whole step.
ggml_tensor* TrainGraph::build_loss(ggml_context* c, ggml_tensor* hidden) {
  if (loss_sel_) hidden = ggml_get_rows(c, hidden, loss_sel_);  // the rows with targets (set_inputs)
  const int64_t rows = hidden->ne[1];
  ggml_tensor* total = nullptr;
  for (int64_t start = 0; start < rows; start += chunk_) {
    const int64_t n = std::min<int64_t>(chunk_, rows - start);
    const bool whole = n == rows;
    ggml_tensor* h = whole ? hidden : ggml_view_2d(c, hidden, hidden->ne[0], n, hidden->nb[1], size_t(start) * hidden->nb[1]);
    ggml_tensor* idx = whole ? label_idx_ : ggml_view_1d(c, label_idx_, n, size_t(start) * label_idx_->nb[0]);
    ggml_tensor* w = whole ? label_w_ : ggml_view_2d(c, label_w_, 1, n, label_w_->nb[1], size_t(start) * label_w_->nb[1]);
    ggml_tensor* logits = out_pad_ ? ggml_add(c, ggml_mul_mat(c, out_pad_, h), pad_bias_) : mg_.output_logits(c, h);
    ggml_tensor* probs = ggml_soft_max(c, logits);                                                // [Vp, n]
    ggml_tensor* picked = ggml_get_rows(c, ggml_reshape_2d(c, probs, 1, int64_t(Vp_) * n), idx);  // [1, n]
    ggml_tensor* logp = ggml_log(c, ggml_scale_bias(c, picked, 1.0f, 1e-30f));
    ggml_tensor* part = ggml_sum(c, ggml_mul(c, logp, w));
    total = total ? ggml_add(c, total, part) : part;
  }
  return ggml_scale(c, total, -1.0f);
}

TrainGraph::~TrainGraph() {
  // The model's tensors outlive this graph: a later measure() on the same model must not find
  // them in the placeholder buffer freed below (it did: a third measure() crashed).
  for (ggml_tensor* t : held_) t->buffer = nullptr;
  if (profile_) profile_->report();
  if (sched_) ggml_backend_sched_free(sched_);
  if (ctx_graph_) ggml_free(ctx_graph_);
  if (buf_static_) ggml_backend_buffer_free(buf_static_);
  if (ctx_static_) ggml_free(ctx_static_);
}

void TrainGraph::compute(ggml_cgraph* g) {
  if (allocated_ != g) {
    // The forward graph's nodes are the backward graph's too and keep the address of the first
    // allocation that placed them. Allocating gf_ first and gb_ later grows the compute buffer
    // under them (evaluate() before any accumulate() then read freed memory), so gb_ goes first.
    if (!allocated_ && g == gf_) {
      ggml_backend_sched_reset(sched_);
      if (!ggml_backend_sched_alloc_graph(sched_, gb_)) fail("cannot allocate the training graph (out of device memory?)");
    }
    ggml_backend_sched_reset(sched_);
    if (!ggml_backend_sched_alloc_graph(sched_, g)) fail("cannot allocate the training graph (out of device memory?)");
    allocated_ = g;
    if (g == gb_ && !placement_reported_) {
      placement_reported_ = true;
      report_placement(g);
    }
  }
  if (ggml_backend_sched_graph_compute(sched_, g) != GGML_STATUS_SUCCESS) fail("ggml failed computing a training step");
}

// Ops of a training step that the scheduler gives to a backend other than the first (on a GPU
// build: ops the GPU backend does not support, computed on the CPU with copies each way). One
// line on stderr when there are any, since they usually explain a slow step; every op's
// placement with COGUMI_TRAIN_PLACEMENT=1.
void TrainGraph::report_placement(ggml_cgraph* g) const {
  if (backends_.size() < 2) return;
  std::map<std::string, std::map<std::string, int>> per_backend;  // backend -> op -> nodes
  for (int i = 0; i < ggml_graph_n_nodes(g); ++i) {
    ggml_tensor* n = ggml_graph_node(g, i);
    ggml_backend_t b = ggml_backend_sched_get_tensor_backend(sched_, n);
    std::string op = ggml_op_desc(n);
    if (n->op == GGML_OP_MUL_MAT || n->op == GGML_OP_OUT_PROD || n->op == GGML_OP_GET_ROWS_BACK)
      op += fmt::format("({},{})", ggml_type_name(n->src[0]->type), ggml_type_name(n->src[1]->type));
    ++per_backend[b ? ggml_backend_name(b) : "none"][op];
  }
  const char* env = std::getenv("COGUMI_TRAIN_PLACEMENT");
  const bool all = env && std::string_view(env) == "1";
  const std::string first = ggml_backend_name(backends_.front());
  for (auto& [backend, ops] : per_backend) {
    if (backend == first && !all) continue;
    std::string list;
    int total = 0;
    for (auto& [op, n] : ops) {
      list += fmt::format("{}{} x{}", list.empty() ? "" : ", ", op, n);
      total += n;
    }
    fmt::print(stderr, "train: {} op(s) of a step run on {}{}: {}\n", total, backend,
               backend == first ? "" : fmt::format(" (not {})", first), list);
  }
  fmt::print(stderr, "train: the step's graph has {} nodes in {} scheduler split(s)\n", ggml_graph_n_nodes(g),
             ggml_backend_sched_get_n_splits(sched_));
}

void TrainGraph::set_inputs(const HostBatch& b, size_t first_target) {
  const size_t n = size_t(T_) * S_;
  if (b.tokens.size() != n || b.pos.size() != n || b.mask.size() != n * T_ || b.labels.size() != n)
    fail("internal: batch of the wrong shape");
  ggml_backend_tensor_set(tokens_, b.tokens.data(), 0, n * sizeof(int32_t));
  ggml_backend_tensor_set(pos_, b.pos.data(), 0, n * sizeof(int32_t));
  ggml_backend_tensor_set(mask_, b.mask.data(), 0, b.mask.size() * sizeof(float));
  // The loss's rows: all of the batch's, or (loss_sel_) up to loss_rows_ of its target positions from
  // `first_target` on (loss_of has listed them), then position 0 with weight 0.
  const size_t m = size_t(loss_rows_);
  sel_host_.clear();
  if (loss_sel_ && first_target < sel_all_.size())
    sel_host_.assign(sel_all_.begin() + std::ptrdiff_t(first_target),
                     sel_all_.begin() + std::ptrdiff_t(std::min(sel_all_.size(), first_target + m)));
  // Loss row j's label probability sits at (j mod chunk) * V + label in its chunk's flattened softmax.
  idx_host_.resize(m);
  w_host_.resize(m);
  const float w = b.n_targets ? float(1.0 / double(b.n_targets)) : 0.0f;
  for (size_t j = 0; j < m; ++j) {
    const bool pad = loss_sel_ && j >= sel_host_.size();
    const int32_t l = pad ? -1 : b.labels[loss_sel_ ? size_t(sel_host_[j]) : j];
    if (l >= V_) fail("internal: label {} outside the {}-token vocabulary", l, V_);
    idx_host_[j] = int32_t(j % size_t(chunk_)) * Vp_ + std::max(l, 0);  // into its chunk's probabilities
    w_host_[j] = l >= 0 ? w : 0.0f;
  }
  if (loss_sel_) {
    sel_host_.resize(m, 0);
    ggml_backend_tensor_set(loss_sel_, sel_host_.data(), 0, m * sizeof(int32_t));
  }
  ggml_backend_tensor_set(label_idx_, idx_host_.data(), 0, m * sizeof(int32_t));
  ggml_backend_tensor_set(label_w_, w_host_.data(), 0, m * sizeof(float));
}

double TrainGraph::loss_of(const HostBatch& b, ggml_cgraph* g) {
  // With gathered loss rows, a batch with more target positions than the graph's loss_rows_ takes more than one
  // pass, each over the next loss_rows_ of them (weights 1 / all the batch's targets): the passes' losses and
  // gradients add up to the batch's. Rare when loss_rows fits the data (the trainer takes its epoch's largest batch).
  std::vector<int32_t>& all = sel_all_;
  all.clear();
  for (size_t i = 0; i < b.labels.size() && loss_sel_; ++i)
    if (b.labels[i] >= 0) all.push_back(int32_t(i));
  const size_t m = size_t(loss_rows_), passes = loss_sel_ ? std::max<size_t>(1, (all.size() + m - 1) / m) : 1;
  extra_passes_ += int64_t(passes) - 1;
  double loss = 0;
  for (size_t p = 0; p < passes; ++p) {
    set_inputs(b, p * m);
    compute(g);
    float part = 0;
    ggml_backend_tensor_get(loss_, &part, 0, sizeof part);
    loss += part;
  }
  return loss;
}

double TrainGraph::accumulate(const HostBatch& b) { return loss_of(b, gb_); }

double TrainGraph::evaluate(const HostBatch& b) { return loss_of(b, gf_); }

double TrainGraph::step(const AdamWParams& p, int n_micro) {
  const float inv = 1.0f / float(std::max(1, n_micro));
  ggml_backend_tensor_set(inv_micro_, &inv, 0, sizeof inv);
  compute(gnorm_);
  float norm = 0;
  ggml_backend_tensor_get(norm_, &norm, 0, sizeof norm);
  if (std::isfinite(norm)) {
    ++iter_;
    const float beta1h = 1.0f / (1.0f - std::pow(p.beta1, float(iter_)));
    const float beta2h = 1.0f / (1.0f - std::pow(p.beta2, float(iter_)));
    const float pars[7] = {p.lr, p.beta1, p.beta2, p.eps, p.weight_decay, beta1h, beta2h};
    ggml_backend_tensor_set(adamw_, pars, 0, sizeof pars);
    const float factor = p.clip > 0 && norm > p.clip ? inv * (p.clip / norm) : inv;
    ggml_backend_tensor_set(factor_, &factor, 0, sizeof factor);
    compute(gopt_);
  }
  for (ggml_tensor* a : acc_) ggml_backend_tensor_memset(a, 0, 0, ggml_nbytes(a));
  return norm;
}

std::vector<ggml_tensor*> TrainGraph::moments() const {
  std::vector<ggml_tensor*> out;
  for (size_t k = 0; k < params_.size(); ++k) {
    out.push_back(m_[k]);
    out.push_back(v_[k]);
  }
  return out;
}

}  // namespace cogumi
