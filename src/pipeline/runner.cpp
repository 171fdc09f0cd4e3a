#include "pipeline/runner.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <condition_variable>
#include <memory>
#include <optional>
#include <set>
#include <thread>

#include "core/error.h"
#include "core/progress.h"
#include "core/threads.h"
#include "engine/model.h"

namespace cogumi {

namespace {

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Holds WORK/run.lock (flock) for the length of a run: two runs in one work directory would
// write the same stage directories.
class WorkLock {
 public:
  explicit WorkLock(const fs::path& dir) {
    const fs::path f = dir / "run.lock";
    fd_ = ::open(f.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot open {}: {}", f.string(), std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      fail("another cogumi run is working in {} (it holds {}); wait for it to finish", dir.string(), f.string());
    }
  }
  ~WorkLock() { ::close(fd_); }
  WorkLock(const WorkLock&) = delete;
  WorkLock& operator=(const WorkLock&) = delete;

 private:
  int fd_ = -1;
};

// "train" selects train.math, train.code, ...; "train.math" selects itself.
bool selects(const std::string& pattern, const std::string& name) {
  return name == pattern || (name.size() > pattern.size() && name.compare(0, pattern.size(), pattern) == 0 &&
                             name[pattern.size()] == '.');
}

}  // namespace

// Absolute: stage results hold paths that other files (system.yaml) resolve from elsewhere.
Plan::Plan(fs::path work_dir, std::string engine)
    : work_dir_(fs::absolute(work_dir).lexically_normal()), engine_(std::move(engine)) {
  const fs::path f = work_dir_ / "hashes.json";
  if (fs::exists(f)) {
    json h = json::parse(read_file(f), nullptr, false);
    if (h.is_object()) hashes_ = std::move(h);
  }
}

Plan::~Plan() {
  if (!hashes_dirty_) return;
  try {
    fs::create_directories(work_dir_);
    write_file_atomic(work_dir_ / "hashes.json", hashes_.dump(1) + "\n");
  } catch (...) {  // a cache: losing it costs a rehash, nothing more
  }
}

std::string Plan::file_id(const fs::path& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {  // a benchmark folder (MMLU's CSVs, BBH's tasks): its files
    std::vector<fs::path> files;
    for (auto& e : fs::recursive_directory_iterator(path))
      if (e.is_regular_file()) files.push_back(e.path());
    std::sort(files.begin(), files.end());
    std::string all;
    for (auto& f : files) all += fs::relative(f, path).string() + " " + file_id(f) + "\n";
    return "dir:" + sha256_hex(all);
  }
  if (!fs::is_regular_file(path, ec)) {
    if (std::find(missing_.begin(), missing_.end(), path.string()) == missing_.end()) missing_.push_back(path.string());
    return "missing:" + path.string();
  }
  const std::string abs = fs::absolute(path).lexically_normal().string();
  const auto size = fs::file_size(path);
  const auto mtime = fs::last_write_time(path).time_since_epoch().count();
  if (hashes_.contains(abs)) {
    const json& h = hashes_[abs];
    if (h.value("size", uint64_t(0)) == size && h.value("mtime", int64_t(0)) == int64_t(mtime)) return h["sha256"];
  }
  const std::string sha = sha256_file(path);
  hashes_[abs] = {{"size", size}, {"mtime", int64_t(mtime)}, {"sha256", sha}};
  hashes_dirty_ = true;
  return sha;
}

const Stage& Plan::add(Stage s) {
  if (index_.count(s.name)) fail("pipeline: stage '{}' is planned twice", s.name);
  json material = {{"name", s.name},         {"version", s.version}, {"engine", engine_},
                   {"settings", s.settings}, {"deps", json::object()}};
  for (auto& d : s.deps) material["deps"][d] = at(d).key;
  s.key = sha256_hex(material.dump());
  s.dir = work_dir_ / "stages" / (s.name + "-" + s.key.substr(0, 12));
  index_[s.name] = stages_.size();
  stages_.push_back(std::move(s));
  return stages_.back();
}

const Stage& Plan::at(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail("pipeline: no stage named '{}'", name);
  return stages_[it->second];
}

bool Plan::has(const std::string& name) const { return index_.count(name) > 0; }

bool Plan::finished(const std::string& name) const { return fs::exists(at(name).dir / "done.json"); }

const json& Plan::result(const std::string& name) const {
  std::lock_guard lk(results_mu_);
  auto it = results_.find(name);
  if (it != results_.end()) return it->second;
  const Stage& s = at(name);
  if (!finished(name)) fail("pipeline: stage '{}' has not finished (no {})", name, (s.dir / "done.json").string());
  json done = json::parse(read_file(s.dir / "done.json"), nullptr, false);
  if (done.is_discarded() || done.value("key", "") != s.key)
    fail("pipeline: {} is damaged or belongs to another key; delete that directory to redo the stage",
         (s.dir / "done.json").string());
  return results_[name] = done["result"];
}

const json& StageContext::result(const std::string& name) const { return plan.result(name); }
fs::path StageContext::dir(const std::string& name) const { return plan.at(name).dir; }

void RunOptions::validate() const {
  if (!until.empty() && !only.empty()) fail("--until and --only cannot be combined");
  if (jobs < 0 || jobs > 64) fail("--jobs must be in 1..64, got {}", jobs);
  if (threads < 0 || threads > 1024) fail("threads must be in 0..1024, got {}", threads);
}

namespace {

std::string plan_table(const Plan& plan, const std::vector<bool>& selected) {
  std::string t = fmt::format("{:<3} {:<22} {:<12} {:<10} {}\n", "#", "stage", "key", "status", "directory");
  for (size_t i = 0; i < plan.stages().size(); ++i) {
    const Stage& s = plan.stages()[i];
    const bool done = plan.finished(s.name);
    const std::string status = !selected[i] ? (done ? "done" : "-") : done ? "reuse" : fs::exists(s.dir) ? "resume" : "run";
    t += fmt::format("{:<3} {:<22} {:<12} {:<10} {}\n", i + 1, s.name, s.key.substr(0, 12), status, s.dir.string());
  }
  return t;
}

std::vector<bool> select_stages(const Plan& plan, const RunOptions& o) {
  const auto& st = plan.stages();
  std::vector<bool> sel(st.size(), o.only.empty() && o.until.empty());
  const std::string& pat = o.only.empty() ? o.until : o.only;
  if (pat.empty()) return sel;
  size_t last = st.size();
  for (size_t i = 0; i < st.size(); ++i)
    if (selects(pat, st[i].name)) {
      if (!o.only.empty()) sel[i] = true;
      last = i;
    }
  if (last == st.size()) {
    std::string names;
    for (auto& s : st) names += (names.empty() ? "" : ", ") + s.name;
    fail("{} '{}': no such stage (stages: {})", o.only.empty() ? "--until" : "--only", pat, names);
  }
  if (o.only.empty())
    for (size_t i = 0; i <= last; ++i) sel[i] = true;
  return sel;
}

}  // namespace

namespace {

using Clock = std::chrono::steady_clock;

// Runs a plan's selected stages: up to `jobs` at once, each as soon as the stages it reads are
// finished. Only this object's thread writes events, done.json files and the pipeline's lines;
// each stage runs on a thread of its own and hands back its result or its exception.
class Scheduler {
 public:
  Scheduler(Plan& plan, const RunOptions& o, const std::vector<bool>& sel, JsonlWriter& events, Clock::time_point t0)
      : plan_(plan), o_(o), events_(events), t0_(t0), st_(plan.stages()), state_(st_.size()), outcome_(st_.size()), num_(st_.size()) {
    for (size_t i = 0; i < st_.size(); ++i) {
      state_[i] = sel[i] ? State::pending : State::skipped;
      outcome_[i] = {st_[i].name, st_[i].key, "not selected", 0};
      n_sel_ += sel[i];
    }
    free_threads_ = o.jobs > 1 ? compute_threads(o.threads) : o.threads;
  }

  // Joins what still runs when the scheduler itself failed (a full disk writing done.json): the stages stop,
  // keeping their work, before the error goes on.
  ~Scheduler() {
    stop_ = true;
    for (auto& [i, t] : workers_) t.join();
  }

  RunSummary run() {
    reuse_finished();
    check_inputs();
    while (true) {
      if (!stop_) {
        launch_ready();
        grow();
      }
      if (running_ == 0) break;
      for (auto& f : wait_finished()) complete(f);
    }
    if (error_) std::rethrow_exception(error_);
    for (size_t i = 0; i < st_.size(); ++i)
      if (state_[i] == State::pending) {
        if (o_.cancel && o_.cancel->load()) fail("interrupted before stage '{}'; run again to continue", st_[i].name);
        fail("pipeline: stage '{}' could not start (its inputs did not finish)", st_[i].name);
      }
    RunSummary sum;
    sum.stages = outcome_;
    for (auto& s : outcome_) sum.ran += s.status == "ran", sum.reused += s.status == "reused";
    return sum;
  }

 private:
  enum class State { skipped, pending, running, done };
  struct Finished {
    size_t i;
    json result;
    std::exception_ptr error;
    double seconds;
  };

  // The stages that finished since the last call (waits up to 0.1 s for one); Ctrl-C becomes the stages' stop.
  std::vector<Finished> wait_finished() {
    std::unique_lock lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return !finished_.empty(); });
    std::vector<Finished> done;
    done.swap(finished_);
    lk.unlock();
    if (o_.cancel && o_.cancel->load()) stop_ = true;
    return done;
  }

  // Finished stages are reused first, in the plan's order.
  void reuse_finished() {
    for (size_t i = 0; i < st_.size(); ++i) {
      const Stage& s = st_[i];
      if (state_[i] != State::pending || !plan_.finished(s.name)) continue;
      (void)plan_.result(s.name);  // checks done.json belongs to this key
      events_.write({{"t", utc_now()}, {"event", "stage_reused"}, {"stage", s.name}, {"key", s.key}});
      num_[i] = ++counter_;
      if (o_.progress) fmt::print(stderr, "{}: reused ({})\n", tag(i), s.dir.filename().string());
      outcome_[i].status = "reused";
      state_[i] = State::done;
    }
  }

  // Every input of a stage to run is finished or will run in this call (else nothing starts).
  void check_inputs() const {
    for (size_t i = 0; i < st_.size(); ++i) {
      if (state_[i] != State::pending) continue;
      for (auto& d : st_[i].deps)
        if (state_[index(d)] == State::skipped && !plan_.finished(d))
          fail("stage '{}' needs '{}', which has not finished: run without --only, or with --until {}", st_[i].name, d, d);
    }
  }

  size_t index(const std::string& name) const {
    for (size_t i = 0; i < st_.size(); ++i)
      if (st_[i].name == name) return i;
    fail("pipeline: no stage named '{}'", name);
  }

  bool ready(size_t i) const {
    if (state_[i] != State::pending) return false;
    for (auto& d : st_[i].deps)
      if (state_[index(d)] != State::done && !plan_.finished(d)) return false;
    return true;
  }

  // Starts ready stages in the plan's order while jobs and threads are free; those started together
  // share the free threads.
  void launch_ready() {
    std::vector<size_t> rd;
    for (size_t i = 0; i < st_.size(); ++i)
      if (ready(i)) rd.push_back(i);
    const size_t n = std::min(rd.size(), size_t(std::max(0, o_.jobs - running_)));
    for (size_t k = 0; k < n; ++k) {
      if (o_.cancel && o_.cancel->load()) {
        stop_ = true;
        if (!error_)
          error_ = std::make_exception_ptr(Error(fmt::format("interrupted before stage '{}'; run again to continue", st_[rd[k]].name)));
        return;
      }
      if (o_.jobs == 1) {
        start(rd[k], o_.threads);
        continue;
      }
      if (free_threads_ < 1) return;
      const int share = std::max(1, free_threads_ / int(n - k));
      free_threads_ -= share;
      start(rd[k], share);
    }
  }

  // Threads that no stage can start with go to the running stages that grow, the fewest-threaded first (the
  // pipeline's last training, alone, gets every core).
  void grow() {
    if (o_.jobs == 1 || free_threads_ < 1) return;
    if (running_ < o_.jobs)
      for (size_t i = 0; i < st_.size(); ++i)
        if (ready(i)) return;
    std::vector<size_t> g;
    for (auto& [i, t] : threads_)
      if (st_[i].grows && state_[i] == State::running) g.push_back(i);
    if (g.empty()) return;
    std::set<size_t> grown;
    while (free_threads_ > 0) {
      const size_t m = *std::min_element(g.begin(), g.end(), [&](size_t a, size_t b) { return threads_[a] < threads_[b]; });
      ++threads_[m];
      --free_threads_;
      grown.insert(m);
    }
    for (size_t i : grown) {
      live_[i]->store(threads_[i]);
      events_.write({{"t", utc_now()}, {"event", "stage_threads"}, {"stage", st_[i].name}, {"threads", threads_[i]}});
      if (o_.progress) fmt::print(stderr, "{}: now on {} threads (overall {:.0f} s)\n", tag(i), threads_[i], since(t0_));
    }
  }

  void start(size_t i, int threads) {
    const Stage& s = st_[i];
    const bool resuming = fs::exists(s.dir);
    fs::create_directories(s.dir);
    write_file_atomic(s.dir / "stage.json",
                      json{{"name", s.name}, {"key", s.key}, {"version", s.version}, {"engine", plan_.engine()},
                           {"deps", s.deps}, {"settings", s.settings}}.dump(2) + "\n");
    events_.write({{"t", utc_now()}, {"event", resuming ? "stage_resume" : "stage_start"}, {"stage", s.name}, {"key", s.key}});
    num_[i] = ++counter_;
    if (o_.progress)
      fmt::print(stderr, "{}: {}{} (overall {:.0f} s)\n", tag(i), resuming ? "resuming an interrupted run" : "running",
                 o_.jobs > 1 ? fmt::format(" on {} thread{}", threads, threads == 1 ? "" : "s") : "", since(t0_));
    state_[i] = State::running;
    threads_[i] = threads;
    live_[i] = std::make_unique<std::atomic<int>>(threads);
    ++running_;
    workers_[i] = std::thread([this, i, threads, live = s.grows && o_.jobs > 1 ? live_[i].get() : nullptr] {
      const Stage& s = st_[i];
      Finished f{i, json(), nullptr, 0};
      const auto ts = Clock::now();
      try {
        engine_init();  // this thread's denormal flushing, as a stage on the caller's thread had it
        std::optional<ProgressScope> scope;
        if (o_.jobs > 1) scope.emplace(s.name);
        StageContext ctx{s, plan_, o_.progress, &stop_, threads, live};
        f.result = s.run(ctx);
      } catch (...) {
        f.error = std::current_exception();
      }
      f.seconds = since(ts);
      std::lock_guard lk(mu_);
      finished_.push_back(std::move(f));
      cv_.notify_one();
    });
  }

  void complete(Finished& f) {
    workers_[f.i].join();
    workers_.erase(f.i);
    live_.erase(f.i);
    --running_;
    if (o_.jobs > 1) free_threads_ += threads_[f.i];
    threads_.erase(f.i);
    const Stage& s = st_[f.i];
    if (f.error) {
      std::string what = "unknown error";
      try {
        std::rethrow_exception(f.error);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      const bool stopped = stop_ || (o_.cancel && o_.cancel->load());  // stopped by Ctrl-C or another's failure
      events_.write({{"t", utc_now()}, {"event", stopped ? "stage_interrupted" : "stage_failed"}, {"stage", s.name},
                     {"key", s.key}, {"error", what}});
      if (!error_) error_ = f.error;
      stop_ = true;  // the other running stages stop and keep their work
      state_[f.i] = State::pending;
      return;
    }
    write_file_atomic(s.dir / "done.json", json{{"name", s.name}, {"key", s.key}, {"version", s.version}, {"seconds", f.seconds},
                                                {"finished", utc_now()}, {"result", f.result}}.dump(2) + "\n");
    events_.write({{"t", utc_now()}, {"event", "stage_done"}, {"stage", s.name}, {"key", s.key}, {"seconds", f.seconds}});
    if (o_.progress) fmt::print(stderr, "{}: done in {:.1f} s\n", tag(f.i), f.seconds);
    outcome_[f.i].status = "ran";
    outcome_[f.i].seconds = f.seconds;
    state_[f.i] = State::done;
  }

  std::string tag(size_t i) const { return fmt::format("[pipeline {}/{}] {}", num_[i], n_sel_, st_[i].name); }

  Plan& plan_;
  const RunOptions& o_;
  JsonlWriter& events_;
  Clock::time_point t0_;
  const std::deque<Stage>& st_;
  std::vector<State> state_;
  std::vector<StageOutcome> outcome_;
  std::vector<size_t> num_;  // each stage's place in the order stages were reused or started
  size_t n_sel_ = 0, counter_ = 0;
  int running_ = 0, free_threads_ = 0;
  std::map<size_t, int> threads_;
  std::map<size_t, std::thread> workers_;
  std::map<size_t, std::unique_ptr<std::atomic<int>>> live_;  // what a growing stage reads as its thread count
  std::atomic<bool> stop_{false};  // what the running stages see as their cancel flag
  std::exception_ptr error_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Finished> finished_;
};

}  // namespace

RunSummary run_plan(Plan& plan, const RunOptions& o) {
  o.validate();
  const auto t0 = Clock::now();
  const std::vector<bool> sel = select_stages(plan, o);
  RunSummary sum;
  sum.plan_text = plan_table(plan, sel);
  const auto& st = plan.stages();
  const size_t n_sel = size_t(std::count(sel.begin(), sel.end(), true));
  if (o.dry_run) {
    for (size_t i = 0; i < st.size(); ++i)
      sum.stages.push_back({st[i].name, st[i].key,
                            !sel[i] ? "not selected" : plan.finished(st[i].name) ? "would reuse" : "would run", 0});
    return sum;
  }
  if (!plan.missing().empty()) {
    std::string m;
    for (auto& f : plan.missing()) m += "\n  " + f;
    fail("pipeline: input files are missing:{}", m);
  }
  fs::create_directories(plan.work_dir());
  WorkLock lock(plan.work_dir());
  JsonlWriter events(plan.work_dir() / "events.jsonl", true);
  events.write({{"t", utc_now()}, {"event", "run_start"}, {"engine", plan.engine()}, {"stages", n_sel}, {"until", o.until},
                {"only", o.only}, {"jobs", std::max(1, o.jobs)}});
  RunOptions ro = o;
  ro.jobs = std::max(1, o.jobs);
  Scheduler sched(plan, ro, sel, events, t0);
  RunSummary ran = sched.run();
  ran.plan_text = std::move(sum.plan_text);
  ran.seconds = since(t0);
  events.write({{"t", utc_now()}, {"event", "run_done"}, {"ran", ran.ran}, {"reused", ran.reused}, {"seconds", ran.seconds}});
  if (o.progress)
    fmt::print(stderr, "[pipeline] {} stages: {} ran, {} reused, {:.1f} s\n", n_sel, ran.ran, ran.reused, ran.seconds);
  return ran;
}

}  // namespace cogumi
