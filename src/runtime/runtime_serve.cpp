// Runtime::serve: the continuous path a server takes. ask() decides, generates, votes and
// records a whole batch at once, so a request arriving during it waits for all of it; here each
// request is decided when it arrives, its samples join the engine's running batch at the next
// step (Generator::serve), and it is verified, voted, recorded and answered as soon as its own
// samples are done, whatever else is still generating.
#include <chrono>
#include <map>

#include "core/error.h"
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

struct Runtime::Serving {
  AskRequest q;
  AskResponse r;
  Plan p;
  std::vector<GenResult> res;
  size_t left = 0;
  std::chrono::steady_clock::time_point t0;
};

size_t Runtime::complete(const AskRequest& q, AskResponse& r, const Plan& p, const std::vector<GenResult>& res) {
  const std::vector<Verdict> verdicts = verify({p}, res);
  const size_t win = conclude(0, p, res, verdicts, true, r);
  if (win == std::string::npos) return win;
  if (q.n_logprobs >= 0) r.logprobs = res[win].logprobs;
  (void)judge_confidence(q, res[win], r);  // a streamed answer is not re-asked (as in ask())
  record(q, r);
  return win;
}

void Runtime::serve(const AskFeed& feed) {
  if (!feed.poll || !feed.on_done) fail("Runtime::serve: the feed needs poll and on_done");
  std::map<uint64_t, Serving> live;                      // by the caller's id
  std::map<uint64_t, std::pair<uint64_t, size_t>> gens;  // engine id -> (caller's id, sample)
  uint64_t next_gen = 0;

  // Decide and plan a newcomer; its samples go to the engine. A refusal answers at once.
  auto take = [&](AskJob& job, std::vector<GenJob>& out) {
    Serving s;
    s.q = std::move(job.request);
    s.t0 = std::chrono::steady_clock::now();
    std::vector<GenRequest> reqs;
    try {
      if (s.q.history.empty()) s.q.history = session_history(s.q);
      s.r = decide(s.q, 0);
      plan(s.q, s.r, s.p, reqs);
    } catch (const Error& e) {
      return feed.on_done(job.id, AskResponse{}, e.what());
    }
    if (feed.on_decision) feed.on_decision(job.id, s.r);
    s.res.resize(reqs.size());
    s.left = reqs.size();
    s.p.first = 0;
    for (size_t k = 0; k < reqs.size(); ++k) {
      gens[next_gen] = {job.id, k};
      out.push_back(GenJob{next_gen++, std::move(reqs[k]), s.q.cancel});
    }
    live[job.id] = std::move(s);
  };
  GenFeed gf;
  gf.poll = [&](std::vector<GenJob>& out, bool idle) {
    std::vector<AskJob> jobs;
    const bool open = feed.poll(jobs, idle);
    for (auto& j : jobs) take(j, out);
    return open;
  };
  gf.on_piece = [&](uint64_t gid, const std::string& piece) {
    const auto [id, k] = gens.at(gid);
    const Serving& s = live.at(id);
    if (s.q.cancel && s.q.cancel->load()) return false;
    if (s.p.n == 1 && feed.on_piece) return feed.on_piece(id, piece);
    return true;  // accurate: streamed once the vote decides
  };
  gf.on_done = [&](uint64_t gid, GenResult g) {
    const auto [id, k] = gens.at(gid);
    gens.erase(gid);
    Serving& s = live.at(id);
    s.res[k] = std::move(g);
    --s.left;
    if (s.p.n > 1 && feed.on_progress) feed.on_progress(id, int(s.p.n - s.left), int(s.p.n));
    if (s.left > 0) return;
    std::string error;
    size_t win = std::string::npos;
    try {
      win = complete(s.q, s.r, s.p, s.res);  // npos: the engine's refusal, in s.r.error
    } catch (const Error& e) {
      error = e.what();
    }
    s.r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - s.t0).count();
    if (win != std::string::npos && s.p.n > 1 && feed.on_piece)  // accurate: the chosen answer, token by token
      for (const std::string& piece : answer_pieces(s.r.text, s.res[win].logprobs))
        if (!feed.on_piece(id, piece)) break;
    AskResponse r = std::move(s.r);
    live.erase(id);
    feed.on_done(id, std::move(r), error);
  };
  gen_->serve(gf);
}

}  // namespace cogumi
