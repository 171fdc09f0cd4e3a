// cogumi/eval: the sandbox that runs untrusted Python (benchmark solutions, HumanEval/MBPP tests).
//
// Owns process isolation, resource limits, the wall-clock kill and the mapping of how a run
// ended to an outcome. Each program is written to a fresh private directory and run by a fresh
// interpreter inside bubblewrap (bwrap). What the sandbox gives (checked on Debian 12, bwrap 0.8,
// kernel 6.x, running as root in a container):
//   - namespaces: user (uid/gid 65534 inside, nested user namespaces disabled), pid, net (only a
//     private loopback: no route out, the host's 127.0.0.1 is unreachable), ipc, uts, cgroup;
//   - files: the host root read-only (--ro-bind / /), fresh /dev and /proc, a private size-capped
//     tmpfs on /tmp whose /tmp/work holds a copy of the program and is the writable cwd;
//   - bwrap --die-with-parent --new-session; the caller's death kills the sandbox;
//   - rlimits: CPU, AS, FSIZE, CORE=0 set before bwrap is exec'd; NPROC set by a short Python
//     bootstrap inside the sandbox, so it counts only that sandbox's user namespace;
//   - the wall timeout SIGKILLs bwrap's process group; bwrap's init then dies and the kernel
//     kills every process in the pid namespace with it.
// RLIMIT_NPROC is never enforced for host uid 0, and a user namespace created by a root bwrap
// still runs as host uid 0. So when the caller is root, the forked child switches to host uid
// 65534 before exec'ing bwrap. That uid cannot traverse 0700 directories such as /root, where
// pyenv interpreters live, so the child first gives itself a private mount namespace that covers
// such a directory with a tmpfs and binds only the interpreter's prefix back into it (which also
// hides the rest of /root from the program). Not provided: seccomp filtering, cgroup memory or
// pid accounting (RLIMIT_AS is per process).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cogumi {

// A limit <= 0 is not applied (the timeout excepted).
struct SandboxLimits {
  double timeout_s = 10.0;   // wall clock; the whole process tree is killed after this
  int cpu_s = 10;            // RLIMIT_CPU (soft; the hard limit one second later kills)
  int64_t memory_mb = 1024;  // RLIMIT_AS, per process
  int max_procs = 32;        // processes/threads inside the sandbox (fork bombs die here)
  int64_t max_file_mb = 16;  // RLIMIT_FSIZE; the /tmp tmpfs holds max(64, 4x this) MiB in all
};

enum class SandboxOutcome { kPassed, kFailed, kTimeout, kCrashed, kSetupError };

// "passed", "failed", "timeout", "crashed", "setup_error".
const char* sandbox_outcome_name(SandboxOutcome o);

struct SandboxResult {
  SandboxOutcome outcome = SandboxOutcome::kSetupError;
  int exit_code = -1;  // when exited normally
  int signal = 0;      // when killed by a signal
  // Last ~4 KiB of each, invalid UTF-8 replaced by '?'. A setup error's reason is in stderr_tail.
  std::string stdout_tail, stderr_tail;
  double wall_s = 0.0;
};

struct SandboxOptions {
  SandboxLimits limits;
  std::string python = "python3";  // resolved once (PATH, pyenv shims) to the real interpreter
  // If bubblewrap cannot isolate, return kSetupError rather than run unconfined.
  bool require_isolation = true;
};

// Runs `program` (Python source, as main.py) in the sandbox described above. Exit 0 => kPassed,
// non-zero => kFailed, killed by our timeout => kTimeout, killed by a signal (SIGXCPU, SIGSEGV,
// SIGKILL) => kCrashed. bwrap reports a signal death of the program as exit code 128+signal, so
// under bwrap an exit code in 129..192 is read as that signal. The program never started (bwrap
// or interpreter could not set up) => kSetupError. Never throws for anything the program does.
// Unconfined fallback (require_isolation = false and no bwrap): same rlimits except NPROC,
// process-group kill, the private directory as cwd; no namespaces.
SandboxResult run_python_sandboxed(const std::string& program, const SandboxOptions& opts);

// Runs many programs with `workers` (>= 1, else Error) concurrent sandboxes; results in input
// order. on_done(i) is called from the calling thread or a worker after program i finishes, one
// call at a time; an exception from it stops the batch and is rethrown here.
std::vector<SandboxResult> run_python_batch(const std::vector<std::string>& programs,
                                            const SandboxOptions& opts, int workers,
                                            const std::function<void(size_t)>& on_done = {});

// True if bubblewrap can isolate a python3 program here (decided once per process by running
// one); otherwise false and *why says why (missing binary, user namespaces refused, ...).
bool sandbox_available(std::string* why = nullptr);

}  // namespace cogumi
