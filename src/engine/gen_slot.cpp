// The per-token work shared by Generator::generate and Generator::serve (gen_slot.h).
#include "engine/gen_slot.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace cogumi::gen_detail {

SamplerPtr make_sampler(const SamplingParams& sp, int32_t n_vocab, const llama_vocab* vocab,
                        const std::string& grammar) {
  llama_sampler_chain_params cp = llama_sampler_chain_default_params();
  cp.no_perf = true;
  SamplerPtr chain(llama_sampler_chain_init(cp));
  if (!grammar.empty()) {  // first: later samplers only see tokens the grammar allows
    llama_sampler* g = llama_sampler_init_grammar(vocab, grammar.c_str(), "root");
    if (!g) return nullptr;
    llama_sampler_chain_add(chain.get(), g);
  }
  if (sp.repeat_penalty != 1.0f)
    llama_sampler_chain_add(chain.get(), llama_sampler_init_penalties(n_vocab, sp.repeat_last_n, sp.repeat_penalty,
                                                                      0.0f, 0.0f));
  if (sp.temperature <= 0.0f) {
    llama_sampler_chain_add(chain.get(), llama_sampler_init_greedy());
  } else {
    if (sp.top_k > 0) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_k(sp.top_k));
    if (sp.top_p < 1.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_top_p(sp.top_p, 1));
    if (sp.min_p > 0.0f) llama_sampler_chain_add(chain.get(), llama_sampler_init_min_p(sp.min_p, 1));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_temp(sp.temperature));
    llama_sampler_chain_add(chain.get(), llama_sampler_init_dist(sp.seed));
  }
  return chain;
}

// Bytes at the end of s that start an incomplete UTF-8 sequence.
size_t utf8_incomplete_tail(const std::string& s) {
  size_t n = s.size();
  for (size_t k = 1; k <= std::min<size_t>(3, n); ++k) {
    unsigned char c = static_cast<unsigned char>(s[n - k]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte
    size_t need = (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
    return need > k ? k : 0;
  }
  return 0;
}

// Longest suffix of text that is a proper prefix of some stop string.
size_t stop_holdback(const std::string& text, const std::vector<std::string>& stops) {
  size_t hold = 0;
  for (const auto& s : stops) {
    for (size_t k = std::min(s.size() - 1, text.size()); k > hold; --k) {
      if (text.compare(text.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
    }
  }
  return hold;
}



RawLogprob raw_logprobs(const float* logits, int32_t n_vocab, Token chosen, int k) {
  RawLogprob out;
  float mx = *std::max_element(logits, logits + n_vocab);
  double sum = 0.0;
  for (int32_t i = 0; i < n_vocab; ++i) sum += std::exp(double(logits[i] - mx));
  float lse = mx + float(std::log(sum));
  out.logprob = logits[chosen] - lse;
  if (k > 0) {
    std::vector<int32_t> idx(n_vocab);
    for (int32_t i = 0; i < n_vocab; ++i) idx[i] = i;
    k = std::min(k, n_vocab);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b]; });
    for (int i = 0; i < k; ++i) out.top.emplace_back(idx[i], logits[idx[i]] - lse);
  }
  return out;
}

// Index of the first maximum. Two passes: a max reduction the compiler vectorises, then a
// scan for the first element equal to it (a 128k vocabulary makes this per-step work).
static Token argmax(const float* x, int32_t n) {
  float m = x[0];
#pragma omp simd reduction(max : m)
  for (int32_t i = 0; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int32_t i = 0; i < n; ++i)
    if (x[i] == m) return i;
  return 0;
}

// Picks the next token from one row of logits. Plain greedy is an argmax (the first maximum,
// as llama.cpp's greedy sampler picks); everything else runs the slot's llama.cpp sampler
// chain on its own candidate buffer, so slots can be sampled in parallel.
Token choose_token(const float* logits, int32_t n_vocab, const SamplingParams& sp, llama_sampler* chain,
                   std::vector<llama_token_data>& cand, bool constrained) {
  if (sp.temperature <= 0.0f && sp.repeat_penalty == 1.0f && !constrained)
    return argmax(logits, n_vocab);
  cand.resize(n_vocab);
  for (int32_t i = 0; i < n_vocab; ++i) cand[i] = llama_token_data{i, logits[i], 0.0f};
  llama_token_data_array arr{cand.data(), cand.size(), -1, false};
  llama_sampler_apply(chain, &arr);
  Token t = arr.data[arr.selected].id;
  llama_sampler_accept(chain, t);
  return t;
}

int batch_add(llama_batch& batch, int cap, Token t, llama_pos pos, llama_seq_id seq, bool logits) {
  if (batch.n_tokens >= cap) fail("internal: decode batch full ({} tokens)", cap);
  const int n = batch.n_tokens++;
  batch.token[n] = t;
  batch.pos[n] = pos;
  batch.n_seq_id[n] = 1;
  batch.seq_id[n][0] = seq;
  batch.logits[n] = logits;
  return n;
}

void begin_request(Slot& sl, const GenRequest& rq, std::vector<Token> prompt, int32_t n_vocab, const llama_vocab* vocab) {
  sl.prompt = std::move(prompt);
  sl.text.clear();
  sl.emitted = 0;
  sl.n_gen = 0;
  sl.next = -1;
  sl.stream_stopped = false;
  sl.start = Clock::now();
  sl.sampler = make_sampler(rq.sampling, n_vocab, vocab, rq.grammar);
  if (rq.sampling.repeat_penalty != 1.0f)
    for (Token t : sl.prompt) llama_sampler_accept(sl.sampler.get(), t);
}

std::optional<FinishReason> take_token(Slot& sl, const GenRequest& rq, GenResult& r, const Model& model,
                                       const EmitFn& emit, int ctx_seq, GenStats& stats) {
  const Token tok = sl.chosen;
  if (rq.n_logprobs >= 0) {
    TokenLogprob lp;
    lp.token = tok;
    lp.text = model.token_to_piece(tok);
    lp.logprob = sl.lp.logprob;
    for (auto& [id, l] : sl.lp.top) lp.top.emplace_back(model.token_to_piece(id), l);
    r.logprobs.push_back(std::move(lp));
  }
  if (!rq.ignore_eos && model.is_eog(tok)) {
    if (rq.n_logprobs >= 0) r.logprobs.pop_back();
    return FinishReason::kStop;
  }
  ++sl.n_gen;
  ++stats.n_gen_tokens;
  const size_t before = sl.text.size();
  sl.text += model.token_to_piece(tok);
  // Stop strings: search only where a new match could begin.
  bool stopped = false;
  for (const auto& s : rq.stop) {
    if (s.empty()) continue;
    size_t from = before >= s.size() ? before - s.size() + 1 : 0;
    size_t at = sl.text.find(s, from);
    if (at != std::string::npos) {
      sl.text.resize(at);
      stopped = true;
    }
  }
  if (stopped) return FinishReason::kStop;
  if (emit && !sl.stream_stopped) {
    size_t hold = std::max(stop_holdback(sl.text, rq.stop), utf8_incomplete_tail(sl.text));
    size_t safe = sl.text.size() - hold;
    if (safe > sl.emitted) {
      if (!emit(sl.text.substr(sl.emitted, safe - sl.emitted))) {
        sl.stream_stopped = true;
        return FinishReason::kCancelled;
      }
      sl.emitted = safe;
    }
  }
  if (sl.n_gen >= rq.max_tokens || sl.n_past + 1 >= ctx_seq) return FinishReason::kLength;
  sl.next = tok;
  return std::nullopt;
}

size_t cached_common(const Slot& s, int group, const std::vector<Token>& prompt) {
  size_t k = 0;
  if (s.kv_group != group || prompt.empty()) return k;
  const size_t n = std::min(s.kv.size(), prompt.size() - 1);
  while (k < n && s.kv[k] == prompt[k]) ++k;
  return k;
}

CachedPrefix find_cached(const std::vector<Slot>& slots, const Slot& dst, int group, const std::vector<Token>& prompt) {
  CachedPrefix c;
  c.own = cached_common(dst, group, prompt);
  for (const Slot& s : slots)
    if (&s != &dst)
      if (size_t k = cached_common(s, group, prompt); k > c.best) c.best = k, c.src = &s;
  return c;
}

size_t take_cached(llama_memory_t mem, Slot& dst, int group, const CachedPrefix& c, size_t min_copy) {
  dst.kv_group = group;
  if (c.src && c.best >= c.own + min_copy) {
    llama_memory_seq_cp(mem, c.src->seq, dst.seq, -1, -1);
    if (llama_memory_seq_rm(mem, dst.seq, llama_pos(c.best), -1)) {
      dst.kv.assign(c.src->kv.begin(), c.src->kv.begin() + long(c.best));
      return c.best;
    }
  } else if (c.own > 0 && llama_memory_seq_rm(mem, dst.seq, llama_pos(c.own), -1)) {
    dst.kv.resize(c.own);
    return c.own;
  }
  llama_memory_seq_rm(mem, dst.seq, -1, -1);
  dst.kv.clear();
  return 0;
}

Lanes::Lanes(const std::vector<size_t>& order, int n_lanes) : lanes_(size_t(std::max(n_lanes, 1))), left_(order.size()) {
  const size_t n = lanes_.size();
  for (size_t l = 0, at = 0; l < n; ++l) {
    const size_t len = order.size() / n + (l < order.size() % n ? 1 : 0);
    lanes_[l].assign(order.begin() + long(at), order.begin() + long(at + len));
    at += len;
  }
}

size_t Lanes::take(int lane) {
  if (left_ == 0) fail("internal: no request waiting");
  auto& own = lanes_[size_t(lane) % lanes_.size()];
  if (own.empty()) {
    auto& longest = *std::max_element(lanes_.begin(), lanes_.end(),
                                      [](const auto& a, const auto& b) { return a.size() < b.size(); });
    const long keep = long(longest.size() / 2);
    own.assign(longest.begin() + keep, longest.end());
    longest.resize(size_t(keep));
  }
  const size_t r = own.front();
  own.pop_front();
  --left_;
  return r;
}

std::vector<size_t> Lanes::drain() {
  std::vector<size_t> all;
  for (auto& l : lanes_) all.insert(all.end(), l.begin(), l.end()), l.clear();
  left_ = 0;
  return all;
}

int32_t set_seq_adapter_slot(llama_context* ctx, llama_seq_id seq, int32_t slot, float scale) {
#ifdef LLAMA_ADAPTER_SLOTS
  return llama_set_seq_adapter_slot(ctx, seq, slot, scale);
#else
  (void)ctx, (void)seq, (void)slot, (void)scale;
  return -1;
#endif
}

}  // namespace cogumi::gen_detail
