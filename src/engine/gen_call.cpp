// Generator::generate: every request of a call known up front, run to the end with continuous
// batching. The requests are grouped by (adapter, scale); with adapter slots every group shares
// one run, else the groups take turns with their adapter on the whole context. Within a run each
// step decodes one batch holding the pending token of every generating slot and the prompt
// chunks of newly admitted requests, and a finished slot takes the next request at once. Prompts
// start from the longest prefix a KV cache already holds (gen_slot.h's take_cached; a group's
// common prefix in the spare sequence), and with keep_cache the slots' caches outlive the call.
// The per-token work (sampling, stop strings, streaming) is gen_slot.h's, shared with serve().
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <map>

#include "core/error.h"
#include "engine/gen_slot.h"
#include "engine/generate.h"

namespace cogumi::gen_detail {

class BatchCall {
 public:
  using Key = std::pair<std::string, float>;  // (adapter, scale); the base is ("", scale)
  BatchCall(Generator& g, const std::vector<GenRequest>& requests, const StreamFn& on_piece,
            const std::atomic<bool>* cancel);
  ~BatchCall() { llama_batch_free(batch_); }
  BatchCall(const BatchCall&) = delete;
  BatchCall& operator=(const BatchCall&) = delete;
  std::vector<GenResult> run();

 private:
  Generator& g_;
  const std::vector<GenRequest>& requests_;
  const StreamFn& on_piece_;
  const std::atomic<bool>* cancel_;
  const int n_slots_;
  const llama_seq_id prefix_seq_;  // the spare sequence a group's common prefix is decoded into
  const int ctx_seq_;
  const int32_t n_vocab_;
  llama_memory_t mem_;
  llama_batch batch_;
  std::vector<GenResult> results_;
  std::vector<std::vector<Token>> prompts_;
  std::vector<Key> keys_;                     // the groups with work
  std::vector<std::vector<size_t>> members_of_;
  std::vector<int> group_of_;                 // request -> group; -1: refused
  std::vector<size_t> prefix_len_;            // each group's common prefix (0: none worth a copy)
  std::vector<Slot> slots_;
  bool mixed_ = false;                        // every group in one run through the adapter slots
  bool keep_ = false;                         // the slots' caches outlive the call
  bool restored_ = false;                     // the call began from the last one's kept caches
  std::vector<char> used_;                    // slots that took a request in this call
  int prefix_group_ = -1;                     // whose prefix the spare sequence holds
  size_t prefix_cached_ = 0;                  // of its tokens, those copied from a slot's cache
  size_t active_ = 0;
  double last_decode_ms_ = 0.0;

  void check_requests(std::map<Key, std::vector<size_t>>& groups) const;
  void attach_backend_sampling();
  void tokenize();
  void make_groups(const std::map<Key, std::vector<size_t>>& groups);
  void restore_kept();
  void keep_caches();
  void find_prefixes();
  void set_seq_group(llama_seq_id seq, int g);
  int add_tok(Token t, llama_pos pos, llama_seq_id seq, bool logits);
  void decode();
  void decode_prefix(int g);
  std::pair<size_t, size_t> reuse_prefix(Slot& sl, int g, const std::vector<Token>& prompt);
  void finish_slot(Slot& sl, FinishReason why);
  void run_groups(const std::vector<int>& run);
  void admit(Lanes& queue);
  int fill_batch();
  void take_tokens();
};

BatchCall::BatchCall(Generator& g, const std::vector<GenRequest>& requests, const StreamFn& on_piece,
                     const std::atomic<bool>* cancel)
    : g_(g),
      requests_(requests),
      on_piece_(on_piece),
      cancel_(cancel),
      n_slots_(g.opts_.n_parallel),
      prefix_seq_(g.opts_.n_parallel),
      ctx_seq_(g.opts_.n_ctx_per_seq),
      n_vocab_(g.model_->n_vocab()),
      mem_(llama_get_memory(g.ctx_)),
      batch_(llama_batch_init(g.opts_.n_batch, 0, 1)),
      results_(requests.size()),
      prompts_(requests.size()),
      group_of_(requests.size(), -1),
      slots_(size_t(g.opts_.n_parallel)),
      used_(size_t(g.opts_.n_parallel), 0) {}

// Every request is checked before anything runs; a bad one throws, naming it.
void BatchCall::check_requests(std::map<Key, std::vector<size_t>>& groups) const {
  const Model& m = *g_.model_;
  for (size_t i = 0; i < requests_.size(); ++i) {
    const GenRequest& rq = requests_[i];
    try {
      rq.validate();
    } catch (const Error& e) {
      fail("request {}: {}", i, e.what());
    }
    if (!rq.adapter.empty()) m.raw_adapter(rq.adapter);  // throws if unknown
    if (!rq.grammar.empty() && !make_sampler(rq.sampling, m.n_vocab(), llama_model_get_vocab(m.raw()), rq.grammar))
      fail("request {}: the grammar does not parse (llama.cpp's log, with -v, says where)", i);
    groups[{rq.adapter, rq.adapter_scale}].push_back(i);
  }
}

// Backend (in-graph) greedy when every request of this call is plain greedy without log-probs.
void BatchCall::attach_backend_sampling() {
  bool backend = g_.opts_.backend_sampling;
  for (const auto& rq : requests_)
    if (!(rq.sampling.temperature <= 0.0f && rq.sampling.repeat_penalty == 1.0f) || rq.n_logprobs >= 0 ||
        !rq.grammar.empty())
      backend = false;
  if (backend == g_.backend_attached_) return;
  // A chain initialises its backend state once, so every attach gets fresh chains.
  auto detach = [&] {
    for (int s = 0; s < n_slots_; ++s) llama_set_sampler(g_.ctx_, s, nullptr);
    for (auto* c : g_.backend_chains_) llama_sampler_free(c);
    g_.backend_chains_.clear();
  };
  if (backend) {
    bool ok = true;
    for (int s = 0; s < n_slots_; ++s) {
      llama_sampler* c = llama_sampler_chain_init(llama_sampler_chain_default_params());
      llama_sampler_chain_add(c, llama_sampler_init_greedy());
      g_.backend_chains_.push_back(c);
      ok = llama_set_sampler(g_.ctx_, s, c) && ok;
    }
    if (!ok) {  // not offloadable here: back to host sampling
      detach();
      backend = false;
    }
  } else {
    detach();
  }
  g_.backend_attached_ = backend;
}

// Every prompt tokenized up front; one that cannot run is refused in its result.
void BatchCall::tokenize() {
  for (size_t i = 0; i < requests_.size(); ++i) {
    // parse_special off: a prompt is data, and "<|eot_id|>" in a question must stay text.
    auto& p = prompts_[i];
    p = requests_[i].prompt_tokens.empty() ? g_.model_->tokenize(requests_[i].prompt, true, false)
                                           : requests_[i].prompt_tokens;
    GenResult& r = results_[i];
    r.n_prompt_tokens = int(p.size());
    auto bad = std::find_if(p.begin(), p.end(), [&](Token t) { return t < 0 || t >= n_vocab_; });
    if (p.empty()) {
      r.finish = FinishReason::kError;
      r.error = "empty prompt";
    } else if (bad != p.end()) {
      r.finish = FinishReason::kError;
      r.error = fmt::format("prompt token {} at position {} is outside the vocabulary (0..{})", *bad, bad - p.begin(),
                            n_vocab_ - 1);
    } else if (int(p.size()) >= ctx_seq_) {
      r.finish = FinishReason::kError;
      r.error = fmt::format("prompt has {} tokens but the context holds {} per sequence", p.size(), ctx_seq_);
    }
  }
}

// The (adapter, scale) groups that have work. Mixed: one run holds every group and each
// sequence carries its group's adapter slot; grouped: one run per group, its adapter on the
// whole context.
void BatchCall::make_groups(const std::map<Key, std::vector<size_t>>& groups) {
  for (auto& [key, members] : groups) {
    std::vector<size_t> ok;
    for (size_t i : members)
      if (results_[i].finish != FinishReason::kError) ok.push_back(i);
    if (ok.empty()) continue;
    for (size_t i : ok) group_of_[i] = int(keys_.size());
    keys_.push_back(key);
    members_of_.push_back(std::move(ok));
  }
  const bool one_adapter = keys_.size() == 1 && !keys_[0].first.empty();
  mixed_ = g_.opts_.mixed_adapters &&
           (keys_.size() > 1 || (one_adapter && g_.opts_.single_adapter_slots.value_or(g_.model_->offloaded()))) &&
           g_.use_adapter_slots();
  g_.stats_.mixed_adapters = mixed_;
}

// The slots start with what their caches kept from the last call (keep_cache) where this call has
// requests for the same adapter; any other kept cache is dropped when its slot takes a request
// (take_cached).
void BatchCall::restore_kept() {
  keep_ = g_.opts_.keep_cache && g_.opts_.shared_prefix;
  for (int s = 0; s < n_slots_; ++s) slots_[s].seq = s;
  restored_ = keep_ && g_.kept_valid_;
  if (restored_) {
    for (int s = 0; s < n_slots_ && s < int(g_.kept_.size()); ++s)
      for (int g = 0; g < int(keys_.size()); ++g)
        if (g_.kept_matches(g_.kept_[s], keys_[g], mixed_)) slots_[s].kv = g_.kept_[s].kv, slots_[s].kv_group = g;
  } else {
    llama_memory_clear(mem_, true);
  }
  g_.kept_valid_ = false;  // until this call ends normally
}

// What each slot's cache holds now: this call's tokens, or, in a slot that took no request, what it kept from
// before (another adapter's: a slot's cache is only copied from unless it takes a request).
void BatchCall::keep_caches() {
  if (!keep_) return;
  std::vector<Generator::KeptCache> kept(static_cast<size_t>(n_slots_));
  for (int s = 0; s < n_slots_; ++s) {
    const int g = slots_[s].kv_group;
    if (g >= 0 && !slots_[s].kv.empty()) {
      const std::string& a = keys_[g].first;
      kept[s] = {slots_[s].kv, a, keys_[g].second, a.empty() ? nullptr : g_.model_->raw_adapter(a),
                 mixed_ && !a.empty()};
    } else if (restored_ && !used_[s] && size_t(s) < g_.kept_.size()) {
      kept[s] = std::move(g_.kept_[s]);
    }
  }
  g_.kept_ = std::move(kept);
  g_.kept_valid_ = true;
}

// Shared prefix of a group: the longest common token prefix of its prompts, kept one token
// short of the shortest prompt so every prompt still decodes at least one token of its own.
// A prefix's KV depends on the adapter, so each group has its own; the spare sequence holds
// one group's at a time and is refilled when admission reaches the next group.
void BatchCall::find_prefixes() {
  prefix_len_.assign(keys_.size(), 0);
  for (size_t g = 0; g < keys_.size(); ++g) {
    const auto& todo = members_of_[g];
    if (!g_.has_spare() || todo.size() < 2) continue;
    const auto& p0 = prompts_[todo[0]];
    size_t prefix = p0.size();
    for (size_t i : todo) {
      const auto& p = prompts_[i];
      size_t k = 0;
      while (k < prefix && k < p.size() && p[k] == p0[k]) ++k;
      prefix = std::min(k, p.size() - 1);
    }
    if (int(prefix) >= g_.min_copy_) prefix_len_[g] = prefix;
  }
}

void BatchCall::set_seq_group(llama_seq_id seq, int g) {
  if (!mixed_) return;
  int slot = -1;
  if (!keys_[g].first.empty())
    slot = int(std::find(g_.slot_names_.begin(), g_.slot_names_.end(), keys_[g].first) - g_.slot_names_.begin());
  if (set_seq_adapter_slot(g_.ctx_, seq, slot, keys_[g].second) != 0)
    fail("internal: adapter slot {} for sequence {}: {}", slot, seq, engine_last_error());
}

int BatchCall::add_tok(Token t, llama_pos pos, llama_seq_id seq, bool logits) {
  return batch_add(batch_, g_.opts_.n_batch, t, pos, seq, logits);
}

void BatchCall::decode() {
  auto td = Clock::now();
  int rc = llama_decode(g_.ctx_, batch_);
  llama_synchronize(g_.ctx_);
  last_decode_ms_ = std::chrono::duration<double, std::milli>(Clock::now() - td).count();
  g_.stats_.t_decode_ms += last_decode_ms_;
  g_.stats_.n_decode_calls++;
  if (rc != 0) fail("llama_decode failed (code {}): {}", rc, engine_last_error());
}

// Fills the spare sequence with group g's common prefix. It starts from the slot cache that holds
// most of it, if that saves min_copy_ tokens: an earlier turn's (keep_cache), or the group's own
// prefix in a slot after the spare held another group's.
void BatchCall::decode_prefix(int g) {
  const size_t prefix = prefix_len_[g];
  const auto& p0 = prompts_[members_of_[g][0]];
  llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
  set_seq_group(prefix_seq_, g);
  const Slot* src = nullptr;
  prefix_cached_ = 0;
  for (const Slot& s : slots_) {
    const size_t c = std::min(cached_common(s, g, p0), prefix);
    if (c > prefix_cached_) prefix_cached_ = c, src = &s;
  }
  if (prefix_cached_ < size_t(g_.min_copy_)) prefix_cached_ = 0;
  if (prefix_cached_ > 0) {
    llama_memory_seq_cp(mem_, src->seq, prefix_seq_, -1, -1);
    if (!llama_memory_seq_rm(mem_, prefix_seq_, llama_pos(prefix_cached_), -1)) {  // a memory that cannot cut
      llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
      prefix_cached_ = 0;
    }
  }
  auto tp = Clock::now();
  for (size_t off = prefix_cached_; off < prefix; off += g_.opts_.n_batch) {
    batch_.n_tokens = 0;
    for (size_t k = off; k < std::min(prefix, off + g_.opts_.n_batch); ++k)
      add_tok(p0[k], llama_pos(k), prefix_seq_, false);
    decode();
    g_.stats_.n_prompt_tokens += batch_.n_tokens;
  }
  g_.stats_.t_prompt_ms += std::chrono::duration<double, std::milli>(Clock::now() - tp).count();
  prefix_group_ = g;
}

// Puts into free slot `sl` the longest prefix of `prompt` whose KV cache is already computed:
// a slot's (take_cached: its own, another's), or the group's common prefix in the spare
// sequence when that saves at least min_shared_prefix tokens more. Returns the tokens reused
// and, of them, those taken from a slot's cache (the spare's own: those it copied from one).
std::pair<size_t, size_t> BatchCall::reuse_prefix(Slot& sl, int g, const std::vector<Token>& prompt) {
  if (!g_.opts_.shared_prefix) return {take_cached(mem_, sl, g, CachedPrefix{}, 0), 0};  // starts empty
  const CachedPrefix c = find_cached(slots_, sl, g, prompt);
  const size_t pre = prefix_len_[g];  // <= every member's prompt size - 1
  if (pre > c.best && pre >= c.own + size_t(g_.min_copy_)) {
    if (prefix_group_ != g) decode_prefix(g);
    llama_memory_seq_cp(mem_, prefix_seq_, sl.seq, -1, -1);
    sl.kv.assign(prompt.begin(), prompt.begin() + long(pre));
    sl.kv_group = g;
    return {pre, prefix_cached_};
  }
  const size_t got = take_cached(mem_, sl, g, c, size_t(g_.min_copy_));
  return {got, got};
}

void BatchCall::finish_slot(Slot& sl, FinishReason why) {
  GenResult& r = results_[sl.req];
  r.text = sl.text;
  r.finish = why;
  r.n_gen_tokens = sl.n_gen;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - sl.start).count();
  if (on_piece_ && !sl.stream_stopped && sl.emitted < sl.text.size())
    on_piece_(size_t(sl.req), sl.text.substr(sl.emitted));
  // The slot's KV cache is kept: its tokens can serve the next requests (reuse_prefix).
  sl.req = -1;
  sl.sampler.reset();
  --active_;
}

// Admits waiting requests into free slots.
void BatchCall::admit(Lanes& queue) {
  for (auto& sl : slots_) {
    if (sl.req >= 0 || queue.empty()) continue;
    sl.req = long(queue.take(sl.seq));
    used_[size_t(sl.seq)] = 1;
    const GenRequest& rq = requests_[sl.req];
    const int g = group_of_[sl.req];
    const auto [reused, cached] = reuse_prefix(sl, g, prompts_[sl.req]);
    begin_request(sl, rq, prompts_[sl.req], n_vocab_, llama_model_get_vocab(g_.model_->raw()));
    set_seq_group(sl.seq, g);
    g_.stats_.n_prefix_reused += long(reused);
    results_[sl.req].n_cached_tokens = int(cached);
    sl.n_fed = reused;
    sl.n_past = int(reused);
    ++active_;
  }
}

// One batch: the pending token of every generating slot, then prompt chunks. Returns how many
// generated tokens it holds (the rest are prompt tokens).
int BatchCall::fill_batch() {
  batch_.n_tokens = 0;
  for (auto& sl : slots_) {
    sl.logits_at = -1;
    // validate() keeps n_parallel <= n_batch, so every pending token fits; a slot that did
    // not would keep its token for the next step.
    if (sl.req >= 0 && sl.next >= 0 && batch_.n_tokens < g_.opts_.n_batch) {
      sl.kv.push_back(sl.next);
      sl.logits_at = add_tok(sl.next, sl.n_past++, sl.seq, true);
      sl.next = -1;
    }
  }
  const int n_gen = batch_.n_tokens;
  for (auto& sl : slots_) {
    if (sl.req < 0 || sl.n_fed >= sl.prompt.size()) continue;
    while (sl.n_fed < sl.prompt.size() && batch_.n_tokens < g_.opts_.n_batch) {
      bool last = sl.n_fed + 1 == sl.prompt.size();
      sl.kv.push_back(sl.prompt[sl.n_fed]);
      int at = add_tok(sl.prompt[sl.n_fed++], sl.n_past++, sl.seq, last);
      if (last) sl.logits_at = at;
    }
  }
  return n_gen;
}

// Chooses tokens for every slot whose logits came out of the last batch (in parallel: with a
// large vocabulary this is real work, 128k logits per sequence per step), then takes them.
void BatchCall::take_tokens() {
  std::vector<Slot*> ready;
  std::vector<const float*> rows;
  for (auto& sl : slots_) {
    if (sl.req < 0 || sl.logits_at < 0) continue;
    ready.push_back(&sl);
    if (g_.backend_attached_) {
      sl.chosen = llama_get_sampled_token_ith(g_.ctx_, sl.logits_at);
      if (sl.chosen == LLAMA_TOKEN_NULL) fail("llama.cpp's backend sampler gave no token");
    } else {
      rows.push_back(llama_get_logits_ith(g_.ctx_, sl.logits_at));
    }
  }
#pragma omp parallel for schedule(dynamic) num_threads(g_.n_threads_) if (rows.size() > 1)
  for (size_t k = 0; k < rows.size(); ++k) {
    Slot& sl = *ready[k];
    const GenRequest& rq = requests_[sl.req];
    sl.chosen = choose_token(rows[k], n_vocab_, rq.sampling, sl.sampler.get(), sl.cand, !rq.grammar.empty());
    if (rq.n_logprobs >= 0) sl.lp = raw_logprobs(rows[k], n_vocab_, sl.chosen, rq.n_logprobs);
  }
  for (Slot* slp : ready) {
    Slot& sl = *slp;
    const GenRequest& rq = requests_[sl.req];
    GenResult& r = results_[sl.req];
    EmitFn emit;
    if (on_piece_) emit = [&](const std::string& piece) { return on_piece_(size_t(sl.req), piece); };
    if (auto why = take_token(sl, rq, r, *g_.model_, emit, ctx_seq_, g_.stats_)) finish_slot(sl, *why);
  }
}

// One run: the groups that decode together (all of them through the adapter slots, else one).
void BatchCall::run_groups(const std::vector<int>& run) {
  if (mixed_ || keys_[run[0]].first.empty()) {
    llama_set_adapters_lora(g_.ctx_, nullptr, 0, nullptr);
  } else {
    llama_adapter_lora* a = g_.model_->raw_adapter(keys_[run[0]].first);
    float scale = keys_[run[0]].second;
    llama_set_adapters_lora(g_.ctx_, &a, 1, &scale);
  }
  if (g_.has_spare()) llama_memory_seq_rm(mem_, prefix_seq_, -1, -1);
  prefix_group_ = -1;
  // A slot's cache from an earlier run (grouped: another adapter's) is labelled with its group, so
  // no request of this run starts from it.

  // With shared prefixes, each group's requests are sorted by their prompts' tokens and dealt to
  // the slots in lanes (Lanes), so a slot's next request usually starts with most of the prompt
  // it just finished, whose KV cache it keeps (reuse_prefix).
  std::vector<size_t> order;
  for (int g : run) {
    const size_t from = order.size();
    order.insert(order.end(), members_of_[g].begin(), members_of_[g].end());
    if (g_.opts_.shared_prefix)
      std::stable_sort(order.begin() + long(from), order.end(),
                       [&](size_t a, size_t b) { return prompts_[a] < prompts_[b]; });
  }
  Lanes queue(order, g_.opts_.shared_prefix ? n_slots_ : 1);
  active_ = 0;
  GenStats& st = g_.stats_;
  while (!queue.empty() || active_ > 0) {
    if (cancel_ && cancel_->load()) {
      for (auto& sl : slots_)
        if (sl.req >= 0) finish_slot(sl, FinishReason::kCancelled);
      for (size_t i : queue.drain()) results_[i].finish = FinishReason::kCancelled;
      break;
    }
    admit(queue);
    const int n_gen = fill_batch();
    if (batch_.n_tokens == 0) break;  // nothing runnable (cannot happen with admitted slots)
    const bool prompt_step = batch_.n_tokens > n_gen;
    st.n_prompt_tokens += batch_.n_tokens - n_gen;
    if (!prompt_step) st.n_gen_step_tokens += n_gen;
    auto ts = Clock::now();
    decode();
    int64_t kv_used = 0;
    for (const auto& sl : slots_)
      if (sl.req >= 0) kv_used += sl.n_past;
    g_.kv_used_.store(kv_used, std::memory_order_relaxed);
    take_tokens();
    double step_ms = std::chrono::duration<double, std::milli>(Clock::now() - ts).count();
    (prompt_step ? st.t_prompt_ms : st.t_gen_ms) += step_ms;
    if (!prompt_step) st.t_gen_decode_ms += last_decode_ms_;
  }
}

std::vector<GenResult> BatchCall::run() {
  if (requests_.empty()) return std::move(results_);
  std::map<Key, std::vector<size_t>> groups;
  check_requests(groups);
  attach_backend_sampling();
  tokenize();
  make_groups(groups);
  restore_kept();
  // No sequence keeps a slot from an earlier call (a context with slots but none in use
  // computes no slot deltas).
  for (llama_seq_id s = 0; s < g_.n_sequences() && !g_.slot_adapters_.empty(); ++s)
    set_seq_adapter_slot(g_.ctx_, s, -1, 0.0f);
  find_prefixes();
  std::vector<std::vector<int>> runs;  // group indices
  for (int g = 0; g < int(keys_.size()); ++g) {
    if (mixed_ && g > 0) runs[0].push_back(g);
    else runs.push_back({g});
  }
  for (const auto& run : runs) run_groups(run);
  keep_caches();
  return std::move(results_);
}

}  // namespace cogumi::gen_detail

namespace cogumi {

std::vector<GenResult> Generator::generate(const std::vector<GenRequest>& requests, const StreamFn& on_piece,
                                           const std::atomic<bool>* cancel) {
  stats_ = GenStats{};
  struct KvReset {  // no cells are held once the call returns, however it returns
    std::atomic<int64_t>& used;
    ~KvReset() { used = 0; }
  } kv_reset{kv_used_};
  const auto t0 = gen_detail::Clock::now();
  std::vector<GenResult> results = gen_detail::BatchCall(*this, requests, on_piece, cancel).run();
  stats_.t_total_ms = std::chrono::duration<double, std::milli>(gen_detail::Clock::now() - t0).count();
  return results;
}

}  // namespace cogumi
