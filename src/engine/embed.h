// cogumi/engine: text embeddings. Mean-pooled final hidden states of any model (a
// generative model or a dedicated embedding GGUF), batched over many texts per decode.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"

struct llama_context;

namespace cogumi {

struct EmbedOptions {
  int n_ctx_per_text = 512;  // longer texts are truncated to this many tokens
  int n_seq = 16;            // texts decoded together
  int n_threads = 0;         // 0: all cores
  bool normalize = true;     // L2-normalise each vector
  void validate() const;     // n_ctx_per_text 8..65536, n_seq 1..256, n_threads 0..1024
};

class Embedder {
 public:
  Embedder(std::shared_ptr<Model> model, EmbedOptions opts = {});
  ~Embedder();
  Embedder(const Embedder&) = delete;
  Embedder& operator=(const Embedder&) = delete;

  std::vector<std::vector<float>> embed(const std::vector<std::string>& texts);
  int dim() const;

 private:
  std::shared_ptr<Model> model_;
  EmbedOptions opts_;
  llama_context* ctx_ = nullptr;
};

}  // namespace cogumi
