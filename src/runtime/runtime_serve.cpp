// Runtime::serve: the continuous path a server takes. ask() decides, generates, votes and
// records a whole batch at once, so a request arriving during it waits for all of it; here each
// request is decided when it arrives, its samples join the engine's running batch at the next
// step (Generator::serve), and it is verified, voted, recorded and answered as soon as its own
// samples are done, whatever else is still generating. What follows a request's last sample
// (verification: code in the sandbox; the vote; the confidence; session memory) runs on a
// thread of its own, so a slow check never stalls the other sequences' decoding nor delays
// their answers; a fast answer
// under the calibrated threshold is re-asked on the escalation path from there, its new samples
// joining the running batch at the next step.
#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "runtime/fewshot.h"
#include "engine/generate.h"
#include "runtime/runtime.h"

namespace cogumi {

std::vector<std::string> answer_pieces(const std::string& text, const std::vector<TokenLogprob>& tokens) {
  std::vector<std::string> out;
  size_t at = 0, end = 0;
  auto continuation = [&](size_t i) { return i < text.size() && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80; };
  for (const TokenLogprob& t : tokens) {
    end = std::min(text.size(), end + t.text.size());
    if (end > at && !continuation(end)) {
      out.push_back(text.substr(at, end - at));
      at = end;
    }
  }
  if (at < text.size()) out.push_back(text.substr(at));
  return out;
}

namespace {

// Finished requests' work, each on its own thread: requests end independently (a fast answer
// never waits behind another's code running in the sandbox). The destructor waits for them all.
class Finisher {
 public:
  Finisher() = default;
  ~Finisher() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return pending_ == 0; });
    for (auto& [id, t] : threads_) t.join();
  }
  Finisher(const Finisher&) = delete;
  Finisher& operator=(const Finisher&) = delete;

  void post(std::function<void()> task) {
    std::lock_guard lk(mu_);
    reap();
    const uint64_t id = next_;
    decltype(threads_) node;  // allocated before the thread starts: nothing below throws once it runs
    node.emplace_back(id, std::thread());
    node.back().second = std::thread([this, id, task = std::move(task)] {
      try {
        task();  // a request's errors go to its on_done; this only keeps a callback's throw in here
      } catch (...) {
      }
      std::lock_guard done(mu_);
      --pending_;
      ++ended_;
      ended_ids_.push_back(id);
      cv_.notify_all();
    });
    // Counted only once the thread exists: a thread that could not start (std::system_error)
    // leaves nothing for the destructor to wait for.
    ++next_;
    ++pending_;
    threads_.splice(threads_.end(), node);
  }
  // Tasks posted and not yet ended.
  size_t pending() const {
    std::lock_guard lk(mu_);
    return pending_;
  }
  // Until a task ends (or none is pending), at most `d`.
  void wait_any(std::chrono::milliseconds d) {
    std::unique_lock lk(mu_);
    const uint64_t at = ended_;
    cv_.wait_for(lk, d, [&] { return ended_ != at || pending_ == 0; });
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<std::pair<uint64_t, std::thread>> threads_;
  std::vector<uint64_t> ended_ids_;  // threads done with their task, to join
  size_t pending_ = 0;
  uint64_t ended_ = 0, next_ = 0;

  void reap() {  // under mu_: an ended thread only has to return
    for (uint64_t id : ended_ids_)
      for (auto it = threads_.begin(); it != threads_.end(); ++it)
        if (it->first == id) {
          it->second.join();
          threads_.erase(it);
          break;
        }
    ended_ids_.clear();
  }
};

}  // namespace

struct Runtime::Serving {
  AskRequest asked;  // as handed over: what is recorded, and what a re-ask starts from
  AskRequest q;      // as generated (the session's history; escalated when re-asked)
  AskResponse r;
  Plan p;
  std::vector<GenResult> res;
  size_t left = 0;
  bool held = false;                 // pieces stream once the answer is decided (vote, judge)
  std::optional<AskResponse> first;  // a re-ask: the first answer
  std::chrono::steady_clock::time_point t0;
};

size_t Runtime::complete(const AskRequest& q, AskResponse& r, const Plan& p, const std::vector<GenResult>& res,
                         bool& unsure) const {
  const std::vector<Verdict> verdicts = verify({p}, res);
  const size_t win = conclude(0, p, res, verdicts, true, r);
  unsure = false;
  if (win == std::string::npos) return win;
  if (q.n_logprobs >= 0) r.logprobs = res[win].logprobs;
  unsure = judge_confidence(q, res[win], r);
  return win;
}

std::shared_ptr<const PreparedAsk> Runtime::prepare(const AskRequest& q) {
  auto out = std::make_shared<PreparedAsk>();
  out->request = q;
  if (out->request.history.empty()) out->request.history = session_history(q);
  out->decision = decide(out->request, 0);
  plan(out->request, out->decision, out->plan, out->gens);
  return out;
}

bool Runtime::cpu_to_spare() const {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  // few-shot retrieval with the model's own embeddings decodes on every core for each request prepared
  const bool embeds = fewshot_ && fewshot_->options().embedding == Embedding::model;
  return model_->offloaded() || (!embeds && unsigned(compute_threads(cfg_.threads)) < cores);
}

void Runtime::serve(const AskFeed& feed) {
  if (!feed.poll || !feed.on_done) fail("Runtime::serve: the feed needs poll and on_done");
  using ServingPtr = std::shared_ptr<Serving>;
  std::map<uint64_t, ServingPtr> live;                   // generating, by the caller's id
  std::map<uint64_t, std::pair<uint64_t, size_t>> gens;  // engine id -> (caller's id, sample)
  uint64_t next_gen = 0;
  bool closed = false;
  std::mutex again_mu;
  std::vector<std::pair<uint64_t, ServingPtr>> again;  // answers to re-ask, from the finishing threads

  // Decide (unless the caller did) and plan (unless the caller prepared it); the samples go to the engine. A
  // refusal answers at once.
  auto launch = [&](uint64_t id, ServingPtr s, const std::optional<AskResponse>& decided, const PreparedAsk* prepared,
                    std::vector<GenJob>& out) {
    std::vector<GenRequest> reqs;
    if (prepared) {
      s->q = prepared->request;
      s->r = prepared->decision;
      s->p = prepared->plan;
      reqs = prepared->gens;
    } else {
      try {
        if (s->q.history.empty()) s->q.history = session_history(s->q);
        s->r = decided ? *decided : decide(s->q, 0);
        plan(s->q, s->r, s->p, reqs);
      } catch (const std::exception& e) {  // this request alone: an escape would end the loop and every other
        return feed.on_done(id, AskResponse{}, e.what());
      }
    }
    s->held = s->p.n > 1 || may_reask(s->q, s->r);
    if (feed.on_decision && s->first) {  // a re-ask announces itself escalated
      AskResponse d = s->r;
      merge_escalated(*s->first, d);
      feed.on_decision(id, d);
    } else if (feed.on_decision) {
      feed.on_decision(id, s->r);
    }
    s->res.assign(reqs.size(), GenResult{});
    s->left = reqs.size();
    s->p.first = 0;
    for (size_t k = 0; k < reqs.size(); ++k) {
      gens[next_gen] = {id, k};
      out.push_back(GenJob{next_gen++, std::move(reqs[k]), s->q.cancel});
    }
    live[id] = std::move(s);
  };
  // On a finishing thread: checks, vote, judge; then a re-ask goes back to the engine, or the answer out.
  auto finish = [&](uint64_t id, const ServingPtr& s) {
    std::string error;
    size_t win = std::string::npos;
    try {
      bool unsure = false;
      win = complete(s->q, s->r, s->p, s->res, unsure);  // npos: the engine's refusal, in s->r.error
      if (unsure) {
        std::lock_guard lk(again_mu);
        again.emplace_back(id, s);
        return;
      }
      if (s->first) merge_escalated(*s->first, s->r);
      if (win != std::string::npos) record(s->asked, s->r);
    } catch (const std::exception& e) {
      error = e.what();
    }
    s->r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s->t0).count();
    if (win != std::string::npos && s->held && feed.on_piece)  // the chosen answer, token by token
      for (const std::string& piece : answer_pieces(s->r.text, s->res[win].logprobs))
        if (!feed.on_piece(id, piece)) break;
    feed.on_done(id, std::move(s->r), error);
  };
  Finisher finisher;  // before gf: it drains (and may call the feed) before the loop's state goes
  GenFeed gf;
  // Work may still come back from the finishing threads (read `pending` first: a re-ask is queued before
  // its task ends).
  auto finishing = [&] {
    const bool pending = finisher.pending() > 0;
    std::lock_guard lk(again_mu);
    return pending || !again.empty();
  };
  gf.poll = [&](std::vector<GenJob>& out, bool idle) {
    const bool busy = finishing();
    if (!closed) {
      std::vector<AskJob> jobs;
      closed = !feed.poll(jobs, idle && !busy);
      for (auto& j : jobs) {
        auto s = std::make_shared<Serving>();
        s->asked = j.request;
        s->q = std::move(j.request);
        s->t0 = std::chrono::steady_clock::now();
        launch(j.id, std::move(s), j.decision, j.prepared.get(), out);
      }
    }
    std::vector<std::pair<uint64_t, ServingPtr>> redo;
    {
      std::lock_guard lk(again_mu);
      redo.swap(again);
    }
    for (auto& [id, first] : redo) {  // the escalation path, as ask()'s escalate_unsure
      auto s = std::make_shared<Serving>();
      s->asked = first->asked;
      s->q = escalated_request(first->asked);
      s->t0 = first->t0;
      s->first = std::move(first->r);
      launch(id, std::move(s), std::nullopt, nullptr, out);
    }
    if (idle && busy && out.empty()) finisher.wait_any(std::chrono::milliseconds(10));
    return !closed || !live.empty() || finishing();
  };
  gf.on_piece = [&](uint64_t gid, const std::string& piece) {
    const auto [id, k] = gens.at(gid);
    const Serving& s = *live.at(id);
    if (s.q.cancel && s.q.cancel->load()) return false;
    if (!s.held && feed.on_piece) return feed.on_piece(id, piece);
    return true;  // held: streamed once decided
  };
  gf.on_done = [&](uint64_t gid, GenResult g) {
    const auto [id, k] = gens.at(gid);
    gens.erase(gid);
    ServingPtr& s = live.at(id);
    s->res[k] = std::move(g);
    --s->left;
    if (s->p.n > 1 && feed.on_progress) feed.on_progress(id, int(s->p.n - s->left), int(s->p.n));
    if (s->left > 0) return;
    ServingPtr done = std::move(s);
    live.erase(id);
    if (feed.on_generated) feed.on_generated(id);  // its sequences are free while it is checked
    finisher.post([&finish, id, done] { finish(id, done); });
  };
  gen_->serve(gf);
}

}  // namespace cogumi
