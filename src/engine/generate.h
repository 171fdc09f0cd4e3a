// cogumi/engine: batched text generation.
//
// A Generator owns one llama.cpp context with n_parallel sequence slots and runs many
// requests through it with continuous batching: every step decodes one batch holding the
// next token of every active sequence plus the prompt tokens of newly admitted requests;
// when a sequence finishes, its slot takes the next waiting request in the same step.
//
// Shared prompt prefixes (few-shot blocks, system prompts) are decoded once into a spare
// sequence and copied into each slot's KV cache (llama_memory_seq_cp), so only the
// distinct suffix of each prompt is computed.
//
// LoRA adapters: stock llama.cpp applies adapters per context, not per sequence. Cogumi's
// llama.cpp patch (patches/0001-mixed-lora-batch.patch) adds adapter slots: when the requests
// of one call name different adapters (or scales), every adapter loaded on the Model is
// registered as a slot and each sequence carries its own, so all requests decode in one batch
// (the base matmul once for every token, each token's adapter delta added per token). With
// GeneratorOptions::mixed_adapters off, or if the slots refuse an adapter, the Generator groups
// requests by (adapter, scale) and runs the groups one after another, switching the context's
// adapter between groups (each group still batches fully).
//
// Serving: Generator::serve runs the same per-token work as a server's loop, taking requests as
// they arrive, each joining the running batch at the next decode step (serve_loop.cpp).
//
// Thread safety: one generate() or serve() call at a time per Generator.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/model.h"

struct llama_context;
struct llama_sampler;

namespace cogumi {

// Each validate() below throws Error naming the field and the CLI flag that sets it, so library
// callers get the same checks as the command line.
struct SamplingParams {
  float temperature = 0.0f;     // 0: greedy; >= 0
  int top_k = 40;               // 0: off
  float top_p = 0.95f;          // 1: off; in (0, 1]
  float min_p = 0.05f;          // 0: off; in [0, 1]
  float repeat_penalty = 1.0f;  // 1: off; > 0
  int repeat_last_n = 64;       // -1: the whole context
  uint32_t seed = 42;
  void validate() const;
};

struct GenRequest {
  // Plain text, tokenized with special tokens NOT parsed: "<|eot_id|>" in data stays text. A
  // chat-formatted prompt comes as prompt_tokens from Model::tokenize_chat, which parses only
  // the template's own markup.
  std::string prompt;
  std::vector<Token> prompt_tokens;  // if non-empty: used instead of `prompt` (no tokenization)
  SamplingParams sampling;
  int max_tokens = 512;
  std::vector<std::string> stop;   // generation ends before the first occurrence of any
  int n_logprobs = -1;             // -1: none; 0: chosen token's logprob; k: plus top-k alternatives
  bool ignore_eos = false;         // keep generating past end-of-generation tokens (benchmarks)
  std::string adapter;             // name of an adapter loaded on the Model; "" = base
  float adapter_scale = 1.0f;      // finite
  // A GBNF grammar (root rule "root") every output follows (llama.cpp's grammar sampler): JSON
  // for a schema, a tool call. "" = none. An invalid grammar fails generate() for the request.
  std::string grammar;
  void validate() const;           // max_tokens >= 1, n_logprobs >= -1, sampling, scale
};

enum class FinishReason { kStop, kLength, kCancelled, kError };
const char* finish_reason_name(FinishReason r);

struct TokenLogprob {
  Token token = -1;
  std::string text;
  float logprob = 0.0f;
  std::vector<std::pair<std::string, float>> top;  // alternatives, most likely first
};

struct GenResult {
  std::string text;
  FinishReason finish = FinishReason::kStop;
  std::string error;               // set when finish == kError (e.g. prompt longer than context)
  int n_prompt_tokens = 0;
  int n_cached_tokens = 0;         // of those, taken from a KV cache another request computed
  int n_gen_tokens = 0;
  std::vector<TokenLogprob> logprobs;
  double latency_ms = 0.0;         // from admission to the last token
};

struct GenStats {
  int64_t n_prompt_tokens = 0;     // prompt tokens actually decoded (shared prefixes once)
  int64_t n_prefix_reused = 0;     // prompt tokens served from a shared prefix copy
  int64_t n_gen_tokens = 0;
  int64_t n_decode_calls = 0;
  double t_total_ms = 0.0;
  double t_prompt_ms = 0.0;        // steps that decoded prompt tokens (plus their sampling)
  double t_gen_ms = 0.0;           // steps that decoded only generated tokens (plus sampling)
  int64_t n_gen_step_tokens = 0;   // tokens decoded in those generation-only steps
  double t_decode_ms = 0.0;        // inside llama_decode and waiting for its logits (all steps)
  double t_gen_decode_ms = 0.0;    // the same, generation-only steps
  bool mixed_adapters = false;     // requests for different adapters shared decode batches
  double prompt_tokens_per_s() const { return t_prompt_ms > 0 ? n_prompt_tokens * 1000.0 / t_prompt_ms : 0.0; }
  double decode_tokens_per_s() const { return t_gen_ms > 0 ? n_gen_step_tokens * 1000.0 / t_gen_ms : 0.0; }
  double gen_tokens_per_s() const { return t_total_ms > 0 ? n_gen_tokens * 1000.0 / t_total_ms : 0.0; }
};

struct GeneratorOptions {
  int n_parallel = 8;          // sequence slots decoded together, 1..255 (llama.cpp's sequence limit)
  int n_ctx_per_seq = 0;       // 0: min(model's training context, 4096); prompt + output must fit
  // Tokens per llama_decode call, >= n_parallel: every step decodes one token per generating
  // sequence, and the batch buffer holds n_batch tokens.
  int n_batch = 2048;
  int n_threads = 0;           // 0: all cores
  bool shared_prefix = true;   // decode common prompt prefixes once
  int min_shared_prefix = 0;   // fewest tokens a KV copy must save to be made; 0: 8 on the CPU, 64 on a GPU
  // The slots keep their KV caches from one generate() call to the next (with shared_prefix): a chat's next
  // turn, whose prompt starts with the last turn's prompt and answer, decodes only what is new. Off: every
  // call starts from an empty cache, so its outputs do not depend on the calls before it (evaluations).
  bool keep_cache = false;
  // One more KV stream beside the slots, into which generate() decodes the common prefix of a call's requests
  // once (with shared_prefix). serve() never uses it: a Generator that only serves turns it off and saves a
  // slot's worth of KV memory; generate() then shares prefixes through the slots' caches only.
  bool spare_sequence = true;
  int flash_attn = -1;         // -1 auto, 0 off, 1 on
  // Greedy calls without log-probabilities can pick tokens inside llama.cpp's graph (its
  // backend samplers) instead of copying each row of logits to the host and scanning it there.
  // Same tokens either way (a test checks). Off by default: on the H100 with an 8B model it
  // removes the host work (1.4% of step time left at 64 sequences) but llama_decode itself gets
  // slower (3,443 vs 4,118 decode tokens/s at 64 sequences; bench/RESULTS.md).
  bool backend_sampling = false;
  // Requests for different adapters decode in one batch (adapter slots, see above); false: one
  // (adapter, scale) group after another. A call that names one adapter (or none) is the same
  // either way. The slots hold a copy of every adapter loaded on the Model (memory: their size).
  bool mixed_adapters = true;
  // The slots' copies in F16 instead of the adapters' own type: half the memory each decode step
  // reads for the adapters (on a GPU that is most of their cost), at F16 precision of the weights.
  bool adapter_slots_f16 = false;
  // A call whose requests all name one adapter also goes through the adapter slots (on a GPU, patch 0010's
  // fused op: two kernels per adapted weight) instead of llama.cpp's per-context LoRA (four ops). Unset: on when
  // the model's layers live on a GPU, where the slots win at every batch size (H200, 8B Q4_K_M, one rank-16
  // adapter: 191 vs 145 tok/s at 1 stream, 1,895 vs 1,728 at 32; bench/RESULTS.md), off on the CPU, where
  // per-context LoRA wins (3,817 vs 4,278 tok/s at 32 streams on the nano). Generator::serve uses the slots for
  // every adapter already.
  std::optional<bool> single_adapter_slots;
  void validate() const;
};

// Called for each new piece of text of request `index`; return false to stop that request.
using StreamFn = std::function<bool(size_t index, const std::string& piece)>;

// Continuous serving (Generator::serve): a request that arrives while others decode joins the
// running batch at the next step.
struct GenJob {
  uint64_t id = 0;                            // the caller's name for it in the callbacks
  GenRequest request;
  const std::atomic<bool>* cancel = nullptr;  // once set, the request stops where it is
};
struct GenFeed {
  // Called before every decode step: append the requests to admit. `idle`: nothing runs or
  // waits, so it may block until there is work. Returning false ends serve() once the requests
  // it already gave have finished.
  std::function<bool(std::vector<GenJob>& admit, bool idle)> poll;
  std::function<bool(uint64_t id, const std::string& piece)> on_piece;  // optional; false stops it
  std::function<void(uint64_t id, GenResult result)> on_done;           // once per request
};

namespace gen_detail {
class ServeLoop;
class BatchCall;
}

class Generator {
 public:
  Generator(std::shared_ptr<Model> model, GeneratorOptions opts = {});
  ~Generator();
  Generator(const Generator&) = delete;
  Generator& operator=(const Generator&) = delete;

  // Runs all requests; results are in request order. Per-request problems (prompt too long)
  // are reported in GenResult::error; an invalid request (GenRequest::validate) or an unknown
  // adapter name throws, naming the request, before anything runs.
  // `cancel` (optional) stops everything in flight; finished results are kept.
  std::vector<GenResult> generate(const std::vector<GenRequest>& requests, const StreamFn& on_piece = {},
                                  const std::atomic<bool>* cancel = nullptr);

  // A server's engine loop: serves requests as `feed` hands them over until feed.poll returns
  // false and the requests given so far have finished. A newcomer's prompt decodes in the next
  // step beside the running sequences' next tokens; a finished sequence frees its slot and KV
  // cells at once, and the oldest waiting request takes them. Requests for different adapters
  // share steps through the adapter slots; without them (mixed_adapters off, or refused) a request
  // for another adapter waits until the running ones end. No shared prefixes. A request that is
  // invalid or too long finishes at once with FinishReason::kError; a failed decode finishes the
  // running ones the same way. Not at the same time as generate().
  void serve(const GenFeed& feed);

  const GenStats& last_stats() const { return stats_; }
  // KV cache cells the sequences of the batch now decoding hold (0 between calls; a shared
  // prefix counts once per sequence), and the cache's size. Safe from any thread (a server's
  // /metrics reads them while generate() runs).
  int64_t kv_cells_used() const { return kv_used_.load(std::memory_order_relaxed); }
  int64_t kv_cells_total() const { return int64_t(opts_.n_ctx_per_seq) * opts_.n_parallel; }
  const GeneratorOptions& options() const { return opts_; }
  // KV streams the context holds: one per slot, and the spare (GeneratorOptions::spare_sequence).
  int n_sequences() const { return opts_.n_parallel + (has_spare() ? 1 : 0); }
  int64_t kv_cells_allocated() const;  // the context's KV cells, every stream's (the spare's included)
  Model& model() const { return *model_; }

 private:
  struct Impl;
  friend class gen_detail::ServeLoop;
  friend class gen_detail::BatchCall;
  std::shared_ptr<Model> model_;
  GeneratorOptions opts_;
  llama_context* ctx_ = nullptr;
  int n_threads_ = 1;
  int min_copy_ = 8;  // opts_.min_shared_prefix, or its automatic value
  bool has_spare() const { return opts_.shared_prefix && opts_.spare_sequence; }
  std::vector<llama_sampler*> backend_chains_;  // one greedy chain per slot sequence
  bool backend_attached_ = false;
  bool use_adapter_slots();                        // registers the Model's adapters; false if refused
  std::vector<std::string> slot_names_;            // the adapters registered as slots, in slot order
  std::vector<llama_adapter_lora*> slot_adapters_;
  GenStats stats_;
  std::atomic<int64_t> kv_used_{0};
  // What each slot's KV cache held when the last generate() call ended (opts_.keep_cache): its tokens and the
  // adapter they were computed under (the adapter's identity, and whether through the adapter slots, whose
  // kernels give other floats than per-context LoRA).
  struct KeptCache {
    std::vector<Token> kv;
    std::string adapter;
    float scale = 1.0f;
    const llama_adapter_lora* raw = nullptr;
    bool slots = false;
  };
  std::vector<KeptCache> kept_;
  bool kept_matches(const KeptCache& k, const std::pair<std::string, float>& key, bool mixed) const;
  bool kept_valid_ = false;  // kept_ describes the context's KV cache (not after serve(), a failed call, or none)
};

}  // namespace cogumi
