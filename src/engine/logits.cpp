#include "engine/logits.h"

#include <llama.h>

#include <thread>

#include "core/error.h"
#include "core/threads.h"

namespace cogumi {

std::vector<float> model_logits(const Model& model, const std::vector<Token>& tokens, const std::string& adapter,
                                float adapter_scale, int n_threads) {
  if (tokens.empty()) fail("model_logits: no tokens");
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = uint32_t((tokens.size() + 255) / 256 * 256);
  cp.n_batch = cp.n_ubatch = uint32_t(tokens.size());
  cp.n_seq_max = 1;
  cp.no_perf = true;
  // A reference: full-precision KV cache and plain attention (the defaults store K/V in F16).
  cp.type_k = GGML_TYPE_F32;
  cp.type_v = GGML_TYPE_F32;
  cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
  int t = compute_threads(n_threads);
  cp.n_threads = cp.n_threads_batch = t;
  llama_context* ctx = llama_init_from_model(model.raw(), cp);
  if (!ctx) fail("model_logits: cannot create a context: {}", engine_last_error());
  std::unique_ptr<llama_context, decltype(&llama_free)> guard(ctx, llama_free);
  if (!adapter.empty()) {
    llama_adapter_lora* a = model.raw_adapter(adapter);
    llama_set_adapters_lora(ctx, &a, 1, &adapter_scale);
  }
  llama_batch batch = llama_batch_init(int32_t(tokens.size()), 0, 1);
  for (size_t i = 0; i < tokens.size(); ++i) {
    batch.token[i] = tokens[i];
    batch.pos[i] = llama_pos(i);
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = true;
  }
  batch.n_tokens = int32_t(tokens.size());
  int rc = llama_decode(ctx, batch);
  llama_batch_free(batch);
  if (rc != 0) fail("model_logits: decode failed ({})", rc);
  const int32_t n_vocab = model.n_vocab();
  std::vector<float> out(tokens.size() * size_t(n_vocab));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const float* row = llama_get_logits_ith(ctx, int32_t(i));
    std::copy(row, row + n_vocab, out.begin() + i * n_vocab);
  }
  return out;
}

}  // namespace cogumi
