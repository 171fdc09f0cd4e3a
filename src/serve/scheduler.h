// cogumi/serve: the scheduler between HTTP threads and the one engine. Each request becomes a
// Job; one scheduler thread owns the Runtime.
//
// Continuous (the default): the thread runs Runtime::serve, and before every engine step it
// hands over the jobs that arrived since the last one, so a request that comes while others
// generate joins their batch at the next step, and each job is answered as soon as its own
// answers are done. Static (ServeOptions::static_batches, for comparisons): the thread takes
// every job waiting when the engine frees up and runs them as one Runtime::ask batch; a job
// arriving meanwhile waits for the whole batch. A batch that fails as a whole (a request the
// Runtime refuses: an unknown session) is re-run one job at a time, so one bad request fails alone.
//
// A job sees its routing decision, its streamed pieces and its answers through its own lock;
// setting its cancel flag (client gone, timeout) stops its generation where it is without
// touching the rest of the batch.
//
// Thread safety: submit() and waiting() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
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
  // Accurate answers before their vote: samples finished and their total, over all answers.
  int samples_done = 0, samples_total = 0;
  size_t n_decided = 0, n_done = 0;              // answers decided / finished (continuous)
};

class Scheduler {
 public:
  // max_batch: answers generating at once (continuous) or per Runtime batch (static), >= 1; more
  // wait. continuous: see above.
  Scheduler(Runtime& rt, size_t max_batch, bool continuous = true);
  ~Scheduler();  // finishes the batch in flight, fails the jobs still waiting
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  std::shared_ptr<Job> submit(std::vector<AskRequest> requests);
  size_t waiting() const;   // jobs queued, not yet running
  size_t running() const;   // jobs now generating
  // Static: Runtime batches run. Continuous: busy periods (the engine going from idle to work).
  int64_t batches() const { return batches_.load(); }
  // Jobs generating together, most so far (how much concurrent requests shared the engine).
  size_t largest_batch() const { return largest_.load(); }
  // Jobs whose generation was stopped before its end (client gone, timeout).
  int64_t cancelled() const { return cancelled_.load(); }

 private:
  Runtime& rt_;
  size_t max_batch_;
  bool continuous_;
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
  void serve_loop();  // continuous: Runtime::serve fed from queue_
  // Continuous: the answers given to the Runtime, by id -> (job, answer index), and the engine
  // sequences each takes (accurate mode: its samples). Jobs are handed over only while those fit
  // the engine's slots, so the ones that would wait for a slot wait here, counted by waiting()
  // (the queue-depth metric), and a job that must wait for another's end still waits in order.
  std::map<uint64_t, std::pair<std::shared_ptr<Job>, size_t>> owner_;
  std::map<uint64_t, size_t> seqs_of_;
  size_t seqs_in_flight_ = 0;
  uint64_t next_id_ = 0;
  bool take_jobs(std::vector<AskJob>& out, bool idle);
  void job_done(uint64_t id, AskResponse answer, const std::string& error);
};

}  // namespace cogumi::serve
