#include "serve/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace cogumi::serve {

using Clock = std::chrono::steady_clock;

Scheduler::Scheduler(Runtime& rt, size_t max_batch) : rt_(rt), max_batch_(std::max<size_t>(1, max_batch)) {
  thread_ = std::thread([this] { loop(); });
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

}  // namespace cogumi::serve
