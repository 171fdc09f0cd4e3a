#include "train/model_graph.h"

#include <gguf.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"
#include "engine/adapter.h"
#include "engine/gguf_keys.h"
#include "engine/gguf_writer.h"

namespace cogumi {

namespace {

struct GgufDel {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlDel {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

// As llama.cpp derives ggml_rope_ext's arguments for a llama (or deci) model with default context
// parameters (llama-model.cpp load_hparams, llama-context.cpp): these architectures read only
// these keys (not the yarn_* ones other architectures read). `a` is the key prefix ("llama.").
RopeParams read_rope(gguf_context* g, const std::string& a, const std::string& p, int n_ctx_train) {
  RopeParams r;
  r.freq_base = gguf_f32_or(g, a + "rope.freq_base", 10000.0f, p);
  const std::string type = gguf_str_or(g, a + "rope.scaling.type", "linear", p);
  if (type == "longrope")
    fail("'{}': {}rope.scaling.type 'longrope' (context-dependent factors) is not supported by the trainer", p, a);
  if (type != "none" && type != "linear" && type != "yarn")
    fail("'{}': unknown {}rope.scaling.type '{}' (llama.cpp knows none, linear, yarn, longrope)", p, a, type);
  float factor = gguf_f32_or(g, a + "rope.scaling.factor", 0.0f, p);
  if (factor == 0.0f) factor = gguf_f32_or(g, a + "rope.scale_linear", 0.0f, p);
  if (!std::isfinite(factor) || factor < 0) fail("'{}': {}rope.scaling.factor {} is not a valid factor", p, a, factor);
  r.freq_scale = type == "none" || factor == 0.0f ? 1.0f : 1.0f / factor;
  r.ext_factor = type == "yarn" ? 1.0f : 0.0f;
  r.attn_factor = 1.0f;
  if (r.ext_factor != 0.0f) {
    const float f = 1.0f / r.freq_scale;
    const float mscale = f <= 1.0f ? 1.0f : 0.1f * std::log(f) + 1.0f;
    r.attn_factor = mscale * (1.0f / (1.0f + 0.1f * std::log(f)));
  }
  r.attn_factor *= gguf_f32_or(g, a + "rope.scaling.attn_factor", 1.0f, p);
  const int64_t orig = gguf_int_or(g, a + "rope.scaling.original_context_length", 0, p);
  if (orig < 0 || orig > (int64_t(1) << 30)) fail("'{}': {}rope.scaling.original_context_length {} is out of range", p, a, orig);
  r.n_ctx_orig = orig == 0 ? n_ctx_train : int(orig);
  return r;
}

// Reads every tensor named in `ctx` from a GGUF file into its (allocated) backend buffer; F16
// and BF16 data are widened to F32 where the tensor in `ctx` is F32, and F16 data rounded to the
// nearest BF16 where it is BF16. One tensor's bytes at a time are on the host.
void read_tensor_data(const std::filesystem::path& path, gguf_context* g, ggml_context* ctx) {
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    ggml_tensor* t = ggml_get_tensor(ctx, gguf_get_tensor_name(g, i));
    if (!t) continue;
    std::vector<char> raw = gguf_tensor_bytes(path, g, i);
    const ggml_type type = gguf_get_tensor_type(g, i);
    if ((type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) && t->type != type) {  // held as F32 or BF16
      std::vector<float> wide(raw.size() / 2);
      ggml_get_type_traits(type)->to_float(raw.data(), wide.data(), int64_t(wide.size()));
      if (t->type == GGML_TYPE_BF16)
        ggml_fp32_to_bf16_row_ref(wide.data(), reinterpret_cast<ggml_bf16_t*>(raw.data()), int64_t(wide.size()));
      else
        raw.assign(reinterpret_cast<const char*>(wide.data()), reinterpret_cast<const char*>(wide.data() + wide.size()));
    }
    if (raw.size() != ggml_nbytes(t)) fail("'{}': tensor '{}' has an unexpected size", path.string(), t->name);
    ggml_backend_tensor_set(t, raw.data(), 0, raw.size());
  }
}

// The shape the graph needs for each tensor a llama GGUF may hold; empty: not one the trainer's
// graph computes (a bias, an expert, a fused QKV), so training it would not train what
// llama.cpp serves.
std::vector<int64_t> expected_shape(const std::string& name, const LlamaHparams& hp) {
  const int64_t e = hp.n_embd, v = hp.n_vocab;
  if (name == "token_embd.weight" || name == "output.weight") return {e, v};
  if (name == "output_norm.weight") return {e};
  if (name == "rope_freqs.weight") return {hp.n_rot / 2};
  int layer = -1;
  char rest[64] = {0};
  if (std::sscanf(name.c_str(), "blk.%d.%63s", &layer, rest) != 2 || layer < 0 || layer >= hp.n_layer) return {};
  const std::string r = rest;
  const LayerShape& ls = hp.layers[size_t(layer)];
  const int64_t q = int64_t(hp.head_dim()) * ls.n_head, kv = int64_t(hp.head_dim()) * ls.n_head_kv;
  if (r == "attn_norm.weight" || r == "ffn_norm.weight") return {e};
  if (r == "attn_q.weight") return {e, q};
  if (r == "attn_output.weight") return {q, e};
  if (r == "attn_k.weight" || r == "attn_v.weight") return {e, kv};
  if (r == "ffn_gate.weight" || r == "ffn_up.weight") return {e, ls.n_ff};
  if (r == "ffn_down.weight") return {ls.n_ff, e};
  return {};
}

std::string shape_str(const int64_t* ne, int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
  return s;
}

}  // namespace

size_t ModelGraph::widened_16bit_bytes(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) fail("model file not found: '{}'", path.string());
  gguf_init_params gp{true, nullptr};
  std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(path.c_str(), gp));
  if (!g) fail("'{}' is not a readable GGUF file", path.string());
  size_t bytes = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    const ggml_type t = gguf_get_tensor_type(g.get(), i);
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) bytes += 2 * gguf_get_tensor_size(g.get(), i);
  }
  return bytes;
}

ModelGraph::ModelGraph(const std::filesystem::path& path, ggml_backend_t backend, bool keep_file_types, bool load_data,
                       BaseWeights hold_16bit)
    : path_(path), backend_(backend) {
  if (!std::filesystem::exists(path)) fail("model file not found: '{}'", path.string());
  ggml_context* meta = nullptr;
  gguf_init_params gp{true, &meta};
  std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(path.c_str(), gp));
  if (!g) fail("'{}' is not a readable GGUF file", path.string());
  std::unique_ptr<ggml_context, GgmlDel> meta_owner(meta);
  const std::string p = path.string();
  hp_.arch = gguf_str_or(g.get(), "general.architecture", "", p);
  if (hp_.arch != "llama" && hp_.arch != "deci")
    fail("'{}': the trainer supports the llama and deci architectures, not '{}'", p, hp_.arch);
  read_hparams(g.get());
  ggml_init_params ip{size_t(gguf_get_n_tensors(g.get()) + 8) * ggml_tensor_overhead(), nullptr, true};
  ctx_w_ = ggml_init(ip);
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    const char* name = gguf_get_tensor_name(g.get(), i);
    ggml_tensor* src = ggml_get_tensor(meta, name);
    const bool widen = src->type == GGML_TYPE_F16 || src->type == GGML_TYPE_BF16;
    if (src->type != GGML_TYPE_F32 && !widen && (!keep_file_types || ggml_n_dims(src) < 2))
      fail("'{}': tensor '{}' is {}; full-parameter training needs F32, F16 or BF16 weights. Train a LoRA on this "
           "base as it is (without --full), train on the original F16/BF16 GGUF, or make a trainable copy of this "
           "one: cogumi model quantize {} OUT.gguf --type f16",
           p, name, ggml_type_name(src->type), p);
    // Matrices of a frozen base stay in the file's type (16-bit ones held as F32 or BF16 when asked); trained
    // weights and vectors are F32.
    ggml_type type = keep_file_types && ggml_n_dims(src) >= 2 ? src->type : GGML_TYPE_F32;
    if (widen && type != GGML_TYPE_F32 && hold_16bit != BaseWeights::file)
      type = hold_16bit == BaseWeights::f32 ? GGML_TYPE_F32 : GGML_TYPE_BF16;
    ggml_tensor* t = ggml_new_tensor(ctx_w_, type, ggml_n_dims(src), src->ne);
    ggml_set_name(t, name);
    by_name_[name] = t;
  }
  check_tensors();
  if (!load_data) return;
  buf_w_ = ggml_backend_alloc_ctx_tensors(ctx_w_, backend_);
  if (!buf_w_) fail("out of memory loading '{}'", p);
  read_tensor_data(path, g.get(), ctx_w_);
}

void ModelGraph::read_hparams(gguf_context* g) {
  const std::string p = path_.string(), a = hp_.arch + ".";
  constexpr int64_t kMax = int64_t(1) << 30;
  auto dim = [&](const std::string& key, int64_t def) {
    const int64_t x = def < 0 ? gguf_int_required(g, a + key, p) : gguf_int_or(g, a + key, def, p);
    if (x <= 0 || x > kMax) fail("'{}': GGUF key '{}{}' = {} is out of range", p, a, key, x);
    return int(x);
  };
  hp_.n_embd = dim("embedding_length", -1);
  hp_.n_layer = dim("block_count", -1);
  hp_.n_ctx_train = dim("context_length", -1);
  // Each block has 9 tensors: a block count the file cannot hold is refused before anything per
  // block is built (block_count may claim up to 2^30 blocks).
  constexpr int64_t kBlockTensors = 9;
  if (int64_t(hp_.n_layer) > gguf_get_n_tensors(g) / kBlockTensors)
    fail("'{}': {}block_count {} needs {} block tensors, the file has {} tensors in all", p, a, hp_.n_layer,
         int64_t(hp_.n_layer) * kBlockTensors, gguf_get_n_tensors(g));
  // Per block (deci: arrays; llama: one value, which a llama GGUF must hold as a scalar).
  const std::vector<int> ff = gguf_ints_per_layer(g, a + "feed_forward_length", hp_.n_layer, true, 0, p);
  const std::vector<int> head = gguf_ints_per_layer(g, a + "attention.head_count", hp_.n_layer, true, 0, p);
  std::vector<int> head_kv = gguf_ints_per_layer(g, a + "attention.head_count_kv", hp_.n_layer, false, -1, p);
  if (hp_.arch == "llama")
    for (const char* k : {"feed_forward_length", "attention.head_count", "attention.head_count_kv"}) {
      const int64_t id = gguf_find_key(g, (a + k).c_str());
      if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_ARRAY)
        fail("'{}': {}{} is per block; a llama GGUF has one value (uneven blocks are the deci architecture)", p, a, k);
    }
  hp_.layers.clear();
  for (int il = 0; il < hp_.n_layer; ++il) {
    LayerShape ls{head[size_t(il)], head_kv[size_t(il)] < 0 ? head[size_t(il)] : head_kv[size_t(il)], ff[size_t(il)]};
    // llama.cpp's deci graph also has attention-free (0 heads), "linear attention" (0 KV heads) and
    // FFN-free blocks; the trainer's graph computes none of them (pruning never writes them).
    if (ls.n_head <= 0 || ls.n_head_kv <= 0 || ls.n_ff <= 0 || ls.n_head % ls.n_head_kv != 0)
      fail("'{}': block {} has {} heads, {} key/value heads and FFN width {}: the trainer needs attention with "
           "whole key/value groups and an FFN in every block", p, il, ls.n_head, ls.n_head_kv, ls.n_ff);
    hp_.n_head = std::max(hp_.n_head, ls.n_head);
    hp_.n_head_kv = std::max(hp_.n_head_kv, ls.n_head_kv);
    hp_.n_ff = std::max(hp_.n_ff, ls.n_ff);
    hp_.layers.push_back(ls);
  }
  // llama.cpp: the head size is attention.key_length, else n_embd / block 0's head count.
  const int head0 = hp_.layers[0].n_head;
  if (gguf_find_key(g, (a + "attention.key_length").c_str()) < 0 && hp_.n_embd % head0 != 0)
    fail("'{}': {} heads do not divide the embedding width {} (and {}attention.key_length is not set)", p, head0,
         hp_.n_embd, a);
  hp_.n_embd_head = dim("attention.key_length", hp_.n_embd / head0);
  hp_.n_rot = dim("rope.dimension_count", hp_.head_dim());
  // llama.cpp's llama and deci graphs require these (llama-model.cpp); other values would be a different model.
  if (hp_.n_rot != hp_.head_dim())
    fail("'{}': {}rope.dimension_count {} is not the head size {}", p, a, hp_.n_rot, hp_.head_dim());
  if (dim("attention.value_length", hp_.head_dim()) != hp_.head_dim())
    fail("'{}': {}attention.value_length is not the head size {} (not supported)", p, a, hp_.head_dim());
  if (gguf_int_or(g, a + "expert_count", 0, p) > 1) fail("'{}': mixture-of-experts models are not supported by the trainer", p);
  hp_.rms_eps = gguf_f32_or(g, a + "attention.layer_norm_rms_epsilon", 1e-5f, p);
  hp_.rope = read_rope(g, a, p, hp_.n_ctx_train);
}

void ModelGraph::check_tensors() {
  const std::string p = path_.string();
  if (!by_name_.count("token_embd.weight")) fail("'{}': no token_embd.weight", p);
  hp_.n_vocab = int(by_name_["token_embd.weight"]->ne[1]);
  for (auto& [name, t] : by_name_) {
    std::vector<int64_t> want = expected_shape(name, hp_);
    if (want.empty())
      fail("'{}': tensor '{}' is not part of the llama graph the trainer builds (biases, experts and fused "
           "projections are not supported)", p, name);
    const int n = ggml_n_dims(t);
    if (n != int(want.size()) || !std::equal(want.begin(), want.end(), t->ne))
      fail("'{}': tensor '{}' is {}, expected {}", p, name, shape_str(t->ne, n), shape_str(want.data(), int(want.size())));
  }
  std::vector<std::string> need = {"output_norm.weight"};
  for (int l = 0; l < hp_.n_layer; ++l)
    for (const char* w : {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                          "ffn_down"})
      need.push_back("blk." + std::to_string(l) + "." + w + ".weight");
  for (auto& n : need)
    if (!by_name_.count(n)) fail("'{}': missing tensor '{}'", p, n);
  auto rf = by_name_.find("rope_freqs.weight");
  rope_freqs_ = rf != by_name_.end() ? rf->second : nullptr;
}

ModelGraph::~ModelGraph() {
  if (buf_l_) ggml_backend_buffer_free(buf_l_);
  if (ctx_l_) ggml_free(ctx_l_);
  if (buf_w_) ggml_backend_buffer_free(buf_w_);
  if (ctx_w_) ggml_free(ctx_w_);
}

namespace {

// Block l's groups of weights that read the same input: the group's LoRA A tensor name and its
// members in the order of its rows.
std::vector<std::pair<std::string, std::vector<std::string>>> lora_groups(int l) {
  const std::string b = "blk." + std::to_string(l) + ".";
  return {{b + "attn_qkv", {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"}},
          {b + "ffn_gate_up", {b + "ffn_gate.weight", b + "ffn_up.weight"}}};
}

}  // namespace

void ModelGraph::add_lora(const LoraSpec& spec, uint64_t seed, const std::filesystem::path& from, float init_b_std) {
  if (spec.rank < 1) fail("LoRA rank must be >= 1, got {}", spec.rank);
  if (spec.targets.empty()) fail("LoRA needs at least one target module");
  if (has_lora()) fail("LoRA already added");
  std::vector<std::string> suffixes;
  for (const auto& t : spec.targets) suffixes.push_back("." + lora_target_tensor(t) + ".weight");
  lora_ = spec;
  ggml_init_params ip{(by_name_.size() * 3 + 8) * ggml_tensor_overhead(), nullptr, true};
  ctx_l_ = ggml_init(ip);
  for (auto& [name, w] : by_name_) {
    bool hit = false;
    for (auto& s : suffixes)
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) hit = true;
    if (!hit) continue;
    ggml_tensor* b = ggml_new_tensor_2d(ctx_l_, GGML_TYPE_F32, spec.rank, w->ne[1]);
    ggml_set_name(b, (name + ".lora_b").c_str());
    lora_ab_[name] = {nullptr, b};
  }
  if (lora_ab_.empty()) fail("'{}' has no tensors matching the LoRA targets", path_.string());
  // A matrices: one tensor per shared-input group of two or more targets, views of it per module.
  for (int l = 0; l < hp_.n_layer; ++l)
    for (const auto& [group, members] : lora_groups(l)) {
      std::vector<std::string> in;
      for (const auto& m : members)
        if (lora_ab_.count(m)) in.push_back(m);
      if (in.size() < 2) continue;
      const int64_t n_in = by_name_.at(in[0])->ne[0];
      ggml_tensor* g = ggml_new_tensor_2d(ctx_l_, GGML_TYPE_F32, n_in, spec.rank * int64_t(in.size()));
      ggml_set_name(g, (group + ".lora_a").c_str());
      lora_groups_.push_back(g);
      for (size_t i = 0; i < in.size(); ++i)
        lora_ab_[in[i]].first = ggml_view_2d(ctx_l_, g, n_in, spec.rank, g->nb[1], i * size_t(spec.rank) * g->nb[1]);
    }
  for (auto& [name, ab] : lora_ab_) {
    if (!ab.first) ab.first = ggml_new_tensor_2d(ctx_l_, GGML_TYPE_F32, by_name_.at(name)->ne[0], spec.rank);
    ggml_set_name(ab.first, (name + ".lora_a").c_str());
  }
  has_lora_ = true;
  if (!buf_w_) return;  // shapes only (load_data false)
  buf_l_ = ggml_backend_alloc_ctx_tensors(ctx_l_, backend_);
  if (!buf_l_) fail("out of memory allocating LoRA tensors for '{}'", path_.string());
  if (!from.empty()) {
    gguf_init_params gp{true, nullptr};
    std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(from.c_str(), gp));
    if (!g) fail("'{}' is not a readable GGUF file", from.string());
    lora_.alpha = gguf_f32_or(g.get(), "adapter.lora.alpha", 0.0f, from.string());
    read_tensor_data(from, g.get(), ctx_l_);
    return;
  }
  // PEFT's default (nn.init.kaiming_uniform_ with a = sqrt(5)): bound = gain * sqrt(3 / fan_in)
  // with gain = sqrt(2 / (1 + 5)), i.e. 1 / sqrt(n_in).
  std::mt19937_64 rng(seed);
  for (auto& [name, ab] : lora_ab_) {
    const float bound = 1.0f / std::sqrt(float(ab.first->ne[0]));
    std::uniform_real_distribution<float> da(-bound, bound);
    std::vector<float> va(size_t(ggml_nelements(ab.first)));
    for (auto& x : va) x = da(rng);
    ggml_backend_tensor_set(ab.first, va.data(), 0, ggml_nbytes(ab.first));
    std::vector<float> vb(size_t(ggml_nelements(ab.second)), 0.0f);
    if (init_b_std > 0) {
      std::normal_distribution<float> db(0.0f, init_b_std);
      for (auto& x : vb) x = db(rng);
    }
    ggml_backend_tensor_set(ab.second, vb.data(), 0, ggml_nbytes(ab.second));
  }
}

size_t ModelGraph::weight_bytes() const { return ggml_backend_buffer_get_size(buf_w_); }

float ModelGraph::lora_scale() const { return lora_.alpha != 0.0f ? lora_.alpha / float(lora_.rank) : 1.0f; }

std::map<std::string, ggml_tensor*> ModelGraph::lora_tensors() const {
  std::map<std::string, ggml_tensor*> out;
  for (auto& [_, ab] : lora_ab_) {
    out[ab.first->name] = ab.first;
    out[ab.second->name] = ab.second;
  }
  return out;
}

std::vector<ggml_tensor*> ModelGraph::trainable() const {
  std::vector<ggml_tensor*> out;
  if (has_lora()) {
    for (auto& [_, ab] : lora_ab_) {
      ggml_tensor* a = ab.first->view_src ? ab.first->view_src : ab.first;  // a group's tensor, once
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
      out.push_back(ab.second);
    }
  } else {
    for (auto& [_, t] : by_name_)
      if (t != rope_freqs_) out.push_back(t);
  }
  return out;
}

ggml_tensor* ModelGraph::linear(ggml_context* ctx, ggml_tensor* x, const std::string& weight, GraphMarks* marks) const {
  return linears(ctx, x, {weight}, marks).front();
}

std::vector<ggml_tensor*> ModelGraph::linears(ggml_context* ctx, ggml_tensor* x, const std::vector<std::string>& weights,
                                              GraphMarks* marks) const {
  std::vector<ggml_tensor*> out;
  std::map<ggml_tensor*, ggml_tensor*> group_ax;  // a group's tensor -> scale * (its A x), computed once
  for (const auto& weight : weights) {
    auto it = by_name_.find(weight);
    if (it == by_name_.end()) fail("'{}': missing tensor '{}'", path_.string(), weight);
    ggml_tensor* w = it->second;
    if (dequant_forward_ && marks && ggml_is_quantized(w->type) && !(w->flags & GGML_TENSOR_FLAG_PARAM)) {
      // Dequantized straight to BF16 in one pass (patch 0008: CUDA and the CPU).
      w = ggml_cast(ctx, w, GGML_TYPE_BF16);
      marks->recompute.push_back(w);  // the copy does not outlive its matmul: recomputed in the backward
      marks->weight_copies.push_back(w);
    }
    ggml_tensor* y = ggml_mul_mat(ctx, w, x);
    auto ab = lora_ab_.find(weight);
    if (ab != lora_ab_.end()) {
      ggml_tensor* a = ab->second.first;
      ggml_tensor* ax = nullptr;
      if (a->view_src && !split_lora_groups_) {  // rows [i r, (i+1) r) of the group's product
        ggml_tensor*& g = group_ax[a->view_src];
        if (!g) g = ggml_scale(ctx, ggml_mul_mat(ctx, a->view_src, x), lora_scale());
        ax = ggml_view_2d(ctx, g, a->ne[1], g->ne[1], g->nb[1], a->view_offs / a->nb[1] * g->nb[0]);
        // The CPU multiplies B by a strided view with a dot-product loop (3.5x slower than tinyBLAS on the
        // contiguous copy, 14% of a nano LoRA step); the copy is r x T floats.
        if (on_cpu()) ax = ggml_cont(ctx, ax);
      } else {
        ax = ggml_scale(ctx, ggml_mul_mat(ctx, a, x), lora_scale());
      }
      y = ggml_add(ctx, y, ggml_mul_mat(ctx, ab->second.second, ax));
    }
    out.push_back(y);
  }
  return out;
}

ggml_tensor* ModelGraph::rope(ggml_context* ctx, ggml_tensor* t, ggml_tensor* pos, bool per_token) const {
  // llama.cpp's llama graph: rope type NORM (0), rope_freqs as the frequency factors.
  const RopeParams& r = hp_.rope;
  auto apply = [&](ggml_tensor* x) {
    return ggml_rope_ext(ctx, x, pos, rope_freqs_, hp_.n_rot, 0, r.n_ctx_orig, r.freq_base, r.freq_scale, r.ext_factor,
                         r.attn_factor, r.beta_fast, r.beta_slow);
  };
  if (!per_token) return apply(t);
  // Per-token positions (packed rows): rope over [hd, heads, T * S].
  const int64_t hd = t->ne[0], heads = t->ne[1], T = t->ne[2], S = t->ne[3];
  return ggml_reshape_4d(ctx, apply(ggml_reshape_3d(ctx, t, hd, heads, T * S)), hd, heads, T, S);
}

ggml_tensor* ModelGraph::build_logits(ggml_context* ctx, ggml_tensor* tokens, ggml_tensor* pos, ggml_tensor* mask,
                                      GraphMarks* marks) const {
  return output_logits(ctx, build_hidden(ctx, tokens, pos, mask, marks));
}

ggml_tensor* ModelGraph::output_weight() const {
  auto out = by_name_.find("output.weight");
  return out != by_name_.end() ? out->second : by_name_.at("token_embd.weight");
}

ggml_tensor* ModelGraph::output_logits(ggml_context* ctx, ggml_tensor* hidden) const {
  return ggml_mul_mat(ctx, output_weight(), hidden);
}

namespace {
// Marks t for recomputation in the backward pass (GraphMarks::recompute).
ggml_tensor* cheap(GraphMarks* marks, ggml_tensor* t) {
  if (marks) marks->recompute.push_back(t);
  return t;
}
}  // namespace

ggml_tensor* ModelGraph::build_hidden(ggml_context* ctx, ggml_tensor* tokens, ggml_tensor* pos, ggml_tensor* mask,
                                      GraphMarks* marks) const {
  const int64_t T = tokens->ne[0], S = tokens->ne[1];
  const int hd = hp_.head_dim();
  auto norm = [&](ggml_tensor* t, const std::string& weight) {
    return cheap(marks, ggml_mul(ctx, cheap(marks, ggml_rms_norm(ctx, t, hp_.rms_eps)), by_name_.at(weight)));
  };
  ggml_tensor* mask16 = nullptr;  // fused attention: the mask in F16 once for all blocks
  if (fused_attention_) {
    if (!mask) fail("internal: fused flash attention in training needs the attention mask");
    mask16 = cheap(marks, ggml_cast(ctx, mask, GGML_TYPE_F16));
  }
  ggml_tensor* x = ggml_get_rows(ctx, by_name_.at("token_embd.weight"), ggml_reshape_1d(ctx, tokens, T * S));
  for (int l = 0; l < hp_.n_layer; ++l) {
    if (marks) marks->block_inputs.push_back(x);
    const std::string b = "blk." + std::to_string(l) + ".";
    const int n_head = hp_.layers[size_t(l)].n_head, n_head_kv = hp_.layers[size_t(l)].n_head_kv;
    ggml_tensor* h = norm(x, b + "attn_norm.weight");
    const auto qkv = linears(ctx, h, {b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"}, marks);
    ggml_tensor* q = ggml_reshape_4d(ctx, qkv[0], hd, n_head, T, S);
    ggml_tensor* k = ggml_reshape_4d(ctx, qkv[1], hd, n_head_kv, T, S);
    ggml_tensor* v = ggml_reshape_4d(ctx, qkv[2], hd, n_head_kv, T, S);
    q = rope(ctx, q, pos, mask != nullptr);
    k = rope(ctx, k, pos, mask != nullptr);
    GraphMarks::Attention att{nullptr, ggml_permute(ctx, q, 0, 2, 1, 3), ggml_permute(ctx, k, 0, 2, 1, 3),
                              ggml_permute(ctx, v, 0, 2, 1, 3), mask, 1.0f / std::sqrt(float(hd))};  // [hd, T, heads, S]
    ggml_tensor* o = fused_attention_ ? flash_attention(ctx, att, mask16, marks)  // [hd, n_head, T, S]
                                      : plain_attention(ctx, att, v, n_head, n_head_kv, marks);
    o = ggml_reshape_2d(ctx, o, int64_t(hd) * n_head, T * S);
    x = ggml_add(ctx, x, linear(ctx, o, b + "attn_output.weight", marks));
    h = norm(x, b + "ffn_norm.weight");
    const auto gate_up = linears(ctx, h, {b + "ffn_gate.weight", b + "ffn_up.weight"}, marks);
    ggml_tensor* act = cheap(marks, ggml_swiglu_split(ctx, gate_up[0], gate_up[1]));  // silu(gate) * up, one op
    x = ggml_add(ctx, x, linear(ctx, act, b + "ffn_down.weight", marks));
  }
  return ggml_mul(ctx, ggml_rms_norm(ctx, x, hp_.rms_eps), by_name_.at("output_norm.weight"));
}

ggml_tensor* ModelGraph::plain_attention(ggml_context* ctx, GraphMarks::Attention& att, ggml_tensor* v, int n_head,
                                         int n_head_kv, GraphMarks* marks) const {
  const int64_t hd = att.q->ne[0], T = att.q->ne[1], S = att.q->ne[3];
  ggml_tensor* K = cheap(marks, ggml_cont(ctx, att.k));                             // [hd, T, n_head_kv, S]
  ggml_tensor* V = cheap(marks, ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3)));  // [T, hd, n_head_kv, S]
  if (n_head != n_head_kv) {
    // Grouped-query attention: repeat each K/V head for its group (head h reads kv head
    // h / group, as llama.cpp does). ggml's mul_mat backward cannot broadcast heads when
    // there is also a batch dimension, so the heads are expanded explicitly.
    const int g = n_head / n_head_kv;
    auto expand = [&](ggml_tensor* t, int64_t d0, int64_t d1) {
      ggml_tensor* r = ggml_reshape_4d(ctx, t, d0 * d1, 1, n_head_kv, S);
      r = cheap(marks, ggml_repeat(ctx, r, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, d0 * d1, g, n_head_kv, S)));
      return ggml_reshape_4d(ctx, r, d0, d1, n_head, S);
    };
    K = expand(K, hd, T);
    V = expand(V, T, hd);
  }
  ggml_tensor* kq = cheap(marks, ggml_mul_mat(ctx, K, att.q));  // [T_k, T_q, n_head, S]
  kq = att.mask ? ggml_soft_max_ext(ctx, kq, att.mask, att.scale, 0.0f)
                : ggml_soft_max_ext(ctx, cheap(marks, ggml_diag_mask_inf(ctx, kq, 0)), nullptr, att.scale, 0.0f);
  ggml_tensor* kqv = ggml_mul_mat(ctx, V, cheap(marks, kq));            // [hd, T_q, n_head, S]
  att.out = ggml_cont(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3));  // [hd, n_head, T, S]
  if (marks) marks->attention.push_back(att);
  return att.out;
}

ggml_tensor* ModelGraph::flash_attention(ggml_context* ctx, const GraphMarks::Attention& a, ggml_tensor* mask16,
                                         GraphMarks* marks) const {
  if (!a.mask) fail("internal: flash attention in training needs the attention mask");
  ggml_tensor* k = cheap(marks, ggml_cast(ctx, a.k, GGML_TYPE_F16));
  ggml_tensor* v = cheap(marks, ggml_cast(ctx, a.v, GGML_TYPE_F16));
  ggml_tensor* m = mask16 ? mask16 : ggml_cast(ctx, a.mask, GGML_TYPE_F16);
  ggml_tensor* o = ggml_flash_attn_ext(ctx, a.q, k, v, m, a.scale, 0.0f, 0.0f);  // [hd, n_head, T, S]
  ggml_prec_set_acc(o, GGML_PREC_F32);
  return o;
}

}  // namespace cogumi
