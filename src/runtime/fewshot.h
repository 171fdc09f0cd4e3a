// cogumi/runtime: few-shot retrieval (the plan's Phase 7B). A bank of solved examples per
// domain; for each request, the k examples nearest to it in the request's domain go into the
// prompt as demonstrations, in the form the domain is asked in.
//
// The bank is a JSONL file a user can read and edit, one solved example per line:
//   {"domain": "math", "prompt": "Question: ...\nAnswer:", "completion": " 4 * 3 = 12\n#### 12",
//    "id": "train.jsonl:0", "source": "train"}
// "instruction"/"output" are read as prompt/completion too (the trainer's chat form). A prompt
// is the example asked exactly as the domain's requests are asked (the eval's prompt for a
// benchmark-form choice, the user's text for a chat choice); the completion is its answer.
// `cogumi fewshot build` writes banks from training sets and from answers users marked good.
//
// Beside the bank sits its index, BANK.index/: meta.json (the bank's sha256, the embedding and
// index settings) and per domain the vectors (and, at IndexOptions::exact_below examples and
// more, an HNSW graph). Opening a bank whose JSONL or settings changed rebuilds the index.
//
// Retrieval: prompts are embedded (see Embedding) and compared by cosine. An example whose
// prompt equals the query's (after whitespace and case folding) is never returned: a test item
// that also sits in the bank cannot be shown its own answer.
//
// Thread safety: a FewshotBank's const methods may be called from many threads at once.
#pragma once

#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/fewshot_index.h"

namespace cogumi {

class Model;
class Embedder;

enum class Embedding {
  hashed,  // the router's hashed word 1-2-grams + char 3-5-grams, signed-folded to `dim`
  model,   // the base model's mean-pooled final hidden states (engine/embed.h)
};

struct FewshotOptions {
  std::filesystem::path bank;        // the bank JSONL (required to use few-shot)
  int k = 3;                         // demonstrations per request, 0..32 (0: off)
  std::vector<std::string> domains;  // choices that get demonstrations (empty: every bank domain)
  Embedding embedding = Embedding::hashed;
  int dim = 256;            // hashed embedding dimension, 16..4096
  size_t max_chars = 3000;  // demonstrations' total size cap, 1..1000000 bytes
  IndexOptions index;
  // Throws Error naming the field (as the system file spells it) on a value out of range.
  void validate() const;
  bool covers(const std::string& domain) const;
};

struct BankEntry {
  std::string domain, prompt, completion, id, source;
  size_t line = 0;  // 1-based line in the bank file
};

// Reads a bank JSONL. Errors name "FILE:LINE: field".
std::vector<BankEntry> read_bank(const std::filesystem::path& path);
// Writes a bank JSONL atomically.
void write_bank(const std::filesystem::path& path, const std::vector<BankEntry>& entries);

// Text -> unit vector. Hashed embeddings need no model. embed() may be called from many threads
// (model embeddings take turns on one llama context).
class TextEmbedder {
 public:
  // `model` is required for Embedding::model (throws otherwise).
  TextEmbedder(Embedding kind, int dim, std::shared_ptr<Model> model = nullptr);
  ~TextEmbedder();
  std::vector<float> embed(const std::string& text) const;
  std::vector<float> embed_many(const std::vector<std::string>& texts) const;  // rows
  int dim() const { return dim_; }
  // What the vectors depend on (kind, dimension, model name and size), for the index's meta.
  nlohmann::json signature() const;

 private:
  Embedding kind_;
  int dim_;
  std::shared_ptr<Model> model_;
  std::unique_ptr<Embedder> embedder_;
};

// The hashed embedding of one text (TextEmbedder with Embedding::hashed).
std::vector<float> hashed_embedding(const std::string& text, int dim);

struct Retrieved {
  const BankEntry* entry = nullptr;
  float score = 0;
};

struct BankStats {
  bool rebuilt = false;  // the index was (re)built on open
  bool saved = false;    // ... and written beside the bank (false: the folder is not writable)
  double seconds = 0;    // time to open (embedding + graph build when rebuilt)
};

class FewshotBank {
 public:
  // Opens the bank and its index, rebuilding the index when it is missing or stale.
  // `model` is needed for Embedding::model.
  static FewshotBank open(const FewshotOptions& opts, std::shared_ptr<Model> model = nullptr);
  FewshotBank(FewshotBank&&) noexcept;
  FewshotBank& operator=(FewshotBank&&) noexcept;
  ~FewshotBank();

  // The k nearest examples of `domain` to `prompt`, nearest first, never one whose prompt
  // equals `prompt`. Empty for a domain the bank does not have. `exact` scores every example
  // even where an HNSW graph exists.
  std::vector<Retrieved> retrieve(const std::string& domain, const std::string& prompt, size_t k,
                                  bool exact = false) const;
  // retrieve() with the options' k, cut to the options' max_chars (nearest kept first).
  std::vector<Retrieved> demonstrations(const std::string& domain, const std::string& prompt) const;

  const FewshotOptions& options() const;
  const std::vector<BankEntry>& entries() const;
  std::vector<std::string> domains() const;
  size_t size(const std::string& domain) const;
  const VectorIndex* index(const std::string& domain) const;  // null for an unknown domain
  const TextEmbedder& embedder() const;
  const BankStats& stats() const;
  std::string sha256() const;  // of the bank file

 private:
  struct Impl;
  explicit FewshotBank(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The index folder of a bank: BANK.index beside it.
std::filesystem::path bank_index_dir(const std::filesystem::path& bank);

// Demonstrations as completion-mode text: each example's prompt and completion, then a blank
// line, farthest first so the nearest example sits right before the query's own prompt.
std::string demonstration_text(const std::vector<Retrieved>& demos);

// Demonstrations as chat turns: each example as a user turn and the assistant's answer, farthest
// first, then the conversation so far and the request.
struct ChatMessage;
std::vector<ChatMessage> demonstration_messages(const std::vector<Retrieved>& demos,
                                                const std::vector<ChatMessage>& history,
                                                const std::string& text);

// Prompt normalisation behind the duplicate check: collapsed whitespace, ASCII lowercase.
std::string normalize_prompt(const std::string& s);

}  // namespace cogumi
