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
#include "core/threads.h"
#include "core/io.h"
#include "engine/gguf_writer.h"
#include "engine/model.h"
#include "engine/vocab.h"

namespace cogumi {

void ModelShape::validate() const {
  if (n_embd <= 0 || n_layer <= 0 || n_head <= 0 || n_head_kv <= 0 || n_ff <= 0 || n_ctx_train <= 0)
    fail("model shape: every dimension must be positive");
  if (n_embd % n_head != 0) fail("model shape: n_embd ({}) must be a multiple of n_head ({})", n_embd, n_head);
  if (n_head % n_head_kv != 0) fail("model shape: n_head ({}) must be a multiple of n_head_kv ({})", n_head, n_head_kv);
  if ((n_embd / n_head) % 2 != 0) fail("model shape: head size {} must be even (RoPE)", n_embd / n_head);
  if (rope_llama3_factor != 0.0f) {
    if (!(rope_llama3_factor >= 1.0f) || !std::isfinite(rope_llama3_factor))
      fail("model shape: the llama3 RoPE factor must be >= 1, got {}", rope_llama3_factor);
    if (!(rope_low_freq_factor > 0) || !(rope_high_freq_factor > rope_low_freq_factor))
      fail("model shape: llama3 RoPE needs 0 < low_freq_factor ({}) < high_freq_factor ({})", rope_low_freq_factor,
           rope_high_freq_factor);
    if (rope_orig_ctx <= 0) fail("model shape: llama3 RoPE original context must be positive, got {}", rope_orig_ctx);
  }
}

std::vector<float> llama3_rope_freqs(int head_dim, float base, float factor, float low_freq_factor,
                                     float high_freq_factor, int orig_ctx) {
  const float low_wavelen = float(orig_ctx) / low_freq_factor, high_wavelen = float(orig_ctx) / high_freq_factor;
  std::vector<float> out;
  for (int i = 0; i < head_dim; i += 2) {
    // float32 throughout, as the converter computes it with torch.float32.
    const float freq = 1.0f / std::pow(base, float(i) / float(head_dim));
    const float wavelen = 2.0f * float(M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = (float(orig_ctx) / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  return out;
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
    s.rope_llama3_factor = 32.0f;  // Llama 3.2's rope_scaling (low 1, high 4, original context 8192)
    return s;
  }
  if (name == "8b") {  // Llama-3.1-8B
    s.n_embd = 4096, s.n_layer = 32, s.n_head = 32, s.n_head_kv = 8, s.n_ff = 14336, s.n_ctx_train = 8192;
    s.rope_theta = 500000.0f;
    s.rope_llama3_factor = 8.0f;  // Llama 3.1's rope_scaling (low 1, high 4, original context 8192)
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

void collect_strings(const json& j, std::vector<std::string>& out) {
  if (j.is_string()) out.push_back(j.get<std::string>());
  if (j.is_array() || j.is_object())
    for (const auto& x : j) collect_strings(x, out);
}

std::vector<std::string> corpus_texts(const std::vector<fs::path>& files) {
  std::vector<std::string> texts;
  for (const auto& f : files) {
    if (f.extension() == ".jsonl")
      read_jsonl(f, [&](const json& j, size_t) { collect_strings(j, texts); });
    else
      texts.push_back(read_file(f));
  }
  return texts;
}

void set_tokenizer(gguf_context* g, const ModelInitOptions& o, int& n_vocab) {
  if (o.vocab_from.empty()) {
    BuiltinVocab v = o.vocab_train.empty() ? builtin_vocab(o.extra_words)
                                           : learned_vocab(corpus_texts(o.vocab_train), o.vocab_merges, o.vocab_split_punct);
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

void ModelInitOptions::validate() const {
  shape.validate();
  if (!(init_std >= 0.0f && init_std <= 10.0f)) fail("--std must be in [0, 10], got {}", init_std);
  if (vocab_merges < 0 || vocab_merges > 1000000) fail("--vocab-merges must be in 0..1000000, got {}", vocab_merges);
  if (n_threads < 0 || n_threads > 4096) fail("--threads must be in 0..4096, got {}", n_threads);
}

ModelInitResult model_init(const fs::path& out, const ModelInitOptions& o) {
  engine_init();
  const ModelShape& s = o.shape;
  o.validate();
  if (o.vocab_split_punct && o.vocab_train.empty())
    fail("vocab_split_punct (--vocab-split-punct) shapes a vocabulary fitted to text: give vocab_train (--vocab-train) too");
  std::string type = o.type;
  std::transform(type.begin(), type.end(), type.begin(), ::tolower);
  const bool direct = type == "f32" || type == "f16" || type == "bf16";
  const ggml_type wtype = type == "f32" ? GGML_TYPE_F32 : type == "bf16" ? GGML_TYPE_BF16 : GGML_TYPE_F16;
  int n_threads = compute_threads(o.n_threads);

  GgufWriter w;
  gguf_context* g = w.kv();
  int n_vocab = 0;
  set_tokenizer(g, o, n_vocab);
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_str(g, "general.name", o.name.c_str());
  gguf_set_val_u32(g, "general.file_type",
                   wtype == GGML_TYPE_F32 ? LLAMA_FTYPE_ALL_F32
                   : wtype == GGML_TYPE_BF16 ? LLAMA_FTYPE_MOSTLY_BF16 : LLAMA_FTYPE_MOSTLY_F16);
  gguf_set_val_u32(g, "general.quantization_version", 2);
  gguf_set_val_u32(g, "llama.context_length", s.n_ctx_train);
  gguf_set_val_u32(g, "llama.embedding_length", s.n_embd);
  gguf_set_val_u32(g, "llama.block_count", s.n_layer);
  gguf_set_val_u32(g, "llama.feed_forward_length", s.n_ff);
  gguf_set_val_u32(g, "llama.attention.head_count", s.n_head);
  gguf_set_val_u32(g, "llama.attention.head_count_kv", s.n_head_kv);
  gguf_set_val_u32(g, "llama.rope.dimension_count", s.n_embd / s.n_head);
  gguf_set_val_f32(g, "llama.rope.freq_base", s.rope_theta);
  gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", s.rms_eps);
  gguf_set_val_u32(g, "llama.vocab_size", n_vocab);
  gguf_set_val_u64(g, "cogumi.init.seed", o.seed);

  std::vector<float> rope_freqs;
  if (s.rope_llama3_factor != 0.0f)
    rope_freqs = llama3_rope_freqs(s.n_embd / s.n_head, s.rope_theta, s.rope_llama3_factor, s.rope_low_freq_factor,
                                   s.rope_high_freq_factor, s.rope_orig_ctx);
  if (!rope_freqs.empty()) w.add_tensor("rope_freqs.weight", GGML_TYPE_F32, int64_t(rope_freqs.size()));
  uint64_t n_params = rope_freqs.size();
  for (auto& sp : llama_tensors(s, n_vocab)) {
    w.add_tensor(sp.name, sp.ne1 == 1 ? GGML_TYPE_F32 : wtype, sp.ne0, sp.ne1);
    n_params += uint64_t(sp.ne0) * uint64_t(sp.ne1);
  }
  fs::path final_out = out;
  fs::path raw = direct ? out : fs::path(out.string() + ".f16.tmp");
  w.write(raw, [&](const std::string& name, float* buf, int64_t n) {
    if (name == "rope_freqs.weight")
      std::copy(rope_freqs.begin(), rope_freqs.end(), buf);
    else if (name.find("_norm") != std::string::npos)
      std::fill(buf, buf + n, 1.0f);
    else
      fill_uniform(buf, n, o.seed, name, o.init_std, n_threads);
  });
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
  // llama.cpp refuses any quantized input unless allow_requantize; to a float type that is a
  // dequantization (the way to a trainable base), so it is allowed there only.
  qp.allow_requantize = type == "f32" || type == "f16" || type == "bf16";
  fs::path tmp = out.string() + ".part." + std::to_string(getpid());
  if (llama_model_quantize(in.c_str(), tmp.c_str(), &qp) != 0) {
    fs::remove(tmp);
    fail("quantizing '{}' to {} failed: {}", in.string(), type, engine_last_error());
  }
  fs::rename(tmp, out);
}

}  // namespace cogumi
