#include "engine/generate.h"

#include <llama.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/threads.h"
#include "engine/gen_slot.h"

namespace cogumi {

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "?";
}

void GeneratorOptions::validate() const {
  if (n_parallel < 1 || n_parallel > 255) fail("n_parallel (--parallel) must be in 1..255, got {}", n_parallel);
  if (n_ctx_per_seq < 0 || n_ctx_per_seq > (1 << 20))
    fail("n_ctx_per_seq (--ctx) must be in 0..{} (0 = the model's), got {}", 1 << 20, n_ctx_per_seq);
  if (n_batch < 32 || n_batch > (1 << 16)) fail("n_batch (--batch) must be in 32..{}, got {}", 1 << 16, n_batch);
  if (n_batch < n_parallel)
    fail("n_batch (--batch) {} is smaller than n_parallel (--parallel) {}: every step decodes one token per "
         "sequence, so the batch must hold at least one per slot",
         n_batch, n_parallel);
  if (n_threads < 0 || n_threads > 1024) fail("n_threads (--threads) must be in 0..1024 (0 = all cores), got {}", n_threads);
  if (min_shared_prefix < 0 || min_shared_prefix > (1 << 20))
    fail("min_shared_prefix must be in 0..{} (0: auto), got {}", 1 << 20, min_shared_prefix);
  if (flash_attn < -1 || flash_attn > 1) fail("flash_attn must be -1 (auto), 0 or 1, got {}", flash_attn);
}

void SamplingParams::validate() const {
  // !(x >= 0) also catches NaN.
  if (!(temperature >= 0.0f) || std::isinf(temperature))
    fail("temperature (--temp) must be a finite number >= 0 (0 = greedy), got {}", temperature);
  if (top_k < 0) fail("top_k (--top-k) must be >= 0 (0 = off), got {}", top_k);
  if (!(top_p > 0.0f && top_p <= 1.0f)) fail("top_p (--top-p) must be in (0, 1] (1 = off), got {}", top_p);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) fail("min_p (--min-p) must be in [0, 1] (0 = off), got {}", min_p);
  if (!(repeat_penalty > 0.0f) || std::isinf(repeat_penalty))
    fail("repeat_penalty (--repeat-penalty) must be a finite number > 0 (1 = off), got {}", repeat_penalty);
  if (repeat_last_n < -1) fail("repeat_last_n must be >= -1 (-1 = the whole context), got {}", repeat_last_n);
}

void GenRequest::validate() const {
  if (max_tokens < 1) fail("max_tokens (-n, --max-tokens) must be >= 1, got {}", max_tokens);
  if (n_logprobs < -1) fail("n_logprobs (--logprobs) must be >= 0, or -1 for none, got {}", n_logprobs);
  if (!std::isfinite(adapter_scale)) fail("adapter_scale (--adapter-scale) must be finite, got {}", adapter_scale);
  sampling.validate();
}

using namespace gen_detail;

Generator::Generator(std::shared_ptr<Model> model, GeneratorOptions opts) : model_(std::move(model)), opts_(opts) {
  opts_.validate();
  if (opts_.n_ctx_per_seq == 0) opts_.n_ctx_per_seq = std::min(model_->n_ctx_train() > 0 ? model_->n_ctx_train() : 4096, 4096);
  // A KV copy moves a sequence's whole stream and waits for it; on a GPU a few dozen more prompt
  // tokens in a batch that runs anyway cost less (bench/RESULTS.md, "Prompts that start alike").
  min_copy_ = opts_.min_shared_prefix > 0 ? opts_.min_shared_prefix : (model_->offloaded() ? 64 : 8);
  llama_context_params cp = llama_context_default_params();
  // One KV stream per slot plus the spare one for shared prefixes.
  cp.n_seq_max = uint32_t(n_sequences());
  cp.n_ctx = uint32_t(opts_.n_ctx_per_seq) * cp.n_seq_max;
  cp.n_batch = uint32_t(opts_.n_batch);
  cp.n_ubatch = std::min<uint32_t>(512, cp.n_batch);
  int threads = compute_threads(opts_.n_threads);
  n_threads_ = threads;
  cp.n_threads = threads;
  cp.n_threads_batch = threads;
  cp.kv_unified = false;
  cp.no_perf = true;
  cp.flash_attn_type = opts_.flash_attn < 0   ? LLAMA_FLASH_ATTN_TYPE_AUTO
                       : opts_.flash_attn == 0 ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                               : LLAMA_FLASH_ATTN_TYPE_ENABLED;
  ctx_ = llama_init_from_model(model_->raw(), cp);
  if (!ctx_) {
    std::string why = engine_last_error();
    fail("failed to create a context for '{}' ({} slots x {} tokens): {}", model_->info().path, opts_.n_parallel,
         opts_.n_ctx_per_seq, why.empty() ? "out of memory?" : why);
  }
}

Generator::~Generator() {
  if (ctx_) llama_free(ctx_);
  for (auto* c : backend_chains_) llama_sampler_free(c);
}

bool Generator::use_adapter_slots() {
#ifndef LLAMA_ADAPTER_SLOTS  // llama.cpp without Cogumi's patch: group by adapter
  return false;
#else
  std::vector<std::string> names = model_->adapter_names();
  std::vector<llama_adapter_lora*> adapters;
  for (const auto& n : names) adapters.push_back(model_->raw_adapter(n));
  if (adapters == slot_adapters_) return true;
  // Stacks copies of every loaded adapter, once per set of adapters (the Model's rarely changes).
  const ggml_type type = opts_.adapter_slots_f16 ? GGML_TYPE_F16 : GGML_TYPE_COUNT;  // COUNT: the adapters' own
  if (llama_set_adapter_slots(ctx_, adapters.data(), int32_t(adapters.size()), type) != 0) {
    // An adapter the slots cannot apply (e.g. one on token_embd): group by adapter instead.
    llama_set_adapter_slots(ctx_, nullptr, 0, GGML_TYPE_COUNT);
    slot_adapters_.clear();
    slot_names_.clear();
    return false;
  }
  slot_adapters_ = std::move(adapters);
  slot_names_ = std::move(names);
  return true;
#endif
}


int64_t Generator::kv_cells_allocated() const { return int64_t(llama_n_ctx(ctx_)); }

bool Generator::kept_matches(const KeptCache& k, const std::pair<std::string, float>& key, bool mixed) const {
  if (k.kv.empty() || k.adapter != key.first || k.scale != key.second) return false;
  if (k.adapter.empty()) return true;  // the base: no adapter delta either way
  // the same adapter object (not one reloaded under its name), applied the same way
  return k.raw == model_->raw_adapter(k.adapter) && k.slots == mixed;
}

}  // namespace cogumi
