// cogumi/engine: the only door to llama.cpp. This header: a loaded model, its metadata,
// tokenizer, chat template and LoRA adapters.
//
// Nothing here includes llama.h; llama.cpp types appear only as opaque forward declarations
// so that llama.cpp's API churn stays inside src/engine, src/train and src/compress.
//
// Thread safety: a Model is immutable after load except for load_adapter(), which must not
// run concurrently with generation. Many Generators may share one Model.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct llama_model;
struct llama_adapter_lora;

namespace cogumi {

namespace fs = std::filesystem;
using Token = int32_t;

struct ModelOptions {
  int n_gpu_layers = -1;   // -1: every layer on the GPU when a GPU backend exists; 0: CPU only
  bool use_mmap = true;    // map weights instead of reading them (fast start, shared pages)
  bool vocab_only = false; // load only the tokenizer (tests, tokenizing data sets)
  // CPU weight repacking into llama.cpp's extra buffer types (AMX tiles on CPUs that have them,
  // interleaved quants elsewhere). Batched quantized decode through AMX died with SIGILL/SIGSEGV
  // when GCC 12 dropped the tile configuration's stores: patches/0003-amx-tile-config.patch fixes
  // that, and tests/engine/quant_decode_test.cpp checks repacked decode against the plain path.
  bool repack = true;
};

struct TensorTypeCount {
  std::string type;  // ggml type name: f32, f16, q4_K, ...
  int64_t n_tensors = 0;
  uint64_t n_bytes = 0;
};

struct ModelInfo {
  std::string path;
  std::string arch;            // general.architecture
  std::string name;            // general.name
  std::string description;     // llama.cpp's one-line description ("llama 8B Q4_K - Medium")
  std::string file_type;       // ftype name
  uint64_t n_params = 0;
  uint64_t size_bytes = 0;     // tensor data bytes
  uint64_t file_bytes = 0;
  int32_t n_ctx_train = 0;
  int32_t n_embd = 0, n_layer = 0, n_head = 0, n_head_kv = 0;
  int32_t n_vocab = 0;
  std::string vocab_type;      // spm, bpe, wpm, ...
  Token bos = -1, eos = -1, eot = -1;
  std::string chat_template;   // empty when the model has none
  std::vector<TensorTypeCount> tensor_types;
  std::map<std::string, std::string> metadata;  // every GGUF key, values as strings (arrays summarised)
};

struct ChatMessage {
  std::string role;     // system, user, assistant, tool
  std::string content;
  // OpenAI's fields around tool calls, read by the Jinja templates (engine/chat_jinja.h) only: an assistant's
  // `tool_calls` (their JSON list, as the API gives it), a tool message's `tool_call_id` and `name`.
  std::string tool_calls;
  std::string tool_call_id;
  std::string name;
};

class Model {
 public:
  // Loads a GGUF. Throws Error naming the path for a missing, unreadable or corrupt file,
  // or an architecture this llama.cpp does not support.
  static std::shared_ptr<Model> load(const fs::path& path, const ModelOptions& opts = {});
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelInfo& info() const { return info_; }
  int32_t n_vocab() const { return info_.n_vocab; }
  int32_t n_ctx_train() const { return info_.n_ctx_train; }

  // add_special: prepend BOS when the vocabulary asks for it.
  // parse_special: turn "<|im_start|>"-style text into control tokens.
  std::vector<Token> tokenize(std::string_view text, bool add_special = true,
                              bool parse_special = true) const;
  std::string token_to_piece(Token t, bool special = false) const;
  std::string detokenize(const std::vector<Token>& tokens, bool special = false) const;
  bool is_eog(Token t) const;
  // Whether `text` holds control-token text ("<|eot_id|>"): its tokens differ with special tokens parsed.
  bool has_control_text(const std::string& text) const {
    return tokenize(text, false, true) != tokenize(text, false, false);
  }

  // Formats messages with the model's chat template, or with `template_override` (a
  // llama.cpp built-in template name such as "chatml" or "llama3", or a template text).
  // Throws Error when the model has no template and none is given.
  std::string apply_chat_template(const std::vector<ChatMessage>& messages, bool add_assistant = true,
                                  const std::string& template_override = "") const;
  bool has_chat_template() const { return !info_.chat_template.empty(); }

  // The chat-formatted text and its tokens, with special tokens parsed in the template's markup
  // only: a message that contains control-token text ("<|eot_id|>") keeps it as plain text, so
  // data can't end a turn or forge a role. Messages without such text tokenize exactly as the
  // whole string would. Throws Error if the template rewrote such a message so it can't be found.
  struct ChatTokens {
    std::string text;
    std::vector<Token> tokens;
  };
  ChatTokens tokenize_chat(const std::vector<ChatMessage>& messages, bool add_assistant = true,
                           const std::string& template_override = "") const;
  // The same for any renderer of messages (engine/chat_jinja.h's Jinja templates): `render` is called on the
  // messages, and again with each content replaced by a marker to find the markup around it.
  ChatTokens tokenize_rendered(const std::vector<ChatMessage>& messages,
                               const std::function<std::string(const std::vector<ChatMessage>&)>& render) const;

  // LoRA adapters (GGUF). Loaded once; applied per request by name (see Generator).
  // Throws Error for a missing file or an adapter that does not fit this model.
  void load_adapter(const std::string& name, const fs::path& path);
  bool has_adapter(const std::string& name) const { return adapters_.count(name) > 0; }
  std::vector<std::string> adapter_names() const;
  // Whether the model's layers live on a GPU (loaded with n_gpu_layers != 0 where a GPU backend exists).
  bool offloaded() const { return offloaded_; }

  // Engine-internal handles (for src/engine, src/train, src/compress only).
  llama_model* raw() const { return model_; }
  llama_adapter_lora* raw_adapter(const std::string& name) const;  // throws for unknown names

 private:
  Model() = default;
  llama_model* model_ = nullptr;
  ModelInfo info_;
  bool offloaded_ = false;
  std::map<std::string, llama_adapter_lora*> adapters_;
};

// Initialises llama.cpp's backends once per process and routes its log lines to Cogumi's
// log (quiet unless verbose). Called by every entry point that touches llama.cpp. Each call also
// flushes denormal floats to zero in the calling thread (x86's FTZ and DAZ; ggml's worker threads,
// created later from it, inherit the setting): attention's softmax and its gradients hold values
// below FLT_MIN, and a CPU matmul reading them ran 57x slower (bench/RESULTS.md, "Denormals").
void engine_init();
// Whether denormal floats are flushed to zero in the calling thread (false where the CPU has no such mode).
bool engine_flushes_denormals();
void engine_set_verbose(bool verbose);
bool engine_verbose();
// The last error-level line llama.cpp logged (used to explain a failed load).
std::string engine_last_error();
// Names of the compute backends available (e.g. "CPU", "CUDA0").
std::vector<std::string> engine_devices();

}  // namespace cogumi
