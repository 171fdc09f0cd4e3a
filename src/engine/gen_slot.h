// cogumi/engine (internal): one generating sequence's state and the per-token work that batch
// generation (Generator::generate) and continuous serving (Generator::serve) share: the sampler
// chain, token choice, log-probabilities, stop strings, streaming hold-back, finish rules.
// Not a public header: only src/engine/ includes it.
#pragma once

#include <llama.h>

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/generate.h"

namespace cogumi::gen_detail {

using Clock = std::chrono::steady_clock;

struct SamplerDeleter {
  void operator()(llama_sampler* s) const { llama_sampler_free(s); }
};
using SamplerPtr = std::unique_ptr<llama_sampler, SamplerDeleter>;

// The request's llama.cpp sampler chain (grammar first); null when the grammar does not parse.
SamplerPtr make_sampler(const SamplingParams& sp, int32_t n_vocab, const llama_vocab* vocab = nullptr,
                        const std::string& grammar = "");

// Bytes at the end of s that start an incomplete UTF-8 sequence.
size_t utf8_incomplete_tail(const std::string& s);
// Longest suffix of text that is a proper prefix of some stop string.
size_t stop_holdback(const std::string& text, const std::vector<std::string>& stops);

// Log-softmax of one row: the chosen token's logprob and the top-k alternatives (ids).
struct RawLogprob {
  float logprob = 0.0f;
  std::vector<std::pair<Token, float>> top;
};
RawLogprob raw_logprobs(const float* logits, int32_t n_vocab, Token chosen, int k);

// Picks the next token from one row of logits. Plain greedy is an argmax (the first maximum,
// as llama.cpp's greedy sampler picks); everything else runs the slot's llama.cpp sampler
// chain on its own candidate buffer, so slots can be sampled in parallel.
Token choose_token(const float* logits, int32_t n_vocab, const SamplingParams& sp, llama_sampler* chain,
                   std::vector<llama_token_data>& cand, bool constrained = false);

struct Slot {
  llama_seq_id seq = 0;
  long req = -1;                 // index into the request list; -1 = free
  std::vector<Token> prompt;
  size_t n_fed = 0;              // prompt tokens already placed in the KV cache (incl. shared prefix)
  // The tokens the sequence's KV cache holds, by position (prompt and generated tokens decoded),
  // and the request group (adapter and scale) they were computed under; -1: none. Kept after the
  // request ends, so that the next one can start from a prefix of them (take_cached).
  std::vector<Token> kv;
  int kv_group = -1;
  Clock::time_point freed;       // when its last request ended (serve: the least recently used slot)
  int n_past = 0;                // position of the next token
  SamplerPtr sampler;
  std::string text;
  size_t emitted = 0;            // bytes of text already streamed
  int n_gen = 0;
  Token next = -1;               // sampled token waiting to be decoded
  int32_t logits_at = -1;        // batch index holding this slot's logits this step
  Clock::time_point start;
  bool stream_stopped = false;
  std::vector<llama_token_data> cand;  // sampler candidates, reused across steps
  Token chosen = -1;
  RawLogprob lp;
};

// The waiting requests of one generate() call, cut into one contiguous lane per slot: a slot takes
// the front of its own lane, and one whose lane is empty takes the back half of the longest lane
// (the earlier lane keeps its front half). With requests sorted by prompt, a slot's consecutive
// requests then share the longest prefixes, while slots admitted in the same step work on
// different parts of the order. With one lane it is a FIFO queue.
class Lanes {
 public:
  Lanes(const std::vector<size_t>& order, int n_lanes);
  bool empty() const { return left_ == 0; }
  size_t size() const { return left_; }
  size_t take(int lane);              // the next request for `lane`; not empty()
  std::vector<size_t> drain();        // every request still waiting, in lane order
 private:
  std::vector<std::deque<size_t>> lanes_;
  size_t left_ = 0;
};

// The tokens of `prompt` (request group `group`; at most all but its last token, which must be
// decoded for its logits) that slot `s`'s cache holds at the same positions.
size_t cached_common(const Slot& s, int group, const std::vector<Token>& prompt);

// What free slot `dst` could start a prompt from: its own cache's common prefix, and the longest
// one any other slot's cache holds.
struct CachedPrefix {
  size_t own = 0;
  const Slot* src = nullptr;
  size_t best = 0;  // src's
};
CachedPrefix find_cached(const std::vector<Slot>& slots, const Slot& dst, int group, const std::vector<Token>& prompt);

// Starts `dst`'s KV cache with what `c` found: another slot's prefix, its stream copied and cut,
// when that saves at least `min_copy` tokens over dst's own (llama.cpp copies a sequence's whole
// stream; copies queued before one decode run in order, so a chain of them stays consistent);
// else dst's own, the rest dropped. A memory that cannot cut a sequence (recurrent and hybrid
// models) starts empty instead. Returns the tokens reused; dst.kv and dst.kv_group describe its
// cache afterwards.
size_t take_cached(llama_memory_t mem, Slot& dst, int group, const CachedPrefix& c, size_t min_copy);

// Starts request `rq` (its tokens `prompt`) in slot `sl`: no text yet, and a fresh sampler chain that has seen the
// prompt when a repeat penalty asks for it. The slot's KV cache and positions are the caller's.
void begin_request(Slot& sl, const GenRequest& rq, std::vector<Token> prompt, int32_t n_vocab, const llama_vocab* vocab);

// Appends one token to `batch`, which holds `cap` tokens (every caller checks room first; this keeps a slip from
// turning into a write past the end). Returns its index in the batch.
int batch_add(llama_batch& batch, int cap, Token t, llama_pos pos, llama_seq_id seq, bool logits);

// Streams a piece of one slot's text; false stops that request.
using EmitFn = std::function<bool(const std::string& piece)>;

// Takes the slot's chosen token (sl.chosen, with sl.lp when log-probs are asked): records its
// log-probability, appends its text, applies stop strings, streams what is safe to stream
// (`emit` may be empty) and checks the length limits. Returns the finish reason when the request
// ends here; otherwise the token waits in sl.next for the next decode.
std::optional<FinishReason> take_token(Slot& sl, const GenRequest& rq, GenResult& r, const Model& model,
                                       const EmitFn& emit, int ctx_seq, GenStats& stats);

// A sequence's adapter slot (patches/0001-mixed-lora-batch.patch); -1 = the base. Returns
// llama.cpp's code (0 = ok); without the patch always refuses.
int32_t set_seq_adapter_slot(llama_context* ctx, llama_seq_id seq, int32_t slot, float scale);

}  // namespace cogumi::gen_detail
