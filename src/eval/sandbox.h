// cogumi/eval: the sandbox that runs untrusted Python (benchmark solutions, HumanEval/MBPP tests).
//
// Owns process isolation, resource limits, the wall-clock kill and the mapping of how a run
// ended to an outcome. Each program is written to a fresh private directory and run by a fresh
// interpreter inside bubblewrap (bwrap). What the sandbox gives (checked on Debian 12, bwrap 0.8,
// kernel 6.x, as root in a container and as an unprivileged user):
//   - namespaces: user (uid/gid 65534 inside, never 0; nested user namespaces disabled), pid, net
//     (only a private loopback: no route out, the host's 127.0.0.1 and abstract Unix sockets are
//     unreachable), ipc, uts, cgroup;
//   - files: nothing of the host but what the interpreter needs, read-only: /usr, the /bin /sbin
//     /lib* links or directories, the interpreter's prefix (sys.prefix, sys.base_prefix, the
//     executable's directory) and a few /etc files (ld.so cache and config, localtime,
//     alternatives, python3.*). The root is an empty read-only tmpfs, so the caller's home, the
//     working tree, /run (D-Bus, docker.sock and other host Unix sockets), /var and /tmp are not
//     there. Fresh /dev and /proc; /dev/shm and /tmp are private tmpfs of fixed size; /tmp/work
//     holds a copy of the program and is the writable cwd;
//   - bwrap --die-with-parent --new-session; the caller's death kills the sandbox;
//   - rlimits: CPU, AS (per process, as a cap on any one allocation), FSIZE, CORE=0 set before
//     bwrap is exec'd; NPROC set by a short Python bootstrap inside the sandbox, so it counts only
//     that sandbox's user namespace;
//   - one memory limit for the whole sandbox (all its processes, and with cgroups also its tmpfs
//     pages), by the first of these that works here (sandbox_memory_control() says which):
//       cgroup v2: a child cgroup per run with memory.max, memory.swap.max=0 and pids.max, under
//         our own cgroup when it has the memory controller delegated (when we are alone in it, we
//         first move into a leaf "cogumi-main" so the controllers can be enabled for siblings);
//       cgroup v1: a child of our memory cgroup with memory.limit_in_bytes (and memsw) when that
//         hierarchy is writable (root in a container on a cgroup v1 or hybrid host);
//       fallback, a watchdog: the caller polls the sandbox's process tree every 20 ms and kills the
//         whole sandbox once the sum of its anonymous and shared resident memory (RssAnon +
//         RssShmem) passes the limit. Each process is still capped by RLIMIT_AS and the count by
//         RLIMIT_NPROC, so the worst case is the limit plus what can be touched in one poll, plus
//         the /tmp and /dev/shm tmpfs (sized, not counted).
//     Either way the kernel or the watchdog kills: a program over the limit ends kCrashed (or its
//     child is killed), and SandboxResult::memory_exceeded says so;
//     Cost: a cgroup v1 run took ~75 ms against ~60 ms without (print(1), 2 cores); moving a task
//     into a cgroup and making one each wait for RCU grace periods;
//   - the wall timeout SIGKILLs bwrap's process group; bwrap's init then dies and the kernel
//     kills every process in the pid namespace with it.
// RLIMIT_NPROC is never enforced for host uid 0, and a user namespace created by a root bwrap
// still runs as host uid 0. So when the caller is root, the forked child switches to host uid
// 65534 before exec'ing bwrap. That uid cannot traverse 0700 directories such as /root, where
// pyenv interpreters live, so the child first gives itself a private mount namespace that covers
// such a directory with a tmpfs and binds only the interpreter's prefix back into it. Not
// provided: seccomp filtering.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cogumi {

// A limit <= 0 is not applied (the timeout excepted).
struct SandboxLimits {
  double timeout_s = 10.0;   // wall clock; the whole process tree is killed after this
  int cpu_s = 10;            // RLIMIT_CPU (soft; the hard limit one second later kills)
  int64_t memory_mb = 1024;  // the whole sandbox (see above); also RLIMIT_AS of each process
  int max_procs = 32;        // processes/threads inside the sandbox (fork bombs die here)
  int64_t max_file_mb = 16;  // RLIMIT_FSIZE; the /tmp tmpfs holds max(64, 4x this) MiB in all
  int64_t shm_mb = 64;       // size of the private /dev/shm tmpfs (<= 0: 1 MiB)
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
  bool memory_exceeded = false;  // the whole-sandbox memory limit killed a process (or all)
};

// A cap on the sandboxes running at once, shared by every run given it (SandboxOptions::slots):
// a server checks each finished request on a thread of its own, each with its own batch, so the
// cap is what keeps many requests finishing together from starting cores x requests sandboxes.
// It caps sandboxes, not threads: a batch's workers wait for a slot (outside the sandbox's own
// timeout), so checks queue behind each other rather than run all at once.
class SandboxSlots {
 public:
  explicit SandboxSlots(int n);  // n >= 1, else Error
  void acquire();
  void release();
  int capacity() const { return n_; }
  int peak() const;  // the most held at once so far
 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int n_ = 1, held_ = 0, peak_ = 0;
};

struct SandboxOptions {
  SandboxLimits limits;
  std::shared_ptr<SandboxSlots> slots;  // optional: each run holds one of these while its sandbox runs
  std::string python = "python3";  // resolved once (PATH, pyenv shims) to the real interpreter
  std::string bwrap = "bwrap";     // bubblewrap: on PATH, else /usr/bin/bwrap; or a path
  // If bubblewrap cannot isolate, return kSetupError rather than run unconfined.
  bool require_isolation = true;

  // Throws Error naming the field: timeout_s must be positive and finite, python and bwrap set.
  void validate() const;
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
// one); otherwise false and *why names the cause and the fix: bubblewrap not installed, user
// namespaces refused (Ubuntu 24.04's AppArmor default, kernel.unprivileged_userns_clone=0,
// user.max_user_namespaces=0, a container's seccomp profile), the interpreter missing.
bool sandbox_available(std::string* why = nullptr);
// The same for opts.python and opts.bwrap.
bool sandbox_available(const SandboxOptions& opts, std::string* why);

// What besides the program and the limits decides a run's outcome here: the interpreter (resolved
// path, size, modification time), the bubblewrap binary (or "unconfined") and the memory control;
// for ExecCache keys.
std::string sandbox_identity(const SandboxOptions& opts);

// How the whole-sandbox memory limit is enforced here, decided once per process, e.g.
// "cgroup v1 (/sys/fs/cgroup/memory/...)" or "watchdog (no cgroup: ...)"; for logs and reports.
std::string sandbox_memory_control();

}  // namespace cogumi
