// cogumi/pipeline: the stage runner. A plan is a list of stages in dependency order. Each stage
// has a name, a code version, the names of the stages it reads, and its settings (everything
// else its output depends on, input files by sha256). Its key is the sha256 of all of that and
// its dependencies' keys, so a key changes exactly when something upstream or in its own
// settings changes. Its outputs live in WORK/stages/NAME-KEY12/, finished when done.json is
// there (written last, atomically): a rerun reuses finished stages, an interrupted stage runs
// again in its directory (stages resume their own partial work: eval items, trainer checkpoints),
// and a changed setting makes new directories only for the stages it reaches. Old directories stay,
// so switching a setting back reuses them.
//
// Every start, reuse, finish and failure is a line of WORK/events.jsonl.
//
// With jobs > 1, stages whose inputs are finished run side by side, up to `jobs` at once, sharing
// the CPU threads: a stage started beside others gets its part of them (at least one), a stage
// started alone all that are free. A stage's outputs never depend on its thread count, so the
// keys do not hold it and a run with any jobs reuses another's stages.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/build_info.h"
#include "core/io.h"

namespace cogumi {

class Plan;
struct StageContext;

struct Stage {
  std::string name;     // "eval_base", "train.math"
  std::string version;  // bump when the stage's code changes what it writes
  std::vector<std::string> deps;
  json settings = json::object();
  std::function<json(const StageContext&)> run;  // returns the stage's result (kept in done.json)
  // Filled by Plan::add.
  std::string key;
  fs::path dir;
  // The stage follows StageContext::threads_live between its steps, so the runner hands it the threads that the
  // stages beside it leave free when they finish (a trainer: its steps give the same numbers on any count).
  bool grows = false;
};

struct StageContext {
  const Stage& stage;
  const Plan& plan;
  bool progress = true;
  const std::atomic<bool>* cancel = nullptr;  // set (Ctrl-C): stop, keeping partial work for the resume
  int threads = 0;  // CPU threads this stage may use (0: all, compute_threads())
  const std::atomic<int>* threads_live = nullptr;  // for a stage that grows: its threads from now on
  // The result (done.json "result") of a finished stage this one depends on.
  const json& result(const std::string& name) const;
  fs::path dir(const std::string& name) const;
};

class Plan {
 public:
  // `engine` names the llama.cpp build (core/build_info.h's engine_id()): part of every stage's key, since
  // every stage's numbers may depend on its kernels.
  explicit Plan(fs::path work_dir, std::string engine = std::string(engine_id()));
  ~Plan();
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  // Computes the stage's key and directory. Dependencies must have been added before.
  const Stage& add(Stage s);
  const Stage& at(const std::string& name) const;
  bool has(const std::string& name) const;
  const std::deque<Stage>& stages() const { return stages_; }
  const fs::path& work_dir() const { return work_dir_; }
  const std::string& engine() const { return engine_; }
  // A file's identity for keys: its sha256 (cached by path, size and mtime in WORK/hashes.json).
  // A missing file is recorded in missing() and gets "missing:PATH".
  std::string file_id(const fs::path& path);
  const std::vector<std::string>& missing() const { return missing_; }
  bool finished(const std::string& name) const;
  const json& result(const std::string& name) const;  // throws unless finished

 private:
  fs::path work_dir_;
  std::string engine_;
  std::deque<Stage> stages_;  // a deque: references from add() stay valid
  std::map<std::string, size_t> index_;
  std::vector<std::string> missing_;
  json hashes_ = json::object();
  bool hashes_dirty_ = false;
  mutable std::mutex results_mu_;  // stages running side by side read their inputs' results
  mutable std::map<std::string, json> results_;
};

struct RunOptions {
  std::string until;    // run the stages up to this one (a name, or a group: "train" = train.*)
  std::string only;     // run only these (their dependencies must be finished)
  bool dry_run = false; // print the plan and what would be reused; run nothing
  bool progress = true;
  const std::atomic<bool>* cancel = nullptr;  // set (Ctrl-C): the running stages stop and keep their work
  int jobs = 0;     // stages run at once (1..64; 0: the config's, else 1); a failure stops the others, which keep their work
  int threads = 0;  // CPU threads for all running stages together (0: compute_threads())
  void validate() const;  // throws Error naming the option
};

struct StageOutcome {
  std::string name, key, status;  // ran, reused, not selected, would run, would reuse
  double seconds = 0;
};

struct RunSummary {
  std::vector<StageOutcome> stages;
  int ran = 0, reused = 0;
  double seconds = 0;
  std::string plan_text;  // the plan table (what --dry-run prints)
};

// Runs the selected stages in order (with jobs > 1, each as soon as its inputs are finished and a
// job is free; the plan's order among those ready). Throws the first stage's Error (recorded in
// events.jsonl as stage_failed), leaving finished stages finished.
RunSummary run_plan(Plan& plan, const RunOptions& o);

}  // namespace cogumi
