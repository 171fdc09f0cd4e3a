#include "engine/model.h"

#include <ggml-backend.h>
#include <gguf.h>
#include <llama.h>

#include <cstdio>
#include <cstring>
#include <mutex>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define COGUMI_HAVE_MXCSR 1
#endif

#include "core/error.h"

namespace cogumi {

namespace {
std::mutex g_log_mu;
std::string g_last_error;
bool g_verbose = false;

void log_cb(ggml_log_level level, const char* text, void*) {
  std::lock_guard<std::mutex> lk(g_log_mu);
  if (level == GGML_LOG_LEVEL_ERROR) {
    std::string s(text);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (!s.empty()) g_last_error = s;
  }
  if (g_verbose) std::fputs(text, stderr);
}
}  // namespace

void engine_init() {
#ifdef COGUMI_HAVE_MXCSR
  _mm_setcsr(_mm_getcsr() | 0x8040);  // FTZ (bit 15) and DAZ (bit 6)
#endif
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(log_cb, nullptr);
    llama_backend_init();
  });
}

bool engine_flushes_denormals() {
#ifdef COGUMI_HAVE_MXCSR
  return (_mm_getcsr() & 0x8040) == 0x8040;
#else
  return false;
#endif
}

bool engine_verbose() {
  std::lock_guard<std::mutex> lk(g_log_mu);
  return g_verbose;
}

void engine_set_verbose(bool verbose) {
  std::lock_guard<std::mutex> lk(g_log_mu);
  g_verbose = verbose;
}

std::string engine_last_error() {
  std::lock_guard<std::mutex> lk(g_log_mu);
  return g_last_error;
}

std::vector<std::string> engine_devices() {
  engine_init();
  std::vector<std::string> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) out.push_back(ggml_backend_dev_name(ggml_backend_dev_get(i)));
  return out;
}

static std::string meta_str(const llama_model* m, const char* key) {
  char buf[512];
  int n = llama_model_meta_val_str(m, key, buf, sizeof buf);
  return n < 0 ? std::string() : std::string(buf);
}

static void check_gguf_header(const fs::path& path) {
  if (!fs::exists(path)) fail("model file not found: '{}'", path.string());
  if (fs::is_directory(path)) fail("'{}' is a directory, expected a GGUF file", path.string());
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  char magic[4] = {};
  size_t n = std::fread(magic, 1, 4, f);
  std::fclose(f);
  if (n < 4 || std::memcmp(magic, "GGUF", 4) != 0)
    fail("'{}' is not a GGUF file (missing the GGUF magic bytes)", path.string());
}

// Reads tensor types and the full key/value list straight from the GGUF header.
static void read_gguf_details(const fs::path& path, ModelInfo& info) {
  gguf_init_params p{/*no_alloc=*/true, /*ctx=*/nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), p);
  if (!g) return;
  std::map<std::string, TensorTypeCount> types;
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    auto& tc = types[ggml_type_name(gguf_get_tensor_type(g, i))];
    tc.type = ggml_type_name(gguf_get_tensor_type(g, i));
    tc.n_tensors++;
    tc.n_bytes += gguf_get_tensor_size(g, i);
  }
  for (auto& [_, tc] : types) info.tensor_types.push_back(tc);
  for (int64_t i = 0; i < gguf_get_n_kv(g); ++i) {
    std::string key = gguf_get_key(g, i);
    std::string val;
    gguf_type t = gguf_get_kv_type(g, i);
    switch (t) {
      case GGUF_TYPE_STRING: val = gguf_get_val_str(g, i); break;
      case GGUF_TYPE_ARRAY:
        val = fmt::format("[{} x {}]", gguf_get_arr_n(g, i), gguf_type_name(gguf_get_arr_type(g, i)));
        break;
      case GGUF_TYPE_UINT32: val = std::to_string(gguf_get_val_u32(g, i)); break;
      case GGUF_TYPE_INT32: val = std::to_string(gguf_get_val_i32(g, i)); break;
      case GGUF_TYPE_UINT64: val = std::to_string(gguf_get_val_u64(g, i)); break;
      case GGUF_TYPE_FLOAT32: val = fmt::format("{}", gguf_get_val_f32(g, i)); break;
      case GGUF_TYPE_BOOL: val = gguf_get_val_bool(g, i) ? "true" : "false"; break;
      case GGUF_TYPE_UINT8: val = std::to_string(gguf_get_val_u8(g, i)); break;
      case GGUF_TYPE_INT8: val = std::to_string(gguf_get_val_i8(g, i)); break;
      case GGUF_TYPE_UINT16: val = std::to_string(gguf_get_val_u16(g, i)); break;
      case GGUF_TYPE_INT16: val = std::to_string(gguf_get_val_i16(g, i)); break;
      case GGUF_TYPE_INT64: val = std::to_string(gguf_get_val_i64(g, i)); break;
      case GGUF_TYPE_FLOAT64: val = fmt::format("{}", gguf_get_val_f64(g, i)); break;
      default: val = "?";
    }
    if (key == "tokenizer.chat_template") info.chat_template = val;
    if (val.size() > 200) val = val.substr(0, 200) + "...";
    info.metadata[key] = val;
  }
  gguf_free(g);
}

std::shared_ptr<Model> Model::load(const fs::path& path, const ModelOptions& opts) {
  engine_init();
  check_gguf_header(path);
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = opts.n_gpu_layers < 0 ? 999 : opts.n_gpu_layers;
  mp.vocab_only = opts.vocab_only;
  mp.use_extra_bufts = opts.repack;
  if (!opts.use_mmap) mp.load_mode = LLAMA_LOAD_MODE_NONE;
  llama_model* m = llama_model_load_from_file(path.c_str(), mp);
  if (!m) {
    std::string why = engine_last_error();
    fail("failed to load model '{}': {}", path.string(), why.empty() ? "llama.cpp could not read it" : why);
  }
  std::shared_ptr<Model> model(new Model());
  model->model_ = m;
  for (size_t i = 0; i < ggml_backend_dev_count() && opts.n_gpu_layers != 0 && !opts.vocab_only; ++i) {
    const auto type = ggml_backend_dev_type(ggml_backend_dev_get(i));
    model->offloaded_ |= type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
  }
  ModelInfo& info = model->info_;
  info.path = path.string();
  info.arch = meta_str(m, "general.architecture");
  info.name = meta_str(m, "general.name");
  char buf[256];
  llama_model_desc(m, buf, sizeof buf);
  info.description = buf;
  info.file_type = llama_ftype_name(llama_model_ftype(m));
  info.file_bytes = fs::file_size(path);
  if (!opts.vocab_only) {  // llama.cpp aborts on shape queries of a vocabulary-only model
    info.n_params = llama_model_n_params(m);
    info.size_bytes = llama_model_size(m);
    info.n_ctx_train = llama_model_n_ctx_train(m);
    info.n_embd = llama_model_n_embd(m);
    info.n_layer = llama_model_n_layer(m);
    info.n_head = llama_model_n_head(m);
    info.n_head_kv = llama_model_n_head_kv(m);
  }
  const llama_vocab* v = llama_model_get_vocab(m);
  info.n_vocab = llama_vocab_n_tokens(v);
  static const char* vt[] = {"none", "spm", "bpe", "wpm", "ugm", "rwkv", "plamo2"};
  int t = llama_vocab_type(v);
  info.vocab_type = (t >= 0 && t < 7) ? vt[t] : "other";
  info.bos = llama_vocab_bos(v);
  info.eos = llama_vocab_eos(v);
  info.eot = llama_vocab_eot(v);
  read_gguf_details(path, info);
  if (info.chat_template.empty()) {
    const char* tmpl = llama_model_chat_template(m, nullptr);
    if (tmpl) info.chat_template = tmpl;
  }
  return model;
}

Model::~Model() {
  for (auto& [_, a] : adapters_) llama_adapter_lora_free(a);
  if (model_) llama_model_free(model_);
}

std::vector<Token> Model::tokenize(std::string_view text, bool add_special, bool parse_special) const {
  const llama_vocab* v = llama_model_get_vocab(model_);
  std::vector<Token> toks(text.size() + 8);
  int n = llama_tokenize(v, text.data(), int32_t(text.size()), toks.data(), int32_t(toks.size()), add_special,
                         parse_special);
  if (n < 0) {
    toks.resize(-n);
    n = llama_tokenize(v, text.data(), int32_t(text.size()), toks.data(), int32_t(toks.size()), add_special,
                       parse_special);
  }
  if (n < 0) fail("tokenization failed ({} bytes of text)", text.size());
  toks.resize(n);
  return toks;
}

std::string Model::token_to_piece(Token t, bool special) const {
  const llama_vocab* v = llama_model_get_vocab(model_);
  char buf[256];
  int n = llama_token_to_piece(v, t, buf, sizeof buf, 0, special);
  if (n < 0) {
    std::string s(-n, '\0');
    llama_token_to_piece(v, t, s.data(), int32_t(s.size()), 0, special);
    return s;
  }
  return std::string(buf, n);
}

std::string Model::detokenize(const std::vector<Token>& tokens, bool special) const {
  const llama_vocab* v = llama_model_get_vocab(model_);
  std::string out(tokens.size() * 8 + 16, '\0');
  int n = llama_detokenize(v, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()), false, special);
  if (n < 0) {
    out.resize(-n);
    n = llama_detokenize(v, tokens.data(), int32_t(tokens.size()), out.data(), int32_t(out.size()), false, special);
  }
  out.resize(std::max(n, 0));
  return out;
}

bool Model::is_eog(Token t) const { return llama_vocab_is_eog(llama_model_get_vocab(model_), t); }

std::string Model::apply_chat_template(const std::vector<ChatMessage>& messages, bool add_assistant,
                                       const std::string& template_override) const {
  std::string tmpl = template_override.empty() ? info_.chat_template : template_override;
  if (tmpl.empty())
    fail("model '{}' has no chat template; pass a template name (e.g. chatml, llama3) or use plain completion",
         info_.path);
  std::vector<llama_chat_message> msgs;
  for (const auto& m : messages) msgs.push_back({m.role.c_str(), m.content.c_str()});
  size_t total = 0;
  for (const auto& m : messages) total += m.content.size() + m.role.size();
  std::string buf(total * 2 + 256, '\0');
  int n = llama_chat_apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_assistant, buf.data(),
                                    int32_t(buf.size()));
  if (n < 0) fail("chat template of '{}' is not supported by llama.cpp's template engine", info_.path);
  if (size_t(n) > buf.size()) {
    buf.resize(n);
    n = llama_chat_apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_assistant, buf.data(),
                                  int32_t(buf.size()));
  }
  buf.resize(n);
  return buf;
}

namespace {

// Stands in for message i's content while the template is rendered, so the markup around each
// content is known exactly (searching for the content could match the markup itself when a
// message is "<|im_start|>"). Control characters: no template or message plausibly holds them.
std::string content_marker(size_t i) { return fmt::format("\x1e" "cogumi-content-{}\x1f", i); }

}  // namespace

Model::ChatTokens Model::tokenize_chat(const std::vector<ChatMessage>& messages, bool add_assistant,
                                       const std::string& template_override) const {
  return tokenize_rendered(
      messages, [&](const std::vector<ChatMessage>& m) { return apply_chat_template(m, add_assistant, template_override); });
}

Model::ChatTokens Model::tokenize_rendered(
    const std::vector<ChatMessage>& messages,
    const std::function<std::string(const std::vector<ChatMessage>&)>& render) const {
  ChatTokens out;
  out.text = render(messages);
  bool any_special = false;
  std::vector<bool> special(messages.size());
  for (size_t i = 0; i < messages.size(); ++i) {
    special[i] = has_control_text(messages[i].content);
    any_special = any_special || special[i];
  }
  if (!any_special) {  // the common case: exactly the whole string's tokens
    out.tokens = tokenize(out.text, true, true);
    return out;
  }
  // Render with markers in the contents that hold control-token text (the others render as they are: a template
  // may test a content, `if message.content`), then put the contents back: pieces[k] is markup, or content of
  // message idx[k].
  std::vector<ChatMessage> marked = messages;
  for (size_t i = 0; i < marked.size(); ++i)
    if (special[i]) marked[i].content = content_marker(i);
  const std::string skel = render(marked);
  struct Piece {
    size_t begin, end;
    long msg;  // -1: markup
  };
  std::vector<Piece> pieces;
  size_t pos = 0;
  while (pos < skel.size()) {
    size_t at = skel.find('\x1e', pos), close = at == std::string::npos ? at : skel.find('\x1f', at);
    long msg = -1;
    if (close != std::string::npos) {
      for (size_t i = 0; i < messages.size() && msg < 0; ++i)
        if (skel.compare(at, close + 1 - at, content_marker(i)) == 0) msg = long(i);
    }
    if (msg < 0) {  // no (further) marker
      pieces.push_back({pos, skel.size(), -1});
      break;
    }
    if (at > pos) pieces.push_back({pos, at, -1});
    pieces.push_back({at, close + 1, msg});
    pos = close + 1;
  }
  // Some templates trim contents; the text must be the one the real render gives.
  auto trim = [](std::string s) {
    s.erase(0, s.find_first_not_of(" \t\n\r"));
    s.erase(s.find_last_not_of(" \t\n\r") + 1);
    return s;
  };
  for (bool trimmed : {false, true}) {
    std::string text;
    std::vector<std::pair<std::string, bool>> parts;  // text, parse specials
    for (const auto& p : pieces) {
      if (p.msg < 0) {
        parts.emplace_back(skel.substr(p.begin, p.end - p.begin), true);
      } else {
        const std::string& c = messages[size_t(p.msg)].content;
        parts.emplace_back(trimmed ? trim(c) : c, false);
      }
      text += parts.back().first;
    }
    if (text != out.text) continue;
    // Pieces are tokenized apart, so BOS/EOS are added here once, as llama_tokenize would. (An SPM
    // vocabulary's space prefix may then start a content piece: the price of keeping it text.)
    const llama_vocab* v = llama_model_get_vocab(model_);
    if (llama_vocab_get_add_bos(v) && llama_vocab_bos(v) != LLAMA_TOKEN_NULL) out.tokens.push_back(llama_vocab_bos(v));
    for (const auto& [t, special] : parts) {
      if (t.empty()) continue;
      auto toks = tokenize(t, false, special);
      out.tokens.insert(out.tokens.end(), toks.begin(), toks.end());
    }
    if (llama_vocab_get_add_eos(v) && llama_vocab_eos(v) != LLAMA_TOKEN_NULL) out.tokens.push_back(llama_vocab_eos(v));
    return out;
  }
  fail("a message holds control-token text and the chat template of '{}' rewrites message contents, so it can't "
       "be kept as plain text",
       info_.path);
}

void Model::load_adapter(const std::string& name, const fs::path& path) {
  if (!fs::exists(path)) fail("adapter file not found: '{}'", path.string());
  if (adapters_.count(name)) fail("adapter '{}' is already loaded", name);
  llama_adapter_lora* a = llama_adapter_lora_init(model_, path.c_str());
  if (!a) {
    std::string why = engine_last_error();
    fail("failed to load LoRA adapter '{}': {}", path.string(), why.empty() ? "not a LoRA GGUF for this model" : why);
  }
  adapters_[name] = a;
}

std::vector<std::string> Model::adapter_names() const {
  std::vector<std::string> out;
  for (auto& [n, _] : adapters_) out.push_back(n);
  return out;
}

llama_adapter_lora* Model::raw_adapter(const std::string& name) const {
  auto it = adapters_.find(name);
  if (it == adapters_.end()) {
    std::string known;
    for (auto& [n, _] : adapters_) known += (known.empty() ? "" : ", ") + n;
    fail("unknown adapter '{}' (loaded: {})", name, known.empty() ? "none" : known);
  }
  return it->second;
}

}  // namespace cogumi
