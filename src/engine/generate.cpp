#include "engine/generate.h"

#include <llama.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <map>
#include <thread>

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
  // One KV stream per slot plus one for shared prefixes.
  cp.n_seq_max = uint32_t(opts_.n_parallel + (opts_.shared_prefix ? 1 : 0));
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


std::vector<GenResult> Generator::generate(const std::vector<GenRequest>& requests, const StreamFn& on_piece,
                                           const std::atomic<bool>* cancel) {
  stats_ = GenStats{};
  struct KvReset {  // no cells are held once the call returns, however it returns
    std::atomic<int64_t>& used;
    ~KvReset() { used = 0; }
  } kv_reset{kv_used_};
  auto t0 = Clock::now();
  std::vector<GenResult> results(requests.size());
  if (requests.empty()) return results;

  // Group by adapter: llama.cpp applies adapters to the whole context (see header).
  std::map<std::pair<std::string, float>, std::vector<size_t>> groups;
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      requests[i].validate();
    } catch (const Error& e) {
      fail("request {}: {}", i, e.what());
    }
    if (!requests[i].adapter.empty()) model_->raw_adapter(requests[i].adapter);  // throws if unknown
    if (!requests[i].grammar.empty() &&
        !make_sampler(requests[i].sampling, model_->n_vocab(), llama_model_get_vocab(model_->raw()), requests[i].grammar))
      fail("request {}: the grammar does not parse (llama.cpp's log, with -v, says where)", i);
    groups[{requests[i].adapter, requests[i].adapter_scale}].push_back(i);
  }

  const int32_t n_vocab = model_->n_vocab();
  const int n_slots = opts_.n_parallel;
  // Backend (in-graph) greedy when every request of this call is plain greedy without log-probs.
  bool backend = opts_.backend_sampling;
  for (const auto& rq : requests)
    if (!(rq.sampling.temperature <= 0.0f && rq.sampling.repeat_penalty == 1.0f) || rq.n_logprobs >= 0 ||
        !rq.grammar.empty())
      backend = false;
  if (backend != backend_attached_) {
    // A chain initialises its backend state once, so every attach gets fresh chains.
    auto detach = [&] {
      for (int s = 0; s < n_slots; ++s) llama_set_sampler(ctx_, s, nullptr);
      for (auto* c : backend_chains_) llama_sampler_free(c);
      backend_chains_.clear();
    };
    if (backend) {
      bool ok = true;
      for (int s = 0; s < n_slots; ++s) {
        llama_sampler* c = llama_sampler_chain_init(llama_sampler_chain_default_params());
        llama_sampler_chain_add(c, llama_sampler_init_greedy());
        backend_chains_.push_back(c);
        ok = llama_set_sampler(ctx_, s, c) && ok;
      }
      if (!ok) {  // not offloadable here: back to host sampling
        detach();
        backend = false;
      }
    } else {
      detach();
    }
    backend_attached_ = backend;
  }
  const llama_seq_id prefix_seq = n_slots;
  const int ctx_seq = opts_.n_ctx_per_seq;
  llama_memory_t mem = llama_get_memory(ctx_);
  llama_batch batch = llama_batch_init(opts_.n_batch, 0, 1);
  struct BatchGuard {
    llama_batch& b;
    ~BatchGuard() { llama_batch_free(b); }
  } guard{batch};

  // Tokenize everything up front.
  std::vector<std::vector<Token>> prompts(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    // parse_special off: a prompt is data, and "<|eot_id|>" in a question must stay text.
    prompts[i] = requests[i].prompt_tokens.empty() ? model_->tokenize(requests[i].prompt, true, false)
                                                   : requests[i].prompt_tokens;
    results[i].n_prompt_tokens = int(prompts[i].size());
    auto bad = std::find_if(prompts[i].begin(), prompts[i].end(), [&](Token t) { return t < 0 || t >= n_vocab; });
    if (prompts[i].empty()) {
      results[i].finish = FinishReason::kError;
      results[i].error = "empty prompt";
    } else if (bad != prompts[i].end()) {
      results[i].finish = FinishReason::kError;
      results[i].error = fmt::format("prompt token {} at position {} is outside the vocabulary (0..{})", *bad,
                                     bad - prompts[i].begin(), n_vocab - 1);
    } else if (int(prompts[i].size()) >= ctx_seq) {
      results[i].finish = FinishReason::kError;
      results[i].error = fmt::format("prompt has {} tokens but the context holds {} per sequence", prompts[i].size(),
                                     ctx_seq);
    }
  }

  auto add_tok = [&](Token t, llama_pos pos, llama_seq_id seq, bool logits) {
    // The buffer holds n_batch tokens; every caller checks room first, this keeps a slip from
    // turning into a write past the end.
    if (batch.n_tokens >= opts_.n_batch) fail("internal: decode batch full ({} tokens)", opts_.n_batch);
    int n = batch.n_tokens++;
    batch.token[n] = t;
    batch.pos[n] = pos;
    batch.n_seq_id[n] = 1;
    batch.seq_id[n][0] = seq;
    batch.logits[n] = logits;
    return n;
  };
  double last_decode_ms = 0.0;
  auto decode = [&]() {
    auto td = Clock::now();
    int rc = llama_decode(ctx_, batch);
    llama_synchronize(ctx_);
    last_decode_ms = std::chrono::duration<double, std::milli>(Clock::now() - td).count();
    stats_.t_decode_ms += last_decode_ms;
    stats_.n_decode_calls++;
    if (rc != 0) fail("llama_decode failed (code {}): {}", rc, engine_last_error());
  };

  // The (adapter, scale) groups that have work. Mixed: one run holds every group and each
  // sequence carries its group's adapter slot; grouped: one run per group, its adapter on the
  // whole context.
  std::vector<std::pair<std::string, float>> keys;
  std::vector<std::vector<size_t>> members_of;
  std::vector<int> group_of(requests.size(), -1);
  for (auto& [key, members] : groups) {
    std::vector<size_t> ok;
    for (size_t i : members)
      if (results[i].finish != FinishReason::kError) ok.push_back(i);
    if (ok.empty()) continue;
    for (size_t i : ok) group_of[i] = int(keys.size());
    keys.push_back(key);
    members_of.push_back(std::move(ok));
  }
  const bool one_adapter = keys.size() == 1 && !keys[0].first.empty();
  const bool mixed =
      opts_.mixed_adapters &&
      (keys.size() > 1 || (one_adapter && opts_.single_adapter_slots.value_or(model_->offloaded()))) &&
      use_adapter_slots();
  stats_.mixed_adapters = mixed;
  // The slots, with what their caches kept from the last call (keep_cache) where this call has requests for the
  // same adapter; any other kept cache is dropped when its slot takes a request (take_cached).
  const bool keep = opts_.keep_cache && opts_.shared_prefix;
  std::vector<Slot> slots(n_slots);
  for (int s = 0; s < n_slots; ++s) slots[s].seq = s;
  if (keep && kept_valid_) {
    for (int s = 0; s < n_slots && s < int(kept_.size()); ++s)
      for (int g = 0; g < int(keys.size()); ++g)
        if (kept_matches(kept_[s], keys[g], mixed)) slots[s].kv = kept_[s].kv, slots[s].kv_group = g;
  } else {
    llama_memory_clear(mem, true);
  }
  kept_valid_ = false;  // until this call ends normally
  // No sequence keeps a slot from an earlier call (a context with slots but none in use
  // computes no slot deltas).
  for (llama_seq_id s = 0; s <= prefix_seq && !slot_adapters_.empty(); ++s) set_seq_adapter_slot(ctx_, s, -1, 0.0f);
  auto set_seq_group = [&](llama_seq_id seq, int g) {
    if (!mixed) return;
    int slot = -1;
    if (!keys[g].first.empty())
      slot = int(std::find(slot_names_.begin(), slot_names_.end(), keys[g].first) - slot_names_.begin());
    if (set_seq_adapter_slot(ctx_, seq, slot, keys[g].second) != 0)
      fail("internal: adapter slot {} for sequence {}: {}", slot, seq, engine_last_error());
  };
  std::vector<std::vector<int>> runs;  // group indices
  for (int g = 0; g < int(keys.size()); ++g) {
    if (mixed && g > 0) runs[0].push_back(g);
    else runs.push_back({g});
  }

  // Shared prefix of a group: the longest common token prefix of its prompts, kept one token
  // short of the shortest prompt so every prompt still decodes at least one token of its own.
  // A prefix's KV depends on the adapter, so each group has its own; the spare sequence holds
  // one group's at a time and is refilled when admission reaches the next group.
  std::vector<size_t> prefix_len(keys.size(), 0);
  for (size_t g = 0; g < keys.size(); ++g) {
    const auto& todo = members_of[g];
    if (!opts_.shared_prefix || todo.size() < 2) continue;
    const auto& p0 = prompts[todo[0]];
    size_t prefix = p0.size();
    for (size_t i : todo) {
      const auto& p = prompts[i];
      size_t k = 0;
      while (k < prefix && k < p.size() && p[k] == p0[k]) ++k;
      prefix = std::min(k, p.size() - 1);
    }
    if (int(prefix) >= min_copy_) prefix_len[g] = prefix;
  }
  int prefix_group = -1;  // whose prefix the spare sequence holds
  size_t prefix_cached = 0;  // of its tokens, those copied from a slot's cache rather than decoded
  auto decode_prefix = [&](int g) {
    const size_t prefix = prefix_len[g];
    const auto& p0 = prompts[members_of[g][0]];
    llama_memory_seq_rm(mem, prefix_seq, -1, -1);
    set_seq_group(prefix_seq, g);
    // It starts from the slot cache that holds most of it, if that saves min_copy_ tokens: an earlier turn's
    // (keep_cache), or the group's own prefix in a slot after the spare held another group's.
    const Slot* src = nullptr;
    prefix_cached = 0;
    for (const Slot& s : slots) {
      const size_t c = std::min(cached_common(s, g, p0), prefix);
      if (c > prefix_cached) prefix_cached = c, src = &s;
    }
    if (prefix_cached < size_t(min_copy_)) prefix_cached = 0;
    if (prefix_cached > 0) {
      llama_memory_seq_cp(mem, src->seq, prefix_seq, -1, -1);
      if (!llama_memory_seq_rm(mem, prefix_seq, llama_pos(prefix_cached), -1)) {  // a memory that cannot cut
        llama_memory_seq_rm(mem, prefix_seq, -1, -1);
        prefix_cached = 0;
      }
    }
    auto tp = Clock::now();
    for (size_t off = prefix_cached; off < prefix; off += opts_.n_batch) {
      batch.n_tokens = 0;
      for (size_t k = off; k < std::min(prefix, off + opts_.n_batch); ++k)
        add_tok(p0[k], llama_pos(k), prefix_seq, false);
      decode();
      stats_.n_prompt_tokens += batch.n_tokens;
    }
    stats_.t_prompt_ms += std::chrono::duration<double, std::milli>(Clock::now() - tp).count();
    prefix_group = g;
  };

  for (const auto& run : runs) {
    if (mixed || keys[run[0]].first.empty()) {
      llama_set_adapters_lora(ctx_, nullptr, 0, nullptr);
    } else {
      llama_adapter_lora* a = model_->raw_adapter(keys[run[0]].first);
      float scale = keys[run[0]].second;
      llama_set_adapters_lora(ctx_, &a, 1, &scale);
    }
    if (opts_.shared_prefix) llama_memory_seq_rm(mem, prefix_seq, -1, -1);
    prefix_group = -1;
    // A slot's cache from an earlier run (grouped: another adapter's) is labelled with its group, so no request of
    // this run starts from it.

    // With shared prefixes, each group's requests are sorted by their prompts' tokens and dealt to
    // the slots in lanes (Lanes), so a slot's next request usually starts with most of the prompt
    // it just finished, whose KV cache it keeps (reuse_prefix below).
    std::vector<size_t> order;
    for (int g : run) {
      const size_t from = order.size();
      order.insert(order.end(), members_of[g].begin(), members_of[g].end());
      if (opts_.shared_prefix)
        std::stable_sort(order.begin() + long(from), order.end(),
                         [&](size_t a, size_t b) { return prompts[a] < prompts[b]; });
    }
    Lanes queue(order, opts_.shared_prefix ? n_slots : 1);
    size_t active = 0;

    auto finish_slot = [&](Slot& sl, FinishReason why) {
      GenResult& r = results[sl.req];
      r.text = sl.text;
      r.finish = why;
      r.n_gen_tokens = sl.n_gen;
      r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - sl.start).count();
      if (on_piece && !sl.stream_stopped && sl.emitted < sl.text.size())
        on_piece(size_t(sl.req), sl.text.substr(sl.emitted));
      // The slot's KV cache is kept: its tokens can serve the next requests (reuse_prefix).
      sl.req = -1;
      sl.sampler.reset();
      --active;
    };

    // Puts into free slot `sl` the longest prefix of `prompt` whose KV cache is already computed:
    // a slot's (take_cached: its own, another's), or the group's common prefix in the spare
    // sequence when that saves at least min_shared_prefix tokens more. Returns the tokens reused
    // and, of them, those taken from a slot's cache (the spare's own: those it copied from one).
    auto reuse_prefix = [&](Slot& sl, int g, const std::vector<Token>& prompt) -> std::pair<size_t, size_t> {
      if (!opts_.shared_prefix) return {take_cached(mem, sl, g, CachedPrefix{}, 0), 0};  // starts empty
      const CachedPrefix c = find_cached(slots, sl, g, prompt);
      const size_t pre = prefix_len[g];  // <= every member's prompt size - 1
      if (pre > c.best && pre >= c.own + size_t(min_copy_)) {
        if (prefix_group != g) decode_prefix(g);
        llama_memory_seq_cp(mem, prefix_seq, sl.seq, -1, -1);
        sl.kv.assign(prompt.begin(), prompt.begin() + long(pre));
        sl.kv_group = g;
        return {pre, prefix_cached};
      }
      const size_t got = take_cached(mem, sl, g, c, size_t(min_copy_));
      return {got, got};
    };

    while (!queue.empty() || active > 0) {
      if (cancel && cancel->load()) {
        for (auto& sl : slots)
          if (sl.req >= 0) finish_slot(sl, FinishReason::kCancelled);
        for (size_t i : queue.drain()) results[i].finish = FinishReason::kCancelled;
        break;
      }
      // Admit waiting requests into free slots.
      for (auto& sl : slots) {
        if (sl.req >= 0 || queue.empty()) continue;
        sl.req = long(queue.take(sl.seq));
        const GenRequest& rq = requests[sl.req];
        const int g = group_of[sl.req];
        const auto [reused, cached] = reuse_prefix(sl, g, prompts[sl.req]);
        sl.prompt = prompts[sl.req];
        sl.text.clear();
        sl.emitted = 0;
        sl.n_gen = 0;
        sl.next = -1;
        sl.stream_stopped = false;
        sl.start = Clock::now();
        sl.sampler = make_sampler(rq.sampling, n_vocab, llama_model_get_vocab(model_->raw()), rq.grammar);
        if (rq.sampling.repeat_penalty != 1.0f)
          for (Token t : sl.prompt) llama_sampler_accept(sl.sampler.get(), t);
        set_seq_group(sl.seq, g);
        stats_.n_prefix_reused += long(reused);
        results[sl.req].n_cached_tokens = int(cached);
        sl.n_fed = reused;
        sl.n_past = int(reused);
        ++active;
      }

      // One batch: the pending token of every generating slot, then prompt chunks.
      batch.n_tokens = 0;
      for (auto& sl : slots) {
        sl.logits_at = -1;
        // validate() keeps n_parallel <= n_batch, so every pending token fits; a slot that did
        // not would keep its token for the next step.
        if (sl.req >= 0 && sl.next >= 0 && batch.n_tokens < opts_.n_batch) {
          sl.kv.push_back(sl.next);
          sl.logits_at = add_tok(sl.next, sl.n_past++, sl.seq, true);
          sl.next = -1;
        }
      }
      int n_gen_in_batch = batch.n_tokens;
      for (auto& sl : slots) {
        if (sl.req < 0 || sl.n_fed >= sl.prompt.size()) continue;
        while (sl.n_fed < sl.prompt.size() && batch.n_tokens < opts_.n_batch) {
          bool last = sl.n_fed + 1 == sl.prompt.size();
          sl.kv.push_back(sl.prompt[sl.n_fed]);
          int at = add_tok(sl.prompt[sl.n_fed++], sl.n_past++, sl.seq, last);
          if (last) sl.logits_at = at;
        }
      }
      if (batch.n_tokens == 0) break;  // nothing runnable (cannot happen with admitted slots)
      const bool prompt_step = batch.n_tokens > n_gen_in_batch;
      stats_.n_prompt_tokens += batch.n_tokens - n_gen_in_batch;
      if (!prompt_step) stats_.n_gen_step_tokens += n_gen_in_batch;
      auto ts = Clock::now();
      decode();
      int64_t kv_used = 0;
      for (const auto& sl : slots)
        if (sl.req >= 0) kv_used += sl.n_past;
      kv_used_.store(kv_used, std::memory_order_relaxed);

      // Choose tokens for every slot whose logits came out of this batch: in parallel, since
      // with a large vocabulary this is real work (128k logits per sequence per step).
      std::vector<Slot*> ready;
      std::vector<const float*> rows;
      for (auto& sl : slots) {
        if (sl.req < 0 || sl.logits_at < 0) continue;
        ready.push_back(&sl);
        if (backend_attached_) {
          sl.chosen = llama_get_sampled_token_ith(ctx_, sl.logits_at);
          if (sl.chosen == LLAMA_TOKEN_NULL) fail("llama.cpp's backend sampler gave no token");
        } else {
          rows.push_back(llama_get_logits_ith(ctx_, sl.logits_at));
        }
      }
#pragma omp parallel for schedule(dynamic) num_threads(n_threads_) if (rows.size() > 1)
      for (size_t k = 0; k < rows.size(); ++k) {
        Slot& sl = *ready[k];
        const GenRequest& rq = requests[sl.req];
        sl.chosen = choose_token(rows[k], n_vocab, rq.sampling, sl.sampler.get(), sl.cand, !rq.grammar.empty());
        if (rq.n_logprobs >= 0) sl.lp = raw_logprobs(rows[k], n_vocab, sl.chosen, rq.n_logprobs);
      }
      for (Slot* slp : ready) {
        Slot& sl = *slp;
        const GenRequest& rq = requests[sl.req];
        GenResult& r = results[sl.req];
        EmitFn emit;
        if (on_piece) emit = [&](const std::string& piece) { return on_piece(size_t(sl.req), piece); };
        if (auto why = take_token(sl, rq, r, *model_, emit, ctx_seq, stats_)) finish_slot(sl, *why);
      }
      double step_ms = std::chrono::duration<double, std::milli>(Clock::now() - ts).count();
      (prompt_step ? stats_.t_prompt_ms : stats_.t_gen_ms) += step_ms;
      if (!prompt_step) stats_.t_gen_decode_ms += last_decode_ms;
    }
  }
  stats_.t_total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  if (keep) {
    kept_.assign(size_t(n_slots), KeptCache{});
    for (int s = 0; s < n_slots; ++s) {
      const int g = slots[s].kv_group;
      if (g < 0 || slots[s].kv.empty()) continue;
      const std::string& a = keys[g].first;
      kept_[s] = {slots[s].kv, a, keys[g].second, a.empty() ? nullptr : model_->raw_adapter(a), mixed && !a.empty()};
    }
    kept_valid_ = true;
  }
  return results;
}

bool Generator::kept_matches(const KeptCache& k, const std::pair<std::string, float>& key, bool mixed) const {
  if (k.kv.empty() || k.adapter != key.first || k.scale != key.second) return false;
  if (k.adapter.empty()) return true;  // the base: no adapter delta either way
  // the same adapter object (not one reloaded under its name), applied the same way
  return k.raw == model_->raw_adapter(k.adapter) && k.slots == mixed;
}

}  // namespace cogumi
