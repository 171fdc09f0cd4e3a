#include "serve/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace cogumi::serve {

using Clock = std::chrono::steady_clock;

Scheduler::Scheduler(Runtime& rt, size_t max_batch, bool continuous)
    : rt_(rt), max_batch_(std::max<size_t>(1, max_batch)), continuous_(continuous) {
  thread_ = std::thread([this] { continuous_ ? serve_loop() : loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
  for (auto& j : queue_) {
    std::lock_guard lk(j->mu);
    j->error = "the server is shutting down";
    j->decided = j->done = true;
    j->cv.notify_all();
  }
}

std::shared_ptr<Job> Scheduler::submit(std::vector<AskRequest> requests) {
  auto job = std::make_shared<Job>();
  job->requests = std::move(requests);
  job->submitted = Clock::now();
  for (auto& q : job->requests) q.cancel = &job->cancel;
  {
    std::lock_guard lk(mu_);
    if (stop_) fail("the server is shutting down");
    queue_.push_back(job);
  }
  cv_.notify_one();
  return job;
}

size_t Scheduler::waiting() const {
  std::lock_guard lk(mu_);
  return queue_.size();
}

size_t Scheduler::running() const {
  std::lock_guard lk(mu_);
  return running_;
}

void Scheduler::loop() {
  for (;;) {
    std::vector<std::shared_ptr<Job>> jobs;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      // Everything waiting, up to max_batch answers (a job is never split).
      size_t n = 0;
      while (!queue_.empty() && (jobs.empty() || n + queue_.front()->requests.size() <= max_batch_)) {
        n += queue_.front()->requests.size();
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      running_ = jobs.size();
    }
    // A job cancelled while it waited (client gone, timeout) does not run.
    std::erase_if(jobs, [](const std::shared_ptr<Job>& j) {
      if (!j->cancel.load()) return false;
      std::lock_guard lk(j->mu);
      j->error = "cancelled before it ran";
      j->decided = j->done = true;
      j->cv.notify_all();
      return true;
    });
    if (!jobs.empty()) {
      ++batches_;
      if (jobs.size() > largest_.load()) largest_ = jobs.size();
      run_batch(jobs);
    }
    std::lock_guard lk(mu_);
    running_ = 0;
  }
}

void Scheduler::run_batch(const std::vector<std::shared_ptr<Job>>& jobs) {
  std::vector<AskRequest> flat;
  std::vector<std::pair<Job*, size_t>> owner;  // flat index -> (job, answer index)
  for (auto& j : jobs) {
    j->started = Clock::now();
    for (size_t k = 0; k < j->requests.size(); ++k) {
      flat.push_back(j->requests[k]);
      owner.emplace_back(j.get(), k);
    }
  }
  AskStream stream;
  stream.errors_in_response = true;
  stream.on_decision = [&](size_t i, const AskResponse& d) {
    auto [job, k] = owner[i];
    std::lock_guard lk(job->mu);
    if (job->decisions.empty()) job->decisions.resize(job->requests.size());
    job->decisions[k] = d;
    if (k + 1 == job->requests.size()) {
      job->decided = true;
      job->cv.notify_all();
    }
  };
  stream.on_piece = [&](size_t i, const std::string& piece) {
    auto [job, k] = owner[i];
    if (job->cancel.load()) return false;
    std::lock_guard lk(job->mu);
    if (job->pieces.empty() && job->first_piece == Clock::time_point{}) job->first_piece = Clock::now();
    job->pieces.emplace_back(k, piece);
    job->cv.notify_all();
    return true;
  };
  try {
    std::vector<AskResponse> out = rt_.ask(flat, stream);
    for (size_t i = 0; i < out.size(); ++i) {
      auto [job, k] = owner[i];
      std::lock_guard lk(job->mu);
      if (job->answers.empty()) job->answers.resize(job->requests.size());
      job->answers[k] = std::move(out[i]);
    }
    for (auto& j : jobs) {
      std::lock_guard lk(j->mu);
      if (std::any_of(j->answers.begin(), j->answers.end(), [](auto& a) { return a.finish_reason == "cancelled"; }))
        ++cancelled_;
      j->decided = j->done = true;
      j->cv.notify_all();
    }
  } catch (const std::exception& e) {
    if (jobs.size() > 1) {  // find the job at fault: each alone
      for (auto& j : jobs) {
        {
          std::lock_guard lk(j->mu);
          j->decisions.clear();
          j->pieces.clear();
          j->decided = false;
        }
        run_batch({j});
      }
      return;
    }
    std::lock_guard lk(jobs[0]->mu);
    jobs[0]->error = e.what();
    jobs[0]->decided = jobs[0]->done = true;
    jobs[0]->cv.notify_all();
  }
}

// Continuous: before every engine step, the jobs that arrived since the last one (up to
// max_batch answers generating); blocks while the engine has nothing to do.
bool Scheduler::take_jobs(std::vector<AskJob>& out, bool idle) {
  std::unique_lock lk(mu_);
  if (idle) cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
  if (stop_) return false;
  size_t n = owner_.size();
  const size_t slots = size_t(rt_.config().parallel);
  bool took = false;
  while (!queue_.empty() &&
         (n == 0 || (n + queue_.front()->requests.size() <= max_batch_ && seqs_in_flight_ < slots))) {
    std::shared_ptr<Job> job = std::move(queue_.front());
    queue_.pop_front();
    if (job->cancel.load()) {  // cancelled while it waited (client gone, timeout): never runs
      std::lock_guard jl(job->mu);
      job->error = "cancelled before it ran";
      job->decided = job->done = true;
      job->cv.notify_all();
      continue;
    }
    job->started = Clock::now();
    for (size_t k = 0; k < job->requests.size(); ++k, ++n) {
      owner_[next_id_] = {job, k};
      seqs_of_[next_id_] = 1;  // until decided
      ++seqs_in_flight_;
      out.push_back(AskJob{next_id_++, job->requests[k]});
    }
    ++running_;
    took = true;
  }
  if (took && idle) ++batches_;
  if (running_ > largest_.load()) largest_ = running_;
  return true;
}

void Scheduler::job_done(uint64_t id, AskResponse answer, const std::string& error) {
  auto it = owner_.find(id);
  if (it == owner_.end()) return;
  auto [job, k] = it->second;
  owner_.erase(it);
  seqs_in_flight_ -= seqs_of_[id];
  seqs_of_.erase(id);
  bool finished = false;
  {
    std::lock_guard lk(job->mu);
    if (!error.empty() && job->error.empty()) job->error = error;
    if (job->answers.empty()) job->answers.resize(job->requests.size());
    job->answers[k] = std::move(answer);
    finished = ++job->n_done == job->requests.size();
    if (finished) {
      if (std::any_of(job->answers.begin(), job->answers.end(), [](auto& a) { return a.finish_reason == "cancelled"; }))
        ++cancelled_;
      job->decided = job->done = true;
      job->cv.notify_all();
    }
  }
  if (finished) {
    std::lock_guard lk(mu_);
    --running_;
  }
}

void Scheduler::serve_loop() {
  AskFeed feed;
  feed.poll = [this](std::vector<AskJob>& out, bool idle) { return take_jobs(out, idle); };
  feed.on_decision = [this](uint64_t id, const AskResponse& d) {
    auto& [job, k] = owner_.at(id);
    const size_t seqs = d.mode == "accurate" ? size_t(rt_.config().samples) : 1;
    seqs_in_flight_ += seqs - seqs_of_[id];
    seqs_of_[id] = seqs;
    std::lock_guard lk(job->mu);
    if (job->decisions.empty()) job->decisions.resize(job->requests.size());
    job->decisions[k] = d;
    if (++job->n_decided == job->requests.size()) {
      job->decided = true;
      job->cv.notify_all();
    }
  };
  feed.on_piece = [this](uint64_t id, const std::string& piece) {
    auto& [job, k] = owner_.at(id);
    if (job->cancel.load()) return false;
    std::lock_guard lk(job->mu);
    if (job->first_piece == Clock::time_point{}) job->first_piece = Clock::now();
    job->pieces.emplace_back(k, piece);
    job->cv.notify_all();
    return true;
  };
  feed.on_progress = [this](uint64_t id, int finished, int total) {
    auto& job = owner_.at(id).first;
    std::lock_guard lk(job->mu);
    if (finished == 1) job->samples_total += total;
    ++job->samples_done;
    job->cv.notify_all();
  };
  feed.on_done = [this](uint64_t id, AskResponse a, const std::string& error) { job_done(id, std::move(a), error); };
  for (;;) {
    try {
      rt_.serve(feed);
      return;  // the feed closed: stop_
    } catch (const std::exception& e) {  // the engine failed outside a request: fail those in flight
      while (!owner_.empty()) job_done(owner_.begin()->first, AskResponse{}, e.what());
      std::lock_guard lk(mu_);
      if (stop_) return;
    }
  }
}

}  // namespace cogumi::serve
