#include "engine/model_init.h"

#include <ggml.h>
#include <gguf.h>
#include <llama.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <thread>

#include "core/error.h"
#include "engine/model.h"
#include "engine/vocab.h"

namespace cogumi {

void ModelShape::validate() const {
  if (n_embd <= 0 || n_layer <= 0 || n_head <= 0 || n_head_kv <= 0 || n_ff <= 0 || n_ctx_train <= 0)
    fail("model shape: every dimension must be positive");
  if (n_embd % n_head != 0) fail("model shape: n_embd ({}) must be a multiple of n_head ({})", n_embd, n_head);
  if (n_head % n_head_kv != 0) fail("model shape: n_head ({}) must be a multiple of n_head_kv ({})", n_head, n_head_kv);
  if ((n_embd / n_head) % 2 != 0) fail("model shape: head size {} must be even (RoPE)", n_embd / n_head);
}

ModelShape model_shape_preset(const std::string& name) {
  ModelShape s;
  if (name == "tiny") return s;
  if (name == "nano") {
    s.n_embd = 256, s.n_layer = 4, s.n_head = 4, s.n_head_kv = 4, s.n_ff = 768, s.n_ctx_train = 1024;
    return s;
  }
  if (name == "1b") {  // Llama-3.2-1B
    s.n_embd = 2048, s.n_layer = 16, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 8192, s.n_ctx_train = 8192;
    s.rope_theta = 500000.0f, s.tie_embeddings = true;
    return s;
  }
  if (name == "8b") {  // Llama-3.1-8B
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 14336, s.n_ctx_train = 8192;
    s.rope_theta = 500000.0f;
    return s;
  }
  fail("unknown model shape preset '{}' (known: tiny, nano, 1b, 8b)", name);
}

std::vector<std::string> model_shape_presets() { return {"tiny", "nano", "1b", "8b"}; }

const std::string& chatml_template() {
  static const std::string t =
      "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
  return t;
}

namespace {

struct GgufDeleter {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
struct GgmlDeleter {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Deterministic for a given (seed, tensor name) whatever the thread count: each 64Ki-element
// chunk has its own stream.
void fill_uniform(float* out, int64_t n, uint64_t seed, const std::string& name, float stddev, int n_threads) {
  const float a = stddev * std::sqrt(3.0f);
  const int64_t chunk = 1 << 16;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  auto work = [&](int t) {
    for (int64_t c = t; c < n_chunks; c += n_threads) {
      uint64_t st = seed ^ hash_name(name) ^ (uint64_t(c) * 0xD1B54A32D192ED03ull);
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        double u = double(splitmix64(st) >> 11) * (1.0 / 9007199254740992.0);
        out[i] = float((2.0 * u - 1.0) * a);
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < n_threads; ++t) ts.emplace_back(work, t);
  work(0);
  for (auto& t : ts) t.join();
}

struct TensorSpec {
  std::string name;
  int64_t ne0, ne1;  // ne1 == 1 for vectors
};

std::vector<TensorSpec> llama_tensors(const ModelShape& s, int n_vocab) {
  const int64_t head = s.n_embd / s.n_head, kv = head * s.n_head_kv;
  std::vector<TensorSpec> t;
  t.push_back({"token_embd.weight", s.n_embd, n_vocab});
  for (int l = 0; l < s.n_layer; ++l) {
    std::string p = "blk." + std::to_string(l) + ".";
    t.push_back({p + "attn_norm.weight", s.n_embd, 1});
    t.push_back({p + "attn_q.weight", s.n_embd, s.n_embd});
    t.push_back({p + "attn_k.weight", s.n_embd, kv});
    t.push_back({p + "attn_v.weight", s.n_embd, kv});
    t.push_back({p + "attn_output.weight", s.n_embd, s.n_embd});
    t.push_back({p + "ffn_norm.weight", s.n_embd, 1});
    t.push_back({p + "ffn_gate.weight", s.n_embd, s.n_ff});
    t.push_back({p + "ffn_up.weight", s.n_embd, s.n_ff});
    t.push_back({p + "ffn_down.weight", s.n_ff, s.n_embd});
  }
  t.push_back({"output_norm.weight", s.n_embd, 1});
  if (!s.tie_embeddings) t.push_back({"output.weight", s.n_embd, n_vocab});
  return t;
}

void set_tokenizer(gguf_context* g, const ModelInitOptions& o, int& n_vocab) {
  if (o.vocab_from.empty()) {
    BuiltinVocab v = builtin_vocab(o.extra_words);
    std::vector<const char*> toks;
    for (auto& t : v.tokens) toks.push_back(t.c_str());
    gguf_set_val_str(g, "tokenizer.ggml.model", "llama");
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks.data(), toks.size());
    gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.scores.data(), v.scores.size());
    gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.types.data(), v.types.size());
    gguf_set_val_u32(g, "tokenizer.ggml.unknown_token_id", v.unk);
    gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", v.bos);
    gguf_set_val_u32(g, "tokenizer.ggml.eos_token_id", v.eos);
    gguf_set_val_u32(g, "tokenizer.ggml.eot_token_id", v.im_end);
    gguf_set_val_bool(g, "tokenizer.ggml.add_bos_token", true);
    gguf_set_val_bool(g, "tokenizer.ggml.add_eos_token", false);
    gguf_set_val_bool(g, "tokenizer.ggml.add_space_prefix", false);
    gguf_set_val_str(g, "tokenizer.chat_template",
                     (o.chat_template.empty() ? chatml_template() : o.chat_template).c_str());
    n_vocab = int(v.tokens.size());
    return;
  }
  if (!fs::exists(o.vocab_from)) fail("vocabulary file not found: '{}'", o.vocab_from.string());
  gguf_init_params p{true, nullptr};
  std::unique_ptr<gguf_context, GgufDeleter> src(gguf_init_from_file(o.vocab_from.c_str(), p));
  if (!src) fail("'{}' is not a readable GGUF file", o.vocab_from.string());
  int64_t kid = gguf_find_key(src.get(), "tokenizer.ggml.tokens");
  if (kid < 0) fail("'{}' has no tokenizer (no tokenizer.ggml.tokens key)", o.vocab_from.string());
  n_vocab = int(gguf_get_arr_n(src.get(), kid));
  std::unique_ptr<gguf_context, GgufDeleter> tmp(gguf_init_empty());
  gguf_set_kv(tmp.get(), src.get());
  for (int64_t i = 0; i < gguf_get_n_kv(src.get()); ++i) {
    std::string k = gguf_get_key(src.get(), i);
    if (k.rfind("tokenizer.", 0) != 0) gguf_remove_key(tmp.get(), k.c_str());
  }
  gguf_set_kv(g, tmp.get());
  if (!o.chat_template.empty()) gguf_set_val_str(g, "tokenizer.chat_template", o.chat_template.c_str());
}

}  // namespace

ModelInitResult model_init(const fs::path& out, const ModelInitOptions& o) {
  engine_init();
  const ModelShape& s = o.shape;
  s.validate();
  std::string type = o.type;
  std::transform(type.begin(), type.end(), type.begin(), ::tolower);
  const bool direct = type == "f32" || type == "f16";
  const ggml_type wtype = type == "f16" || !direct ? GGML_TYPE_F16 : GGML_TYPE_F32;
  int n_threads = o.n_threads > 0 ? o.n_threads : int(std::max(1u, std::thread::hardware_concurrency()));

  std::unique_ptr<gguf_context, GgufDeleter> g(gguf_init_empty());
  int n_vocab = 0;
  set_tokenizer(g.get(), o, n_vocab);
  gguf_set_val_str(g.get(), "general.architecture", "llama");
  gguf_set_val_str(g.get(), "general.name", o.name.c_str());
  gguf_set_val_u32(g.get(), "general.file_type", wtype == GGML_TYPE_F16 ? 1 : 0);
  gguf_set_val_u32(g.get(), "general.quantization_version", 2);
  gguf_set_val_u32(g.get(), "llama.context_length", s.n_ctx_train);
  gguf_set_val_u32(g.get(), "llama.embedding_length", s.n_embd);
  gguf_set_val_u32(g.get(), "llama.block_count", s.n_layer);
  gguf_set_val_u32(g.get(), "llama.feed_forward_length", s.n_ff);
  gguf_set_val_u32(g.get(), "llama.attention.head_count", s.n_head);
  gguf_set_val_u32(g.get(), "llama.attention.head_count_kv", s.n_head_kv);
  gguf_set_val_u32(g.get(), "llama.rope.dimension_count", s.n_embd / s.n_head);
  gguf_set_val_f32(g.get(), "llama.rope.freq_base", s.rope_theta);
  gguf_set_val_f32(g.get(), "llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  gguf_set_val_u32(g.get(), "llama.vocab_size", n_vocab);
  gguf_set_val_u64(g.get(), "cogumi.init.seed", o.seed);

  auto specs = llama_tensors(s, n_vocab);
  ggml_init_params ip{(specs.size() + 8) * ggml_tensor_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, GgmlDeleter> gctx(ggml_init(ip));
  uint64_t n_params = 0;
  for (auto& sp : specs) {
    ggml_type t = sp.ne1 == 1 ? GGML_TYPE_F32 : wtype;
    ggml_tensor* tensor = sp.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), t, sp.ne0)
                                      : ggml_new_tensor_2d(gctx.get(), t, sp.ne0, sp.ne1);
    ggml_set_name(tensor, sp.name.c_str());
    gguf_add_tensor(g.get(), tensor);
    n_params += uint64_t(sp.ne0) * uint64_t(sp.ne1);
  }

  fs::path final_out = out;
  fs::path raw = direct ? out : fs::path(out.string() + ".f16.tmp");
  fs::path tmp = raw.string() + ".part." + std::to_string(getpid());
  if (raw.has_parent_path()) fs::create_directories(raw.parent_path());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '{}': {}", tmp.string(), std::strerror(errno));
  auto fwrite_all = [&](const void* d, size_t n) {
    if (std::fwrite(d, 1, n, f) != n) {
      std::fclose(f);
      fs::remove(tmp);
      fail("write to '{}' failed (disk full?)", tmp.string());
    }
  };
  std::vector<char> meta(gguf_get_meta_size(g.get()));
  gguf_get_meta_data(g.get(), meta.data());
  fwrite_all(meta.data(), meta.size());
  size_t written = 0;
  std::vector<float> buf;
  std::vector<ggml_fp16_t> half;
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i) {
    size_t off = gguf_get_tensor_offset(g.get(), i);
    if (off > written) {
      std::vector<char> pad(off - written, 0);
      fwrite_all(pad.data(), pad.size());
      written = off;
    }
    std::string name = gguf_get_tensor_name(g.get(), i);
    const int64_t* ne = gguf_get_tensor_ne(g.get(), i);
    int64_t n = ne[0] * ne[1];
    buf.resize(n);
    bool is_norm = name.find("_norm") != std::string::npos;
    if (is_norm)
      std::fill(buf.begin(), buf.end(), 1.0f);
    else
      fill_uniform(buf.data(), n, o.seed, name, o.init_std, n_threads);
    if (gguf_get_tensor_type(g.get(), i) == GGML_TYPE_F16) {
      half.resize(n);
      ggml_fp32_to_fp16_row(buf.data(), half.data(), n);
      fwrite_all(half.data(), n * sizeof(ggml_fp16_t));
      written += n * sizeof(ggml_fp16_t);
    } else {
      fwrite_all(buf.data(), n * sizeof(float));
      written += n * sizeof(float);
    }
  }
  std::fflush(f);
  fsync(fileno(f));
  std::fclose(f);
  fs::rename(tmp, raw);
  if (!direct) {
    try {
      model_quantize(raw, final_out, type, n_threads);
    } catch (...) {
      fs::remove(raw);
      throw;
    }
    fs::remove(raw);
  }
  return {n_params, fs::file_size(final_out), n_vocab};
}

void model_quantize(const fs::path& in, const fs::path& out, const std::string& type_in, int n_threads) {
  engine_init();
  std::string type = type_in;
  std::transform(type.begin(), type.end(), type.begin(), ::tolower);
  static const std::map<std::string, llama_ftype> kTypes = {
      {"f32", LLAMA_FTYPE_ALL_F32},        {"f16", LLAMA_FTYPE_MOSTLY_F16},     {"bf16", LLAMA_FTYPE_MOSTLY_BF16},
      {"q8_0", LLAMA_FTYPE_MOSTLY_Q8_0},   {"q4_0", LLAMA_FTYPE_MOSTLY_Q4_0},   {"q4_1", LLAMA_FTYPE_MOSTLY_Q4_1},
      {"q5_0", LLAMA_FTYPE_MOSTLY_Q5_0},   {"q2_k", LLAMA_FTYPE_MOSTLY_Q2_K},   {"q3_k_m", LLAMA_FTYPE_MOSTLY_Q3_K_M},
      {"q4_k_s", LLAMA_FTYPE_MOSTLY_Q4_K_S}, {"q4_k_m", LLAMA_FTYPE_MOSTLY_Q4_K_M}, {"q5_k_m", LLAMA_FTYPE_MOSTLY_Q5_K_M},
      {"q6_k", LLAMA_FTYPE_MOSTLY_Q6_K},
  };
  auto it = kTypes.find(type);
  if (it == kTypes.end()) {
    std::string known;
    for (auto& [k, _] : kTypes) known += (known.empty() ? "" : ", ") + k;
    fail("unknown model type '{}' (known: {})", type_in, known);
  }
  if (!fs::exists(in)) fail("model file not found: '{}'", in.string());
  llama_model_quantize_params qp = llama_model_quantize_default_params();
  qp.ftype = it->second;
  qp.nthread = n_threads;
  fs::path tmp = out.string() + ".part." + std::to_string(getpid());
  if (llama_model_quantize(in.c_str(), tmp.c_str(), &qp) != 0) {
    fs::remove(tmp);
    fail("quantizing '{}' to {} failed: {}", in.string(), type, engine_last_error());
  }
  fs::rename(tmp, out);
}

}  // namespace cogumi
