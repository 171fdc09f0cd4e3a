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
#include <set>

#include "core/error.h"

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

RunSummary run_plan(Plan& plan, const RunOptions& o) {
  o.validate();
  const auto t0 = std::chrono::steady_clock::now();
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
  events.write({{"t", utc_now()}, {"event", "run_start"}, {"engine", plan.engine()}, {"stages", n_sel}, {"until", o.until}, {"only", o.only}});
  size_t k = 0;
  for (size_t i = 0; i < st.size(); ++i) {
    const Stage& s = st[i];
    if (!sel[i]) {
      sum.stages.push_back({s.name, s.key, "not selected", 0});
      continue;
    }
    ++k;
    const std::string tag = fmt::format("[pipeline {}/{}] {}", k, n_sel, s.name);
    if (plan.finished(s.name)) {
      (void)plan.result(s.name);  // checks done.json belongs to this key
      events.write({{"t", utc_now()}, {"event", "stage_reused"}, {"stage", s.name}, {"key", s.key}});
      if (o.progress) fmt::print(stderr, "{}: reused ({})\n", tag, s.dir.filename().string());
      sum.stages.push_back({s.name, s.key, "reused", 0});
      ++sum.reused;
      continue;
    }
    if (o.cancel && o.cancel->load()) fail("interrupted before stage '{}'; run again to continue", s.name);
    for (auto& d : s.deps)
      if (!plan.finished(d))
        fail("stage '{}' needs '{}', which has not finished: run without --only, or with --until {}", s.name, d, d);
    const bool resuming = fs::exists(s.dir);
    fs::create_directories(s.dir);
    write_file_atomic(s.dir / "stage.json",
                      json{{"name", s.name}, {"key", s.key}, {"version", s.version}, {"engine", plan.engine()},
                           {"deps", s.deps}, {"settings", s.settings}}.dump(2) + "\n");
    events.write({{"t", utc_now()}, {"event", resuming ? "stage_resume" : "stage_start"}, {"stage", s.name}, {"key", s.key}});
    if (o.progress)
      fmt::print(stderr, "{}: {} (overall {:.0f} s)\n", tag, resuming ? "resuming an interrupted run" : "running", since(t0));
    const auto ts = std::chrono::steady_clock::now();
    json result;
    try {
      StageContext ctx{s, plan, o.progress, o.cancel};
      result = s.run(ctx);
    } catch (const std::exception& e) {
      const bool stopped = o.cancel && o.cancel->load();
      events.write({{"t", utc_now()}, {"event", stopped ? "stage_interrupted" : "stage_failed"}, {"stage", s.name},
                    {"key", s.key}, {"error", e.what()}});
      throw;
    }
    const double secs = since(ts);
    write_file_atomic(s.dir / "done.json", json{{"name", s.name}, {"key", s.key}, {"version", s.version}, {"seconds", secs},
                                                {"finished", utc_now()}, {"result", result}}.dump(2) + "\n");
    events.write({{"t", utc_now()}, {"event", "stage_done"}, {"stage", s.name}, {"key", s.key}, {"seconds", secs}});
    if (o.progress) fmt::print(stderr, "{}: done in {:.1f} s\n", tag, secs);
    sum.stages.push_back({s.name, s.key, "ran", secs});
    ++sum.ran;
  }
  sum.seconds = since(t0);
  events.write({{"t", utc_now()}, {"event", "run_done"}, {"ran", sum.ran}, {"reused", sum.reused}, {"seconds", sum.seconds}});
  if (o.progress)
    fmt::print(stderr, "[pipeline] {} stages: {} ran, {} reused, {:.1f} s\n", n_sel, sum.ran, sum.reused, sum.seconds);
  return sum;
}

}  // namespace cogumi
