#include "train/model_graph.h"

#include <gguf.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>

#include "core/error.h"
#include "engine/adapter.h"
#include "engine/gguf_writer.h"

namespace cogumi {

namespace {

struct GgufDel {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlDel {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

uint32_t kv_u32(gguf_context* g, const std::string& key, const std::string& path, int64_t def = -1) {
  int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (def >= 0) return uint32_t(def);
    fail("'{}': missing GGUF key '{}'", path, key);
  }
  return gguf_get_val_u32(g, id);
}

float kv_f32(gguf_context* g, const std::string& key, float def) {
  int64_t id = gguf_find_key(g, key.c_str());
  return id < 0 ? def : gguf_get_val_f32(g, id);
}

// Reads every tensor named in `ctx` from a GGUF file into its (allocated) backend buffer; F16
// data is widened to F32 where the tensor in `ctx` is F32.
void read_tensor_data(const std::filesystem::path& path, gguf_context* g, ggml_context* ctx) {
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    ggml_tensor* t = ggml_get_tensor(ctx, gguf_get_tensor_name(g, i));
    if (!t) continue;
    std::vector<char> raw = gguf_tensor_bytes(path, g, i);
    if (gguf_get_tensor_type(g, i) == GGML_TYPE_F16 && t->type == GGML_TYPE_F32) {
      std::vector<float> wide(raw.size() / sizeof(ggml_fp16_t));
      ggml_fp16_to_fp32_row(reinterpret_cast<const ggml_fp16_t*>(raw.data()), wide.data(), int64_t(wide.size()));
      raw.assign(reinterpret_cast<const char*>(wide.data()), reinterpret_cast<const char*>(wide.data() + wide.size()));
    }
    if (raw.size() != ggml_nbytes(t)) fail("'{}': tensor '{}' has an unexpected size", path.string(), t->name);
    ggml_backend_tensor_set(t, raw.data(), 0, raw.size());
  }
}

}  // namespace

ModelGraph::ModelGraph(const std::filesystem::path& path, ggml_backend_t backend) : path_(path), backend_(backend) {
  if (!std::filesystem::exists(path)) fail("model file not found: '{}'", path.string());
  ggml_context* meta = nullptr;
  gguf_init_params gp{true, &meta};
  std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(path.c_str(), gp));
  if (!g) fail("'{}' is not a readable GGUF file", path.string());
  std::unique_ptr<ggml_context, GgmlDel> meta_owner(meta);
  int64_t arch_id = gguf_find_key(g.get(), "general.architecture");
  std::string arch = arch_id >= 0 ? gguf_get_val_str(g.get(), arch_id) : "";
  if (arch != "llama") fail("'{}': the trainer supports the llama architecture, not '{}'", path.string(), arch);
  const std::string p = path.string();
  hp_.n_embd = int(kv_u32(g.get(), "llama.embedding_length", p));
  hp_.n_layer = int(kv_u32(g.get(), "llama.block_count", p));
  hp_.n_head = int(kv_u32(g.get(), "llama.attention.head_count", p));
  hp_.n_head_kv = int(kv_u32(g.get(), "llama.attention.head_count_kv", p, hp_.n_head));
  hp_.n_ff = int(kv_u32(g.get(), "llama.feed_forward_length", p));
  hp_.n_ctx_train = int(kv_u32(g.get(), "llama.context_length", p));
  hp_.n_rot = int(kv_u32(g.get(), "llama.rope.dimension_count", p, hp_.n_embd / hp_.n_head));
  hp_.rope_theta = kv_f32(g.get(), "llama.rope.freq_base", 10000.0f);
  hp_.rms_eps = kv_f32(g.get(), "llama.attention.layer_norm_rms_epsilon", 1e-5f);

  ggml_init_params ip{size_t(gguf_get_n_tensors(g.get()) + 8) * ggml_tensor_overhead(), nullptr, true};
  ctx_w_ = ggml_init(ip);
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    const char* name = gguf_get_tensor_name(g.get(), i);
    ggml_tensor* src = ggml_get_tensor(meta, name);
    if (src->type != GGML_TYPE_F32 && src->type != GGML_TYPE_F16)
      fail("'{}': tensor '{}' is {}; the trainer needs F32 or F16 weights (dequantize with 'cogumi model quantize "
           "IN OUT --type f16' first)",
           p, name, ggml_type_name(src->type));
    // Held as F32 whatever the file's type: ggml's backward through a matmul into its input
    // (OUT_PROD) is F32-only on CUDA and several times slower from F16 on the CPU.
    ggml_tensor* t = ggml_new_tensor(ctx_w_, GGML_TYPE_F32, ggml_n_dims(src), src->ne);
    ggml_set_name(t, name);
    by_name_[name] = t;
  }
  if (!by_name_.count("token_embd.weight")) fail("'{}': no token_embd.weight", p);
  hp_.n_vocab = int(by_name_["token_embd.weight"]->ne[1]);
  buf_w_ = ggml_backend_alloc_ctx_tensors(ctx_w_, backend_);
  if (!buf_w_) fail("out of memory loading '{}'", p);
  read_tensor_data(path, g.get(), ctx_w_);
}

ModelGraph::~ModelGraph() {
  if (buf_l_) ggml_backend_buffer_free(buf_l_);
  if (ctx_l_) ggml_free(ctx_l_);
  if (buf_w_) ggml_backend_buffer_free(buf_w_);
  if (ctx_w_) ggml_free(ctx_w_);
}

void ModelGraph::add_lora(const LoraSpec& spec, uint64_t seed, const std::filesystem::path& from, float init_b_std) {
  if (spec.rank < 1) fail("LoRA rank must be >= 1, got {}", spec.rank);
  if (spec.targets.empty()) fail("LoRA needs at least one target module");
  if (has_lora()) fail("LoRA already added");
  std::vector<std::string> suffixes;
  for (const auto& t : spec.targets) suffixes.push_back("." + lora_target_tensor(t) + ".weight");
  lora_ = spec;
  ggml_init_params ip{(by_name_.size() * 2 + 8) * ggml_tensor_overhead(), nullptr, true};
  ctx_l_ = ggml_init(ip);
  for (auto& [name, w] : by_name_) {
    bool hit = false;
    for (auto& s : suffixes)
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) hit = true;
    if (!hit) continue;
    ggml_tensor* a = ggml_new_tensor_2d(ctx_l_, GGML_TYPE_F32, w->ne[0], spec.rank);
    ggml_tensor* b = ggml_new_tensor_2d(ctx_l_, GGML_TYPE_F32, spec.rank, w->ne[1]);
    ggml_set_name(a, (name + ".lora_a").c_str());
    ggml_set_name(b, (name + ".lora_b").c_str());
    lora_ab_[name] = {a, b};
  }
  if (lora_ab_.empty()) fail("'{}' has no tensors matching the LoRA targets", path_.string());
  buf_l_ = ggml_backend_alloc_ctx_tensors(ctx_l_, backend_);
  if (!from.empty()) {
    gguf_init_params gp{true, nullptr};
    std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(from.c_str(), gp));
    if (!g) fail("'{}' is not a readable GGUF file", from.string());
    int64_t ak = gguf_find_key(g.get(), "adapter.lora.alpha");
    if (ak >= 0) lora_.alpha = gguf_get_val_f32(g.get(), ak);
    read_tensor_data(from, g.get(), ctx_l_);
    return;
  }
  // A ~ U with Kaiming-like scale, B = 0 (the adapter starts as a no-op), as PEFT does.
  std::mt19937_64 rng(seed);
  for (auto& [name, ab] : lora_ab_) {
    std::normal_distribution<float> da(0.0f, 1.0f / std::sqrt(float(ab.first->ne[0])));
    std::vector<float> va(ggml_nelements(ab.first));
    for (auto& x : va) x = da(rng);
    ggml_backend_tensor_set(ab.first, va.data(), 0, ggml_nbytes(ab.first));
    std::vector<float> vb(ggml_nelements(ab.second), 0.0f);
    if (init_b_std > 0) {
      std::normal_distribution<float> db(0.0f, init_b_std);
      for (auto& x : vb) x = db(rng);
    }
    ggml_backend_tensor_set(ab.second, vb.data(), 0, ggml_nbytes(ab.second));
  }
}

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
      out.push_back(ab.first);
      out.push_back(ab.second);
    }
  } else {
    for (auto& [_, t] : by_name_) out.push_back(t);
  }
  return out;
}

ggml_tensor* ModelGraph::linear(ggml_context* ctx, ggml_tensor* x, const std::string& weight) const {
  auto it = by_name_.find(weight);
  if (it == by_name_.end()) fail("'{}': missing tensor '{}'", path_.string(), weight);
  ggml_tensor* y = ggml_mul_mat(ctx, it->second, x);
  auto ab = lora_ab_.find(weight);
  if (ab != lora_ab_.end()) {
    ggml_tensor* d = ggml_mul_mat(ctx, ab->second.second, ggml_mul_mat(ctx, ab->second.first, x));
    y = ggml_add(ctx, y, ggml_scale(ctx, d, lora_.alpha / float(lora_.rank)));
  }
  return y;
}

ggml_tensor* ModelGraph::build_logits(ggml_context* ctx, ggml_tensor* tokens, ggml_tensor* pos, ggml_tensor* mask) const {
  const int64_t T = tokens->ne[0], S = tokens->ne[1];
  const int hd = hp_.head_dim();
  ggml_tensor* x = ggml_get_rows(ctx, by_name_.at("token_embd.weight"), ggml_reshape_1d(ctx, tokens, T * S));
  for (int l = 0; l < hp_.n_layer; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    ggml_tensor* h = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp_.rms_eps), by_name_.at(b + "attn_norm.weight"));
    ggml_tensor* q = ggml_reshape_4d(ctx, linear(ctx, h, b + "attn_q.weight"), hd, hp_.n_head, T, S);
    ggml_tensor* k = ggml_reshape_4d(ctx, linear(ctx, h, b + "attn_k.weight"), hd, hp_.n_head_kv, T, S);
    ggml_tensor* v = ggml_reshape_4d(ctx, linear(ctx, h, b + "attn_v.weight"), hd, hp_.n_head_kv, T, S);
    auto rope = [&](ggml_tensor* t) {
      if (!mask)
        return ggml_rope_ext(ctx, t, pos, nullptr, hp_.n_rot, 0, hp_.n_ctx_train, hp_.rope_theta, 1.0f, 0.0f, 1.0f,
                             32.0f, 1.0f);
      // Per-token positions: rope over [hd, heads, T * S].
      ggml_tensor* r = ggml_reshape_3d(ctx, t, hd, t->ne[1], T * S);
      r = ggml_rope_ext(ctx, r, pos, nullptr, hp_.n_rot, 0, hp_.n_ctx_train, hp_.rope_theta, 1.0f, 0.0f, 1.0f, 32.0f,
                        1.0f);
      return ggml_reshape_4d(ctx, r, hd, t->ne[1], T, S);
    };
    q = rope(q);
    k = rope(k);
    ggml_tensor* Q = ggml_permute(ctx, q, 0, 2, 1, 3);                   // [hd, T, n_head, S]
    ggml_tensor* K = ggml_cont(ctx, ggml_permute(ctx, k, 0, 2, 1, 3));   // [hd, T, n_head_kv, S]
    ggml_tensor* V = ggml_cont(ctx, ggml_permute(ctx, v, 1, 2, 0, 3));   // [T, hd, n_head_kv, S]
    if (hp_.n_head != hp_.n_head_kv) {
      // Grouped-query attention: repeat each K/V head for its group (head h reads kv head
      // h / group, as llama.cpp does). ggml's mul_mat backward cannot broadcast heads when
      // there is also a batch dimension, so the heads are expanded explicitly.
      const int g = hp_.n_head / hp_.n_head_kv;
      auto expand = [&](ggml_tensor* t, int64_t d0, int64_t d1) {
        ggml_tensor* r = ggml_reshape_4d(ctx, t, d0 * d1, 1, hp_.n_head_kv, S);
        r = ggml_repeat(ctx, r, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, d0 * d1, g, hp_.n_head_kv, S));
        return ggml_reshape_4d(ctx, r, d0, d1, hp_.n_head, S);
      };
      K = expand(K, hd, T);
      V = expand(V, T, hd);
    }
    ggml_tensor* kq = ggml_mul_mat(ctx, K, Q);                           // [T_k, T_q, n_head, S]
    kq = mask ? ggml_soft_max_ext(ctx, kq, mask, 1.0f / std::sqrt(float(hd)), 0.0f)
              : ggml_soft_max_ext(ctx, ggml_diag_mask_inf(ctx, kq, 0), nullptr, 1.0f / std::sqrt(float(hd)), 0.0f);
    ggml_tensor* kqv = ggml_mul_mat(ctx, V, kq);                       // [hd, T_q, n_head, S]
    ggml_tensor* o = ggml_cont(ctx, ggml_permute(ctx, kqv, 0, 2, 1, 3));  // [hd, n_head, T, S]
    o = ggml_reshape_2d(ctx, o, hp_.n_embd, T * S);
    x = ggml_add(ctx, x, linear(ctx, o, b + "attn_output.weight"));
    h = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp_.rms_eps), by_name_.at(b + "ffn_norm.weight"));
    ggml_tensor* gate = linear(ctx, h, b + "ffn_gate.weight");
    ggml_tensor* up = linear(ctx, h, b + "ffn_up.weight");
    x = ggml_add(ctx, x, linear(ctx, ggml_mul(ctx, ggml_silu(ctx, gate), up), b + "ffn_down.weight"));
  }
  x = ggml_mul(ctx, ggml_rms_norm(ctx, x, hp_.rms_eps), by_name_.at("output_norm.weight"));
  auto out = by_name_.find("output.weight");
  return ggml_mul_mat(ctx, out != by_name_.end() ? out->second : by_name_.at("token_embd.weight"), x);
}

}  // namespace cogumi
