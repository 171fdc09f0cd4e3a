// Generator::serve: continuous admission. The batch-at-a-time path (Generator::generate) knows
// every request up front; a server does not. Here every step first asks the feed for newcomers,
// puts waiting requests into free sequence slots, then decodes one batch holding the next token
// of every generating sequence and the prompt chunks of the newly admitted ones (as llama-server
// and vLLM do), so a request arriving mid-generation starts at the next step instead of after
// the running batch. The per-token work (sampling, stop strings, streaming) is gen_slot.h's,
// shared with generate().
#include <llama.h>

#include <algorithm>
#include <deque>

#include "core/error.h"
#include "engine/gen_slot.h"
#include "engine/generate.h"

namespace cogumi::gen_detail {

class ServeLoop {
 public:
  ServeLoop(Generator& g, const GenFeed& feed);
  ~ServeLoop() { llama_batch_free(batch_); }
  ServeLoop(const ServeLoop&) = delete;
  ServeLoop& operator=(const ServeLoop&) = delete;
  void run();

 private:
  using Key = std::pair<std::string, float>;  // (adapter, scale); the base is ("", 0)
  struct Waiting {
    GenJob job;
    std::vector<Token> prompt;
    Key key;
  };
  struct Running {
    GenJob job;
    GenResult result;
  };

  Generator& g_;
  const GenFeed& feed_;
  llama_memory_t mem_;
  llama_batch batch_;
  const int32_t n_vocab_;
  const int ctx_seq_;
  std::deque<Waiting> queue_;
  std::vector<Slot> slots_;
  std::vector<Running> run_;  // by slot
  size_t active_ = 0;
  bool mixed_ = false;         // adapter slots: every sequence carries its own adapter
  Key ctx_key_{"", 0.0f};      // without them: the adapter on the whole context
  bool closed_ = false;
  std::vector<Key> groups_;    // request groups seen: a slot's cache is reused within its group only

  int group_of(const Key& k) {
    auto it = std::find(groups_.begin(), groups_.end(), k);
    if (it != groups_.end()) return int(it - groups_.begin());
    if (groups_.size() >= 256) {  // clients sending ever new adapter scales: start the list over
      forget_caches();
      groups_.clear();
    }
    groups_.push_back(k);
    return int(groups_.size()) - 1;
  }
  void forget_caches() {  // the context's adapter changed, or a decode failed
    for (auto& sl : slots_) sl.kv_group = -1, sl.kv.clear();
  }

  bool poll();
  void accept(GenJob job);
  void drop_cancelled();
  void admit();
  void start(Slot& sl, Waiting w);
  bool fill_batch();
  void step();
  void sample(std::vector<Slot*>& ready);
  void finish(Slot& sl, FinishReason why, const std::string& error = "");
  void refuse(GenJob& job, const std::string& error, int n_prompt = 0);
  // The KV cells the running sequences hold, for Generator::kv_cells_used (metrics).
  void publish_kv() {
    int64_t kv = 0;
    for (const auto& sl : slots_)
      if (sl.req >= 0) kv += sl.n_past;
    g_.kv_used_.store(kv, std::memory_order_relaxed);
  }
};

ServeLoop::ServeLoop(Generator& g, const GenFeed& feed)
    : g_(g),
      feed_(feed),
      mem_(llama_get_memory(g.ctx_)),
      batch_(llama_batch_init(g.opts_.n_batch, 0, 1)),
      n_vocab_(g.model_->n_vocab()),
      ctx_seq_(g.opts_.n_ctx_per_seq),
      slots_(size_t(g.opts_.n_parallel)),
      run_(size_t(g.opts_.n_parallel)) {
  if (!feed_.poll || !feed_.on_done) fail("Generator::serve: the feed needs poll and on_done");
  for (int s = 0; s < g.opts_.n_parallel; ++s) slots_[size_t(s)].seq = s;
  // The host samples every token (backend samplers pick only plain greedy for a whole call).
  if (g.backend_attached_) {
    for (int s = 0; s < g.opts_.n_parallel; ++s) llama_set_sampler(g.ctx_, s, nullptr);
    for (auto* c : g.backend_chains_) llama_sampler_free(c);
    g.backend_chains_.clear();
    g.backend_attached_ = false;
  }
  llama_set_adapters_lora(g.ctx_, nullptr, 0, nullptr);
  llama_memory_clear(mem_, true);
  mixed_ = g.opts_.mixed_adapters && !g.model_->adapter_names().empty() && g.use_adapter_slots();
  for (llama_seq_id s = 0; s < g.n_sequences() && !g.slot_adapters_.empty(); ++s)
    set_seq_adapter_slot(g.ctx_, s, -1, 0.0f);
}

void ServeLoop::refuse(GenJob& job, const std::string& error, int n_prompt) {
  GenResult r;
  r.finish = FinishReason::kError;
  r.error = error;
  r.n_prompt_tokens = n_prompt;
  feed_.on_done(job.id, std::move(r));
}

// Checks and tokenizes a newcomer; a bad one finishes here, the rest wait for a slot.
void ServeLoop::accept(GenJob job) {
  const GenRequest& rq = job.request;
  try {
    rq.validate();
    if (!rq.adapter.empty()) g_.model_->raw_adapter(rq.adapter);  // throws if unknown
  } catch (const Error& e) {
    return refuse(job, e.what());
  }
  const llama_vocab* vocab = llama_model_get_vocab(g_.model_->raw());
  if (!rq.grammar.empty() && !make_sampler(rq.sampling, n_vocab_, vocab, rq.grammar))
    return refuse(job, "the grammar does not parse (llama.cpp's log, with -v, says where)");
  Waiting w;
  // parse_special off: a prompt is data, and "<|eot_id|>" in a question must stay text.
  w.prompt = rq.prompt_tokens.empty() ? g_.model_->tokenize(rq.prompt, true, false) : rq.prompt_tokens;
  const int n = int(w.prompt.size());
  auto bad = std::find_if(w.prompt.begin(), w.prompt.end(), [&](Token t) { return t < 0 || t >= n_vocab_; });
  if (w.prompt.empty()) return refuse(job, "empty prompt");
  if (bad != w.prompt.end())
    return refuse(job, fmt::format("prompt token {} at position {} is outside the vocabulary (0..{})", *bad,
                                   bad - w.prompt.begin(), n_vocab_ - 1), n);
  if (n >= ctx_seq_)
    return refuse(job, fmt::format("prompt has {} tokens but the context holds {} per sequence", n, ctx_seq_), n);
  w.key = rq.adapter.empty() ? Key{"", 0.0f} : Key{rq.adapter, rq.adapter_scale};
  w.job = std::move(job);
  queue_.push_back(std::move(w));
}

// False once the feed has closed and everything it gave has finished.
bool ServeLoop::poll() {
  if (!closed_) {
    std::vector<GenJob> incoming;
    closed_ = !feed_.poll(incoming, active_ == 0 && queue_.empty());
    for (auto& j : incoming) accept(std::move(j));
  }
  return !(closed_ && active_ == 0 && queue_.empty());
}

void ServeLoop::drop_cancelled() {
  for (auto& sl : slots_)
    if (sl.req >= 0 && run_[size_t(sl.req)].job.cancel && run_[size_t(sl.req)].job.cancel->load())
      finish(sl, FinishReason::kCancelled);
  for (auto it = queue_.begin(); it != queue_.end();) {
    if (it->job.cancel && it->job.cancel->load()) {
      GenResult r;
      r.finish = FinishReason::kCancelled;
      r.n_prompt_tokens = int(it->prompt.size());
      feed_.on_done(it->job.id, std::move(r));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

// Oldest first into free slots. A request goes to the free slot whose kept cache it continues
// (a conversation's next turn: all of that cache but a few tokens at its end is a prefix of the
// prompt), the longest such; else to the slot used longest ago (one never used first), taking
// what prefix it can from any slot (take_cached copies it). So a new conversation that shares
// only a system prompt does not cut another one's history. Without adapter slots a request for
// another adapter than the context's waits (and holds back those behind it, so none is starved)
// until the slots drain.
void ServeLoop::admit() {
  while (!queue_.empty()) {
    Waiting& w = queue_.front();
    Slot* cont = nullptr;  // the longest continuation
    Slot* lru = nullptr;
    size_t most = 0;
    const int g = group_of(w.key);
    for (auto& sl : slots_) {
      if (sl.req >= 0) continue;
      if (!lru || sl.freed < lru->freed) lru = &sl;
      const size_t k = cached_common(sl, g, w.prompt);
      // dropped at the end: the last answer's retokenized tail, the prompt's final token
      const size_t slack = std::max<size_t>(32, sl.kv.size() / 8);
      if (k > most && k + slack >= sl.kv.size()) cont = &sl, most = k;
    }
    Slot* free = cont ? cont : lru;
    if (!free) return;
    Slot& sl = *free;
    if (!mixed_ && w.key != ctx_key_) {
      if (active_ > 0) return;
      if (w.key.first.empty()) {
        llama_set_adapters_lora(g_.ctx_, nullptr, 0, nullptr);
      } else {
        llama_adapter_lora* a = g_.model_->raw_adapter(w.key.first);
        llama_set_adapters_lora(g_.ctx_, &a, 1, &w.key.second);
      }
      ctx_key_ = w.key;
      forget_caches();
    }
    Waiting taken = std::move(w);
    queue_.pop_front();
    start(sl, std::move(taken));
  }
}

void ServeLoop::start(Slot& sl, Waiting w) {
  const long at = long(&sl - slots_.data());
  const GenRequest& rq = w.job.request;
  sl.req = at;
  begin_request(sl, rq, std::move(w.prompt), n_vocab_, llama_model_get_vocab(g_.model_->raw()));
  const int g = group_of(w.key);
  const CachedPrefix found = g_.opts_.shared_prefix ? find_cached(slots_, sl, g, sl.prompt) : CachedPrefix{};
  const size_t reused = take_cached(mem_, sl, g, found, size_t(g_.min_copy_));  // empty when caching is off
  if (mixed_) {
    int32_t slot = -1;
    if (!w.key.first.empty())
      slot = int32_t(std::find(g_.slot_names_.begin(), g_.slot_names_.end(), w.key.first) - g_.slot_names_.begin());
    if (set_seq_adapter_slot(g_.ctx_, sl.seq, slot, w.key.second) != 0)
      fail("internal: adapter slot {} for sequence {}: {}", slot, sl.seq, engine_last_error());
  }
  sl.n_fed = reused;
  sl.n_past = int(reused);
  g_.stats_.n_prefix_reused += int64_t(reused);
  run_[size_t(at)] = Running{std::move(w.job), GenResult{}};
  run_[size_t(at)].result.n_prompt_tokens = int(sl.prompt.size());
  run_[size_t(at)].result.n_cached_tokens = int(reused);
  ++active_;
}

void ServeLoop::finish(Slot& sl, FinishReason why, const std::string& error) {
  Running& rn = run_[size_t(sl.req)];
  GenResult& r = rn.result;
  r.text = sl.text;
  r.finish = why;
  r.error = error;
  r.n_gen_tokens = sl.n_gen;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - sl.start).count();
  if (feed_.on_piece && !sl.stream_stopped && sl.emitted < sl.text.size() && why != FinishReason::kError)
    feed_.on_piece(rn.job.id, sl.text.substr(sl.emitted));
  // Its KV cache stays for a later request that starts the same way (take_cached).
  sl.req = -1;
  sl.freed = Clock::now();
  publish_kv();
  sl.sampler.reset();
  --active_;
  const uint64_t id = rn.job.id;
  GenResult out = std::move(r);
  rn = Running{};
  feed_.on_done(id, std::move(out));
}

// The pending token of every generating slot, then prompt chunks of the admitted ones. True
// when the batch holds prompt tokens.
bool ServeLoop::fill_batch() {
  auto add = [&](Token t, llama_pos pos, llama_seq_id seq, bool logits) {
    return batch_add(batch_, g_.opts_.n_batch, t, pos, seq, logits);
  };
  batch_.n_tokens = 0;
  for (auto& sl : slots_) {
    sl.logits_at = -1;
    if (sl.req >= 0 && sl.next >= 0) {  // n_parallel <= n_batch: every pending token fits
      sl.kv.push_back(sl.next);
      sl.logits_at = add(sl.next, sl.n_past++, sl.seq, true);
      sl.next = -1;
    }
  }
  const int n_gen = batch_.n_tokens;
  for (auto& sl : slots_) {
    while (sl.req >= 0 && sl.n_fed < sl.prompt.size() && batch_.n_tokens < g_.opts_.n_batch) {
      const bool last = sl.n_fed + 1 == sl.prompt.size();
      sl.kv.push_back(sl.prompt[sl.n_fed]);
      const int at = add(sl.prompt[sl.n_fed++], sl.n_past++, sl.seq, last);
      if (last) sl.logits_at = at;
    }
  }
  g_.stats_.n_prompt_tokens += batch_.n_tokens - n_gen;
  return batch_.n_tokens > n_gen;
}

void ServeLoop::sample(std::vector<Slot*>& ready) {
  std::vector<const float*> rows;
  for (auto& sl : slots_) {
    if (sl.req < 0 || sl.logits_at < 0) continue;
    ready.push_back(&sl);
    rows.push_back(llama_get_logits_ith(g_.ctx_, sl.logits_at));
  }
#pragma omp parallel for schedule(dynamic) num_threads(g_.n_threads_) if (rows.size() > 1)
  for (size_t k = 0; k < rows.size(); ++k) {
    Slot& sl = *ready[k];
    const GenRequest& rq = run_[size_t(sl.req)].job.request;
    sl.chosen = choose_token(rows[k], n_vocab_, rq.sampling, sl.sampler.get(), sl.cand, !rq.grammar.empty());
    if (rq.n_logprobs >= 0) sl.lp = raw_logprobs(rows[k], n_vocab_, sl.chosen, rq.n_logprobs);
  }
}

void ServeLoop::step() {
  const bool prompt_step = fill_batch();
  if (batch_.n_tokens == 0) return;
  const auto t0 = Clock::now();
  const int rc = llama_decode(g_.ctx_, batch_);
  llama_synchronize(g_.ctx_);
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  g_.stats_.t_decode_ms += ms;
  g_.stats_.n_decode_calls++;
  if (!prompt_step) g_.stats_.n_gen_step_tokens += batch_.n_tokens;
  if (rc != 0) {  // the requests in this step end with the error; what the cache kept of it is unknown
    const std::string why = fmt::format("llama_decode failed (code {}): {}", rc, engine_last_error());
    for (auto& sl : slots_)
      if (sl.req >= 0) finish(sl, FinishReason::kError, why);
    forget_caches();
    return;
  }
  publish_kv();
  std::vector<Slot*> ready;
  sample(ready);
  for (Slot* sl : ready) {
    Running& rn = run_[size_t(sl->req)];
    EmitFn emit;
    if (feed_.on_piece) emit = [&](const std::string& piece) { return feed_.on_piece(rn.job.id, piece); };
    if (auto why = take_token(*sl, rn.job.request, rn.result, *g_.model_, emit, ctx_seq_, g_.stats_))
      finish(*sl, *why);
  }
  publish_kv();  // cells held by running requests (kept caches of finished ones are not counted)
  const double step_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  (prompt_step ? g_.stats_.t_prompt_ms : g_.stats_.t_gen_ms) += step_ms;
  if (!prompt_step) g_.stats_.t_gen_decode_ms += ms;
}

void ServeLoop::run() {
  const auto t0 = Clock::now();
  g_.stats_ = GenStats{};
  g_.stats_.mixed_adapters = mixed_;
  while (poll()) {
    drop_cancelled();
    admit();
    if (active_ > 0) step();
    g_.stats_.t_total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }
  g_.kv_used_ = 0;
}

}  // namespace cogumi::gen_detail

namespace cogumi {

void Generator::serve(const GenFeed& feed) {
  kept_valid_ = false;  // the loop clears the KV cache and leaves its own requests' in it
  gen_detail::ServeLoop loop(*this, feed);
  try {
    loop.run();
  } catch (...) {
    kv_used_ = 0;
    throw;
  }
}

}  // namespace cogumi
