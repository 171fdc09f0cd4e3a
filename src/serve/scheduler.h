// cogumi/serve: the scheduler between HTTP threads and the one engine. Each request becomes a
// Job; one scheduler thread owns the Runtime.
//
// Continuous (the default): the thread runs Runtime::serve, and before every engine step it
// hands over the jobs that arrived since the last one, so a request that comes while others
// generate joins their batch at the next step, and each job is answered as soon as its own
// answers are done. A job is handed over only when the engine sequences it takes (accurate
// mode: one per sample) fit the free ones; otherwise it waits, in order. A job that takes more
// sequences than the engine has runs alone. Static (ServeOptions::static_batches, for comparisons): the thread takes
// every job waiting when the engine frees up and runs them as one Runtime::ask batch; a job
// arriving meanwhile waits for the whole batch. A batch that fails as a whole (a request the
// Runtime refuses: an unknown session) is re-run one job at a time, so one bad request fails alone.
//
// A job sees its routing decision, its streamed pieces and its answers through its own lock;
// setting its cancel flag (client gone, timeout) stops its generation where it is without
// touching the rest of the batch.
//
// Server shutdown: cut() fails the jobs waiting and cancels the running ones, marking each
// `shutdown` (the API answers 503); submit() then throws ShuttingDown.
//
// Thread safety: every public method from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/error.h"
#include "runtime/runtime.h"

namespace cogumi::serve {

// submit() once the server is shutting down.
struct ShuttingDown : Error {
  using Error::Error;
};

struct Job {
  std::vector<AskRequest> requests;  // n answers of one HTTP request
  // Prepared ahead: each request decided and planned on the submitting thread (Runtime::prepare)
  std::vector<std::shared_ptr<const PreparedAsk>> prepared;
  std::atomic<bool> cancel{false};
  std::chrono::steady_clock::time_point submitted, started, first_piece;

  std::mutex mu;
  std::condition_variable cv;
  bool decided = false, done = false;
  std::vector<AskResponse> decisions;            // once decided: choice, mode, probabilities
  std::deque<std::pair<size_t, std::string>> pieces;  // streamed text not yet taken: (answer, piece)
  std::vector<AskResponse> answers;              // once done (unless error)
  std::string error;                             // the Runtime's refusal of the whole job
  bool shutdown = false;                         // cut (or never run) because the server stops
  bool engine_failed = false;                    // `error` is the engine's, not the request's
  // Accurate answers before their vote: samples finished and their total, over all answers.
  int samples_done = 0, samples_total = 0;
  size_t n_decided = 0, n_done = 0;              // answers decided / finished (continuous)
};

class Scheduler {
 public:
  // max_batch: answers generating at once (continuous) or per Runtime batch (static), >= 1; more
  // wait. continuous: see above.
  // prepare_ahead (continuous): requests are prepared in submit(), on the caller's thread (Runtime::prepare);
  // else the engine's thread decides and plans each as it admits it.
  Scheduler(Runtime& rt, size_t max_batch, bool continuous = true, bool prepare_ahead = false);
  ~Scheduler();  // finishes the batch in flight, fails the jobs still waiting
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Throws ShuttingDown once the scheduler stops or was cut. With prepare_ahead: prepares each request on
  // the calling thread first (Runtime::prepare: history, decision, the prompt rendered and tokenized), so
  // that work never holds the engine loop; a bad request (an unknown session) throws its Error from here.
  std::shared_ptr<Job> submit(std::vector<AskRequest> requests);
  size_t waiting() const;   // jobs queued, not yet running
  size_t running() const;   // jobs now generating
  // Continuous: engine sequences the running jobs take now, and the most so far (never over the
  // engine's slots, except for a job that alone takes more, or a re-ask on the escalation path).
  size_t sequences() const;
  size_t most_sequences() const;
  // Shutdown past the drain: fails the waiting jobs, cancels the running ones (each `shutdown`).
  void cut();
  // Static: Runtime batches run. Continuous: busy periods (the engine going from idle to work).
  int64_t batches() const { return batches_.load(); }
  // Jobs generating together, most so far (how much concurrent requests shared the engine).
  size_t largest_batch() const { return largest_.load(); }
  // Jobs stopped before their end (client gone, timeout): mid-generation, or still waiting (those
  // never run; each is counted when the engine loop takes it off the queue).
  int64_t cancelled() const { return cancelled_.load(); }
  // Requests prepared on the submitting threads (prepare_ahead) so far.
  int64_t prepared_ahead() const { return prepared_.load(); }

 private:
  Runtime& rt_;
  size_t max_batch_;
  bool continuous_, prepare_ahead_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  size_t running_ = 0;
  bool stop_ = false, cut_ = false;
  std::vector<std::shared_ptr<Job>> live_;  // started, not done (for cut())
  std::atomic<int64_t> batches_{0};
  std::atomic<size_t> largest_{0};
  std::atomic<int64_t> cancelled_{0};
  std::atomic<int64_t> prepared_{0};
  std::thread thread_;

  void loop();
  void run_batch(const std::vector<std::shared_ptr<Job>>& jobs);
  void serve_loop();  // continuous: Runtime::serve fed from queue_
  // Continuous: the answers given to the Runtime by id, and the engine sequences each takes
  // (accurate mode: its samples). Jobs are handed over only while those fit the engine's slots,
  // so the ones that would wait for a slot wait here, counted by waiting() (the queue-depth
  // metric), and a job that must wait for another's end still waits in order. Under mu_: the
  // Runtime calls back from its decode thread and its finishing worker.
  struct Answer {
    std::shared_ptr<Job> job;
    size_t k = 0;     // its index in the job
    size_t seqs = 1;  // engine sequences
    bool decided = false;
  };
  std::map<uint64_t, Answer> answers_;
  size_t seqs_in_flight_ = 0, most_seqs_ = 0;
  uint64_t next_id_ = 0;
  // The job at the queue's front, decided once unless it was prepared ahead (its answers' decisions),
  // and the engine sequences its answers take (each, and together).
  std::shared_ptr<Job> front_;
  std::vector<std::optional<AskResponse>> front_decisions_;
  std::vector<size_t> front_answer_seqs_;
  size_t front_seqs_ = 0;
  // Decides the front job (unless it was prepared ahead) and counts its sequences; false when it
  // failed (a bad request) or was cancelled while it waited, and left the queue answered.
  bool ready_front();
  bool fits(const Job& job, size_t seqs) const;
  void admit_front(std::vector<AskJob>& out);
  bool take_jobs(std::vector<AskJob>& out, bool idle);
  void job_done(uint64_t id, AskResponse answer, const std::string& error, bool engine = false);
  void on_decision(uint64_t id, const AskResponse& d);
  void on_generated(uint64_t id);
  std::shared_ptr<Job> job_of(uint64_t id, size_t* k);
};

}  // namespace cogumi::serve
