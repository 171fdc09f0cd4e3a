// cogumi/eval, internal to the sandbox: what it takes from the host. Owns the one memory limit
// for a whole sandbox (see sandbox.h for the three ways: cgroup v2, cgroup v1, the watchdog):
// finding a usable cgroup, the per-run cgroup's life (create, join, kill, remove) and the
// watchdog's measure of a process tree; the host directories a sandbox sees; and what to tell
// the user when bubblewrap is missing or refused.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cogumi::sandbox_detail {

enum class MemoryMode { kCgroup2, kCgroup1, kWatchdog };

struct MemoryControl {
  MemoryMode mode = MemoryMode::kWatchdog;
  std::string base;         // the cgroup directory run cgroups are made in (cgroup modes)
  std::string description;  // for sandbox_memory_control(): the mode and why not a cgroup
};

// Decided once per process: probes by making (and removing) one child cgroup.
const MemoryControl& memory_control();

// One run's cgroup. Made before fork; the child joins it by writing "0" to procs_path() before
// exec'ing bwrap, so every process of the sandbox is born inside it.
class RunCgroup {
 public:
  RunCgroup() = default;
  ~RunCgroup() { remove(); }
  RunCgroup(const RunCgroup&) = delete;
  RunCgroup& operator=(const RunCgroup&) = delete;

  // Makes the cgroup with `memory_bytes` for all of it (and pids.max `max_pids` on v2 when > 0).
  // Returns false with *error set when it cannot.
  bool create(const MemoryControl& mc, int64_t memory_bytes, int max_pids, std::string* error);
  const std::string& procs_path() const { return procs_; }
  // Processes the kernel killed for the memory limit so far.
  int64_t oom_kills() const;
  // Kills whatever is left in it and removes it (retries for up to ~2 s while processes exit).
  void remove();

 private:
  MemoryMode mode_ = MemoryMode::kWatchdog;
  std::string dir_, procs_;
};

// The watchdog's measure: RssAnon + RssShmem of `root` and all its descendants, in bytes
// (shared pages of forked children count once per process, which errs on the safe side).
int64_t tree_memory_bytes(pid_t root);

// bwrap arguments binding the host's system directories read-only (/usr; /bin, /sbin, /lib*
// as the links or directories they are) and the few /etc files the loader and Python read.
const std::vector<std::string>& system_bind_args();

// Of the interpreter's directories, those the system binds do not cover, outermost only, both as
// named and as resolved (the sandbox runs the interpreter by the name Python reported).
std::vector<std::string> outside_system_dirs(const std::vector<std::string>& needed);

// The cause and the fix, for a bwrap that is not there or that could not start a program
// (`outcome` and `err`: how the probe ended and bwrap's stderr).
std::string missing_bwrap_message(const std::string& name);
std::string explain_setup_failure(const std::string& outcome, const std::string& err);

}  // namespace cogumi::sandbox_detail
