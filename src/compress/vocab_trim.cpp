#include "compress/vocab_trim.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>

#include "compress/gguf_file.h"
#include "core/error.h"
#include "core/io.h"
#include "engine/generate.h"
#include "engine/logits.h"
#include "engine/model.h"

namespace cogumi {

namespace fs = std::filesystem;

void VocabTrimOptions::validate() const {
  if (corpus.empty()) fail("compress vocab: give at least one --corpus file");
  if (min_count < 1) fail("compress vocab: --min-count must be >= 1, got {}", min_count);
  if (generate < 0 || generate > 4096) fail("compress vocab: --generate must be in 0..4096, got {}", generate);
}

namespace {

void collect_strings(const json& j, std::vector<std::string>& out) {
  if (j.is_string())
    out.push_back(j.get<std::string>());
  else if (j.is_array() || j.is_object())
    for (const auto& v : j) collect_strings(v, out);
}

bool is_jsonl(const fs::path& p) {
  const std::string s = p.string();
  return s.ends_with(".jsonl") || s.ends_with(".jsonl.gz");
}

// llama_token_type values (llama.h).
constexpr int32_t kNormal = 1, kUnused = 5;

struct Vocab {
  std::string model;  // tokenizer.ggml.model
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  std::vector<float> scores;         // empty when absent
  std::vector<std::string> merges;   // empty when absent
};

std::vector<std::string> str_array(const GgufFile& f, const char* key, bool required) {
  const int64_t id = gguf_find_key(f.get(), key);
  if (id < 0) {
    if (required) fail("'{}': no '{}' (not a model with a tokenizer)", f.path().string(), key);
    return {};
  }
  if (gguf_get_kv_type(f.get(), id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(f.get(), id) != GGUF_TYPE_STRING)
    fail("'{}': '{}' is not a string array", f.path().string(), key);
  std::vector<std::string> v(gguf_get_arr_n(f.get(), id));
  for (size_t i = 0; i < v.size(); ++i) v[i] = gguf_get_arr_str(f.get(), id, i);
  return v;
}

template <typename T>
std::vector<T> pod_array(const GgufFile& f, const char* key, gguf_type type, size_t n) {
  const int64_t id = gguf_find_key(f.get(), key);
  if (id < 0) return {};
  if (gguf_get_kv_type(f.get(), id) != GGUF_TYPE_ARRAY || gguf_get_arr_type(f.get(), id) != type ||
      gguf_get_arr_n(f.get(), id) != n)
    fail("'{}': '{}' is not a {}-entry {} array", f.path().string(), key, n, gguf_type_name(type));
  const T* d = static_cast<const T*>(gguf_get_arr_data(f.get(), id));
  return std::vector<T>(d, d + n);
}

Vocab read_vocab(const GgufFile& f) {
  Vocab v;
  v.model = f.str("tokenizer.ggml.model");
  if (v.model != "llama" && v.model != "gpt2")
    fail("'{}': tokenizer '{}' is not supported (compress vocab trims SPM 'llama' and BPE 'gpt2' vocabularies)",
         f.path().string(), v.model);
  v.tokens = str_array(f, "tokenizer.ggml.tokens", true);
  v.types = pod_array<int32_t>(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, v.tokens.size());
  if (v.types.empty()) v.types.assign(v.tokens.size(), kNormal);
  v.scores = pod_array<float>(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, v.tokens.size());
  v.merges = str_array(f, "tokenizer.ggml.merges", false);
  return v;
}

// Keys "tokenizer.ggml.*_token_id": the special token ids to remap.
std::vector<std::string> special_id_keys(const GgufFile& f) {
  std::vector<std::string> keys;
  for (int64_t i = 0; i < gguf_get_n_kv(f.get()); ++i) {
    const std::string k = gguf_get_key(f.get(), i);
    if (k.starts_with("tokenizer.ggml.") && k.ends_with("_token_id") && gguf_get_kv_type(f.get(), i) == GGUF_TYPE_UINT32)
      keys.push_back(k);
  }
  return keys;
}

size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

struct Keep {
  std::vector<char> keep;
  int n_used = 0, n_inner = 0, n_generated = 0;
  uint64_t corpus_tokens = 0;
};

// Counts the tokens of `generate` greedy tokens after each text (texts too long for the context
// are skipped); returns how many distinct tokens this adds.
int count_generated(const fs::path& model, const std::vector<std::string>& texts, const VocabTrimOptions& o,
                    std::vector<uint64_t>& count) {
  auto m = Model::load(model);
  GeneratorOptions go;
  go.n_parallel = 16;
  Generator g(m, go);
  std::vector<GenRequest> reqs;
  for (const std::string& t : texts) {
    GenRequest r;
    r.prompt = t;
    r.max_tokens = o.generate;
    r.n_logprobs = 0;  // the chosen token ids
    reqs.push_back(std::move(r));
  }
  int added = 0;
  for (const GenResult& r : g.generate(reqs))
    for (const TokenLogprob& lp : r.logprobs)
      if (lp.token >= 0 && size_t(lp.token) < count.size() && count[size_t(lp.token)]++ == 0) ++added;
  return added;
}

// Corpus tokens (as llama.cpp tokenizes them), the pieces inside them, and what is always kept.
Keep choose_tokens(const fs::path& model, const GgufFile& f, const Vocab& v, const VocabTrimOptions& o) {
  const size_t n = v.tokens.size();
  Keep k;
  k.keep.assign(n, 0);
  std::vector<uint64_t> count(n, 0);
  ModelOptions mo;
  mo.vocab_only = true;
  auto m = Model::load(model, mo);
  const std::vector<std::string> texts = corpus_file_texts(o.corpus);
  for (const std::string& text : texts)
    for (Token t : m->tokenize(text, true, true)) {
      if (t >= 0 && size_t(t) < n) ++count[size_t(t)];
      ++k.corpus_tokens;
    }
  if (o.generate > 0) k.n_generated = count_generated(model, texts, o, count);
  std::unordered_map<std::string, size_t> id_of;
  for (size_t i = 0; i < n; ++i) id_of.emplace(v.tokens[i], i);
  for (size_t i = 0; i < n; ++i) {
    const bool special = v.types[i] != kNormal && v.types[i] != kUnused;
    const bool one_char = !v.tokens[i].empty() && utf8_len((unsigned char)v.tokens[i][0]) == v.tokens[i].size();
    if (special || (o.keep_chars && one_char)) k.keep[i] = 1;
  }
  for (const std::string& key : special_id_keys(f)) {
    const uint32_t id = gguf_get_val_u32(f.get(), gguf_find_key(f.get(), key.c_str()));
    if (id < n) k.keep[id] = 1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (count[i] < uint64_t(o.min_count)) continue;
    ++k.n_used;
    k.keep[i] = 1;
    const std::string& s = v.tokens[i];
    for (size_t a = 0; a < s.size(); a += utf8_len((unsigned char)s[a]))
      for (size_t b = a + utf8_len((unsigned char)s[a]); b <= s.size(); b += b < s.size() ? utf8_len((unsigned char)s[b]) : 1) {
        auto it = id_of.find(s.substr(a, b - a));
        if (it != id_of.end() && !k.keep[it->second]) {
          k.keep[it->second] = 1;
          if (count[it->second] < uint64_t(o.min_count)) ++k.n_inner;
        }
      }
  }
  return k;
}

// The tokenizer keys rewritten for the kept ids (`map`: old id -> new id, -1 when dropped).
void rewrite_tokenizer(gguf_context* g, const GgufFile& f, const Vocab& v, const std::vector<int64_t>& map,
                       VocabTrimResult& r) {
  std::vector<const char*> toks;
  std::vector<int32_t> types;
  std::vector<float> scores;
  std::set<std::string> kept;
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (map[i] < 0) continue;
    toks.push_back(v.tokens[i].c_str());
    types.push_back(v.types[i]);
    if (!v.scores.empty()) scores.push_back(v.scores[i]);
    kept.insert(v.tokens[i]);
  }
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks.data(), toks.size());
  gguf_set_arr_data(g, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types.data(), types.size());
  if (!v.scores.empty()) gguf_set_arr_data(g, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores.data(), scores.size());
  if (!v.merges.empty()) {
    // A merge survives when both halves and its result do; the order (the ranks) is kept.
    std::vector<const char*> merges;
    for (const std::string& m : v.merges) {
      const size_t sp = m.find(' ', 1);
      if (sp == std::string::npos) continue;
      const std::string a = m.substr(0, sp), b = m.substr(sp + 1);
      if (kept.count(a) && kept.count(b) && kept.count(a + b)) merges.push_back(m.c_str());
    }
    gguf_set_arr_str(g, "tokenizer.ggml.merges", merges.data(), merges.size());
    r.n_merges_out = merges.size();
  }
  for (const std::string& key : special_id_keys(f)) {
    const uint32_t id = gguf_get_val_u32(f.get(), gguf_find_key(f.get(), key.c_str()));
    if (id < map.size()) gguf_set_val_u32(g, key.c_str(), uint32_t(map[id]));
  }
  const std::string vs = f.str("general.architecture") + ".vocab_size";
  if (gguf_find_key(f.get(), vs.c_str()) >= 0) gguf_set_val_u32(g, vs.c_str(), uint32_t(toks.size()));
}

struct GgmlCtxDel {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

bool is_vocab_tensor(const GgufFile& f, int64_t i, size_t n_vocab) {
  const std::string name = gguf_get_tensor_name(f.get(), i);
  return (name == "token_embd.weight" || name == "output.weight") && f.ne(i)[1] == int64_t(n_vocab) && f.ne(i)[2] == 1;
}

// Every tensor as it was, except token_embd / output: only the kept rows, in order.
void write_model(const GgufFile& f, gguf_context* g, const std::vector<int64_t>& map, int64_t n_keep,
                 const fs::path& out) {
  const size_t n_vocab = map.size();
  const int64_t n_tensors = gguf_get_n_tensors(f.get());
  ggml_init_params ip{size_t(n_tensors + 8) * ggml_tensor_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, GgmlCtxDel> ctx(ggml_init(ip));
  bool has_embd = false;
  for (int64_t i = 0; i < n_tensors; ++i) {
    const int64_t* ne = f.ne(i);
    const bool trim = is_vocab_tensor(f, i, n_vocab);
    has_embd |= trim && std::string(gguf_get_tensor_name(f.get(), i)) == "token_embd.weight";
    ggml_tensor* t = ggml_new_tensor_4d(ctx.get(), f.type(i), ne[0], trim ? n_keep : ne[1], ne[2], ne[3]);
    ggml_set_name(t, gguf_get_tensor_name(f.get(), i));
    gguf_add_tensor(g, t);
  }
  if (!has_embd) fail("'{}': no token_embd.weight with one row per token ({})", f.path().string(), n_vocab);
  AtomicFileOut o(out);
  std::vector<char> meta(gguf_get_meta_size(g));
  gguf_get_meta_data(g, meta.data());
  o.put(meta.data(), meta.size());
  for (int64_t i = 0; i < n_tensors; ++i) {
    o.pad_to(meta.size() + gguf_get_tensor_offset(g, i));
    const std::vector<char> d = f.bytes(i);
    if (!is_vocab_tensor(f, i, n_vocab)) {
      o.put(d.data(), d.size());
      continue;
    }
    const size_t row = ggml_row_size(f.type(i), f.ne(i)[0]);
    for (size_t t = 0; t < n_vocab; ++t)
      if (map[t] >= 0) o.put(d.data() + t * row, row);
  }
  const size_t align = gguf_get_alignment(g);
  o.pad_to((o.written() + align - 1) / align * align);
  o.commit();
}

}  // namespace

std::vector<std::string> corpus_file_texts(const std::vector<fs::path>& files) {
  std::vector<std::string> texts;
  for (const fs::path& p : files) {
    if (is_jsonl(p))
      read_jsonl(p, [&](const json& obj, size_t) { collect_strings(obj, texts); });
    else
      texts.push_back(read_file(p));
  }
  return texts;
}

double TextScore::ppl() const { return n_tokens ? std::exp(nll / double(n_tokens)) : 0.0; }
double TextScore::bits_per_byte() const { return n_bytes ? nll / std::log(2.0) / double(n_bytes) : 0.0; }

TextScore score_texts(const fs::path& model, const std::vector<std::string>& texts, size_t max_bytes, int n_threads) {
  auto m = Model::load(model);
  const size_t n_vocab = size_t(m->n_vocab());
  TextScore s;
  for (std::string text : texts) {
    if (text.size() > max_bytes) {
      size_t cut = max_bytes;
      while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
      text.resize(cut);
    }
    std::vector<Token> toks = m->tokenize(text, true, false);
    if (toks.size() > size_t(m->n_ctx_train())) fail("score: a text of {} bytes is {} tokens, more than the context {}",
                                                      text.size(), toks.size(), m->n_ctx_train());
    if (toks.size() < 2) continue;
    const std::vector<float> logits = model_logits(*m, toks, "", 1.0f, n_threads);
    for (size_t i = 1; i < toks.size(); ++i) {
      const float* row = &logits[(i - 1) * n_vocab];
      const float mx = *std::max_element(row, row + n_vocab);
      double z = 0.0;
      for (size_t v = 0; v < n_vocab; ++v) z += std::exp(double(row[v] - mx));
      s.nll += std::log(z) + mx - row[size_t(toks[i])];
    }
    s.n_tokens += toks.size() - 1;
    s.n_bytes += text.size();
    ++s.n_texts;
  }
  return s;
}

VocabTrimResult vocab_trim(const fs::path& model, const fs::path& out, const VocabTrimOptions& opts) {
  opts.validate();
  GgufFile f(model);
  const Vocab v = read_vocab(f);
  const Keep k = choose_tokens(model, f, v, opts);
  std::vector<int64_t> map(v.tokens.size(), -1);
  int64_t n_keep = 0;
  for (size_t i = 0; i < map.size(); ++i)
    if (k.keep[i]) map[i] = n_keep++;
  VocabTrimResult r;
  r.n_vocab_in = int(v.tokens.size());
  r.n_vocab_out = int(n_keep);
  r.n_used = k.n_used;
  r.n_inner = k.n_inner;
  r.n_generated = k.n_generated;
  r.corpus_tokens = k.corpus_tokens;
  r.n_merges_in = v.merges.size();
  std::unique_ptr<gguf_context, decltype(&gguf_free)> g(gguf_init_empty(), gguf_free);
  gguf_set_kv(g.get(), f.get());
  rewrite_tokenizer(g.get(), f, v, map, r);
  write_model(f, g.get(), map, n_keep, out);
  r.bytes_in = fs::file_size(model);
  r.bytes_out = fs::file_size(out);
  return r;
}

}  // namespace cogumi
