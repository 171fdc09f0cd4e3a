#include "serve/scheduler.h"

#include <algorithm>

#include "core/error.h"

namespace cogumi::serve {

using Clock = std::chrono::steady_clock;

Scheduler::Scheduler(Runtime& rt, size_t max_batch, bool continuous, bool prepare_ahead)
    : rt_(rt), max_batch_(std::max<size_t>(1, max_batch)), continuous_(continuous),
      prepare_ahead_(continuous && prepare_ahead) {
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
    j->shutdown = true;
    j->decided = j->done = true;
    j->cv.notify_all();
  }
}

void Scheduler::cut() {
  std::deque<std::shared_ptr<Job>> waiting;
  std::vector<std::shared_ptr<Job>> running;
  {
    std::lock_guard lk(mu_);
    cut_ = true;
    waiting.swap(queue_);
    running = live_;
  }
  cv_.notify_all();
  for (auto& j : waiting) {
    std::lock_guard lk(j->mu);
    j->error = "the server is shutting down";
    j->shutdown = j->decided = j->done = true;
    j->cv.notify_all();
  }
  for (auto& j : running) {  // each ends at the engine's next step, answered as cut
    {
      std::lock_guard lk(j->mu);
      j->shutdown = true;
    }
    j->cancel = true;
  }
}

std::shared_ptr<Job> Scheduler::submit(std::vector<AskRequest> requests) {
  auto job = std::make_shared<Job>();
  job->requests = std::move(requests);
  job->submitted = Clock::now();
  for (auto& q : job->requests) q.cancel = &job->cancel;
  auto shutting = [&] {
    std::lock_guard lk(mu_);
    return stop_ || cut_;
  };
  if (shutting()) throw ShuttingDown("the server is shutting down");
  if (prepare_ahead_) {
    for (const AskRequest& q : job->requests) job->prepared.push_back(rt_.prepare(q));
    prepared_ += int64_t(job->prepared.size());
  }
  {
    std::lock_guard lk(mu_);
    if (stop_ || cut_) throw ShuttingDown("the server is shutting down");
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

size_t Scheduler::sequences() const {
  std::lock_guard lk(mu_);
  return seqs_in_flight_;
}

size_t Scheduler::most_sequences() const {
  std::lock_guard lk(mu_);
  return most_seqs_;
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
      live_ = jobs;
    }
    // A job cancelled while it waited (client gone, timeout) does not run.
    std::erase_if(jobs, [this](const std::shared_ptr<Job>& j) {
      if (!j->cancel.load()) return false;
      std::lock_guard lk(j->mu);
      j->error = "cancelled before it ran";
      ++cancelled_;
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
    live_.clear();
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

namespace {

void answer_now(Job& job, const std::string& error, bool engine = false) {
  std::lock_guard lk(job.mu);
  job.error = error;
  job.engine_failed = engine;
  job.decided = job.done = true;
  job.cv.notify_all();
}

}  // namespace

// Under mu_. The front job's answers decided (where and how each runs; prepared ahead: when submitted)
// and its sequences counted, once per job.
bool Scheduler::ready_front() {
  std::shared_ptr<Job> job = queue_.front();
  if (job->cancel.load()) {  // cancelled while it waited (client gone, timeout): never runs
    queue_.pop_front();
    ++cancelled_;
    answer_now(*job, "cancelled before it ran");
    return false;
  }
  if (front_ == job) return true;
  std::vector<std::optional<AskResponse>> ds(job->requests.size());
  std::vector<size_t> each;
  size_t seqs = 0;
  try {
    for (size_t k = 0; k < job->requests.size(); ++k) {
      if (job->prepared.empty()) ds[k] = rt_.decide_request(job->requests[k]);
      each.push_back(rt_.sequences(ds[k] ? *ds[k] : job->prepared[k]->decision));
      seqs += each.back();
    }
  } catch (const std::exception& e) {  // an unknown session (or any failure deciding it): this job alone
    // fails. Letting it escape would end the engine loop, fail every job in flight, and meet the
    // same job at the front again.
    queue_.pop_front();
    answer_now(*job, e.what(), dynamic_cast<const Error*>(&e) == nullptr);  // not the request's fault: 500
    return false;
  }
  front_ = std::move(job);
  front_decisions_ = std::move(ds);
  front_answer_seqs_ = std::move(each);
  front_seqs_ = seqs;
  return true;
}

// Under mu_. Nothing running: any job runs (one that takes more sequences than the engine has
// runs alone). Else its answers within max_batch and its sequences within the free ones.
bool Scheduler::fits(const Job& job, size_t seqs) const {
  if (answers_.empty()) return true;
  const size_t slots = size_t(rt_.config().parallel);
  return answers_.size() + job.requests.size() <= max_batch_ && seqs_in_flight_ + seqs <= slots;
}

// Under mu_: the front job to the Runtime, with its decisions.
void Scheduler::admit_front(std::vector<AskJob>& out) {
  std::shared_ptr<Job> job = std::move(front_);
  queue_.pop_front();
  job->started = Clock::now();
  for (size_t k = 0; k < job->requests.size(); ++k) {
    const size_t seqs = front_answer_seqs_[k];
    answers_[next_id_] = Answer{job, k, seqs, false};
    seqs_in_flight_ += seqs;
    out.push_back(AskJob{next_id_++, job->requests[k], std::move(front_decisions_[k]),
                         job->prepared.empty() ? nullptr : job->prepared[k]});
  }
  most_seqs_ = std::max(most_seqs_, seqs_in_flight_);
  live_.push_back(job);
  ++running_;
}

// Continuous: before every engine step, the waiting jobs that fit the engine now, in order;
// while the engine has nothing to do, blocks until one does (or the scheduler stops).
bool Scheduler::take_jobs(std::vector<AskJob>& out, bool idle) {
  std::unique_lock lk(mu_);
  bool took = false;
  for (;;) {
    if (stop_) return false;
    if (!queue_.empty()) {
      if (!ready_front()) continue;
      if (fits(*front_, front_seqs_)) {
        admit_front(out);
        took = true;
        continue;
      }
    }
    if (took || !idle) break;
    cv_.wait(lk);  // a job arrives, one ends (its sequences free), or stop
  }
  if (took && idle) ++batches_;
  if (running_ > largest_.load()) largest_ = running_;
  return true;
}

std::shared_ptr<Job> Scheduler::job_of(uint64_t id, size_t* k) {
  std::lock_guard lk(mu_);
  auto it = answers_.find(id);
  if (it == answers_.end()) return nullptr;
  *k = it->second.k;
  return it->second.job;
}

void Scheduler::on_decision(uint64_t id, const AskResponse& d) {
  std::shared_ptr<Job> job;
  size_t k = 0;
  bool first = false;
  {
    std::lock_guard lk(mu_);
    auto it = answers_.find(id);
    if (it == answers_.end()) return;
    Answer& a = it->second;
    const size_t seqs = rt_.sequences(d);  // a re-ask on the escalation path may take more
    seqs_in_flight_ = seqs_in_flight_ - a.seqs + seqs;
    most_seqs_ = std::max(most_seqs_, seqs_in_flight_);
    a.seqs = seqs;
    first = !a.decided;
    a.decided = true;
    job = a.job;
    k = a.k;
  }
  std::lock_guard lk(job->mu);
  if (job->decisions.empty()) job->decisions.resize(job->requests.size());
  job->decisions[k] = d;
  if (first && ++job->n_decided == job->requests.size()) job->decided = true;
  job->cv.notify_all();
}

// An answer's samples are all generated: its engine sequences no longer count against the slots
// while its checks run (a slow sandboxed check used to hold them, so with one slot the next
// request waited for the check).
void Scheduler::on_generated(uint64_t id) {
  {
    std::lock_guard lk(mu_);
    auto it = answers_.find(id);
    if (it == answers_.end()) return;
    seqs_in_flight_ -= it->second.seqs;
    it->second.seqs = 0;
  }
  cv_.notify_all();
}

void Scheduler::job_done(uint64_t id, AskResponse answer, const std::string& error, bool engine) {
  std::shared_ptr<Job> job;
  size_t k = 0;
  {
    std::lock_guard lk(mu_);
    auto it = answers_.find(id);
    if (it == answers_.end()) return;
    job = it->second.job;
    k = it->second.k;
    seqs_in_flight_ -= it->second.seqs;
    answers_.erase(it);
    // The job's last answer leaves running() before the job is answered: a client that has its
    // answer never sees its job still counted (the queue test once took a finished job for the
    // next one).
    if (std::none_of(answers_.begin(), answers_.end(), [&](const auto& kv) { return kv.second.job == job; })) {
      --running_;
      std::erase(live_, job);
    }
  }
  cv_.notify_all();  // its sequences are free: a waiting job may fit now
  bool finished = false;
  {
    std::lock_guard lk(job->mu);
    if (!error.empty() && job->error.empty()) {
      job->error = error;
      job->engine_failed = engine;
    }
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
}

void Scheduler::serve_loop() {
  AskFeed feed;
  feed.poll = [this](std::vector<AskJob>& out, bool idle) { return take_jobs(out, idle); };
  feed.on_decision = [this](uint64_t id, const AskResponse& d) { on_decision(id, d); };
  feed.on_generated = [this](uint64_t id) { on_generated(id); };
  feed.on_piece = [this](uint64_t id, const std::string& piece) {
    size_t k = 0;
    std::shared_ptr<Job> job = job_of(id, &k);
    if (!job || job->cancel.load()) return false;
    std::lock_guard lk(job->mu);
    if (job->first_piece == Clock::time_point{}) job->first_piece = Clock::now();
    job->pieces.emplace_back(k, piece);
    job->cv.notify_all();
    return true;
  };
  feed.on_progress = [this](uint64_t id, int finished, int total) {
    size_t k = 0;
    std::shared_ptr<Job> job = job_of(id, &k);
    if (!job) return;
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
      for (;;) {
        uint64_t id = 0;
        {
          std::lock_guard lk(mu_);
          if (answers_.empty()) break;
          id = answers_.begin()->first;
        }
        job_done(id, AskResponse{}, e.what(), true);
      }
      std::lock_guard lk(mu_);
      if (stop_) return;
    }
  }
}

}  // namespace cogumi::serve
