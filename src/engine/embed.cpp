#include "engine/embed.h"

#include <llama.h>

#include <cmath>
#include <thread>

#include "core/error.h"
#include "core/threads.h"

namespace cogumi {

void EmbedOptions::validate() const {
  if (n_ctx_per_text < 8 || n_ctx_per_text > (1 << 16))
    fail("embedding n_ctx_per_text must be in 8..65536 tokens, got {}", n_ctx_per_text);
  // llama.cpp holds at most 256 sequences in one context.
  if (n_seq < 1 || n_seq > 256) fail("embedding n_seq must be in 1..256, got {}", n_seq);
  if (int64_t(n_ctx_per_text) * n_seq > (int64_t(1) << 24))
    fail("embedding context of {} x {} tokens is too large", n_seq, n_ctx_per_text);
  if (n_threads < 0 || n_threads > 1024) fail("embedding n_threads (--threads) must be in 0..1024, got {}", n_threads);
}

Embedder::Embedder(std::shared_ptr<Model> model, EmbedOptions opts) : model_(std::move(model)), opts_(opts) {
  opts_.validate();
  llama_context_params cp = llama_context_default_params();
  cp.embeddings = true;
  cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
  cp.n_seq_max = uint32_t(opts_.n_seq);
  cp.n_ctx = uint32_t(opts_.n_ctx_per_text * opts_.n_seq);
  cp.n_batch = cp.n_ctx;
  cp.n_ubatch = cp.n_ctx;
  cp.kv_unified = true;
  cp.no_perf = true;
  int threads = compute_threads(opts_.n_threads);
  cp.n_threads = cp.n_threads_batch = threads;
  ctx_ = llama_init_from_model(model_->raw(), cp);
  if (!ctx_) fail("failed to create an embedding context for '{}': {}", model_->info().path, engine_last_error());
}

Embedder::~Embedder() {
  if (ctx_) llama_free(ctx_);
}

int Embedder::dim() const { return llama_model_n_embd_out(model_->raw()); }

std::vector<std::vector<float>> Embedder::embed(const std::vector<std::string>& texts) {
  std::vector<std::vector<float>> out(texts.size());
  const int d = dim();
  llama_batch batch = llama_batch_init(opts_.n_ctx_per_text * opts_.n_seq, 0, 1);
  struct BatchGuard {
    llama_batch& b;
    ~BatchGuard() { llama_batch_free(b); }
  } guard{batch};
  llama_memory_t mem = llama_get_memory(ctx_);
  size_t next = 0;
  while (next < texts.size()) {
    batch.n_tokens = 0;
    std::vector<size_t> members;
    while (next < texts.size() && int(members.size()) < opts_.n_seq) {
      std::vector<Token> toks = model_->tokenize(texts[next], true, false);
      if (int(toks.size()) > opts_.n_ctx_per_text) toks.resize(opts_.n_ctx_per_text);
      if (toks.empty()) toks.push_back(model_->info().bos >= 0 ? model_->info().bos : 0);
      llama_seq_id seq = llama_seq_id(members.size());
      for (size_t i = 0; i < toks.size(); ++i) {
        int n = batch.n_tokens++;
        batch.token[n] = toks[i];
        batch.pos[n] = llama_pos(i);
        batch.n_seq_id[n] = 1;
        batch.seq_id[n][0] = seq;
        batch.logits[n] = true;
      }
      members.push_back(next++);
    }
    llama_memory_clear(mem, true);
    if (llama_decode(ctx_, batch) != 0) fail("embedding decode failed: {}", engine_last_error());
    for (size_t s = 0; s < members.size(); ++s) {
      const float* e = llama_get_embeddings_seq(ctx_, llama_seq_id(s));
      if (!e) fail("model '{}' produced no pooled embedding", model_->info().path);
      std::vector<float> v(e, e + d);
      if (opts_.normalize) {
        double n2 = 0;
        for (float x : v) n2 += double(x) * x;
        float inv = n2 > 0 ? float(1.0 / std::sqrt(n2)) : 0.0f;
        for (float& x : v) x *= inv;
      }
      out[members[s]] = std::move(v);
    }
  }
  return out;
}

}  // namespace cogumi
