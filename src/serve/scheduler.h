// cogumi/serve: the batch scheduler. The Runtime answers one batch at a time; HTTP requests
// arrive on many threads. Each request becomes a Job; one scheduler thread takes every job
// waiting when the engine frees up and runs them all as one Runtime::ask batch (never one
// prompt at a time while others wait). A job sees its routing decision, its streamed pieces and
// its answers through its own lock; setting its cancel flag (client gone, timeout) stops its
// generation where it is without touching the rest of the batch.
//
// A batch that fails as a whole (a request the Runtime refuses: an unknown session) is re-run
// one job at a time, so one bad request fails alone.
//
// Thread safety: submit() and waiting() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "runtime/runtime.h"

namespace cogumi::serve {

struct Job {
  std::vector<AskRequest> requests;  // n answers of one HTTP request
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point submitted, started, first_piece;

  std::mutex mu;
  std::condition_variable cv;
  bool decided = false, done = false;
  std::vector<AskResponse> decisions;            // once decided: choice, mode, probabilities
  std::deque<std::pair<size_t, std::string>> pieces;  // streamed text not yet taken: (answer, piece)
  std::vector<AskResponse> answers;              // once done (unless error)
  std::string error;                             // the Runtime's refusal of the whole job
};

class Scheduler {
 public:
  // max_batch: requests (answers) per Runtime batch, >= 1; more wait for the next batch.
  Scheduler(Runtime& rt, size_t max_batch);
  ~Scheduler();  // finishes the batch in flight, fails the jobs still waiting
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  std::shared_ptr<Job> submit(std::vector<AskRequest> requests);
  size_t waiting() const;   // jobs queued, not yet running
  size_t running() const;   // jobs in the batch now running
  int64_t batches() const { return batches_.load(); }
  // Jobs per batch, largest so far (how much concurrent requests shared the engine).
  size_t largest_batch() const { return largest_.load(); }
  // Jobs whose generation was stopped before its end (client gone, timeout).
  int64_t cancelled() const { return cancelled_.load(); }

 private:
  Runtime& rt_;
  size_t max_batch_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t running_ = 0;
  bool stop_ = false;
  std::atomic<int64_t> batches_{0};
  std::atomic<size_t> largest_{0};
  std::atomic<int64_t> cancelled_{0};
  std::thread thread_;

  void loop();
  void run_batch(const std::vector<std::shared_ptr<Job>>& jobs);
};

}  // namespace cogumi::serve
