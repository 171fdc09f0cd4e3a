#include "eval/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "eval/sandbox_host.h"

extern char** environ;

namespace cogumi {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using sandbox_detail::MemoryMode;
using sandbox_detail::missing_bwrap_message;
using sandbox_detail::outside_system_dirs;
using sandbox_detail::system_bind_args;

namespace {

constexpr size_t kTailBytes = 4096;
// Host uid the sandbox runs as when we are root; also its uid inside.
constexpr uid_t kSandboxUid = 65534;
constexpr int kBindFdBase = 100;  // child-side fds of the interpreter dirs to bind back
constexpr const char* kWorkDir = "/tmp/work";
constexpr const char* kSandboxPath = "/usr/local/bin:/usr/bin:/bin";
// Runs first inside the sandbox, as the sandbox user: sets RLIMIT_NPROC only now, after bwrap has
// made the user namespace, so the count covers this sandbox alone (set before bwrap, it would count
// every process of the host uid). Then tells the parent the program is starting (fd 3) and execs
// the real run, which keeps the limit.
constexpr const char* kBootstrap =
    "import os,resource,sys\n"
    "n=int(sys.argv[1])\n"
    "if n>0: resource.setrlimit(resource.RLIMIT_NPROC,(n,n))\n"
    "os.write(3,b'R'); os.close(3)\n"
    "os.execv(sys.executable,[sys.executable,'main.py'])\n";

// ---------------------------------------------------------------------------------------------
// Output capture

// Keeps the last kTailBytes of a stream without holding all of it (programs may print megabytes).
class TailBuffer {
 public:
  void append(const char* p, size_t n) {
    buf_.append(p, n);
    if (buf_.size() > 8 * kTailBytes) buf_.erase(0, buf_.size() - kTailBytes);
  }
  std::string str() const {
    std::string_view v = buf_;
    if (v.size() > kTailBytes) v = v.substr(v.size() - kTailBytes);
    return sanitize_utf8(v);
  }

 private:
  // Tails end up in JSON, which rejects invalid UTF-8; a cut can split a character and programs
  // may print raw bytes. Invalid bytes become '?'.
  static std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) {
      auto c = static_cast<unsigned char>(s[i]);
      size_t len = c < 0x80           ? 1
                   : (c >> 5) == 0x6  ? 2
                   : (c >> 4) == 0xE  ? 3
                   : (c >> 3) == 0x1E ? 4
                                      : 0;
      bool ok = len > 0 && i + len <= s.size() && !(len == 2 && c < 0xC2) && c <= 0xF4;
      for (size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
      if (ok && len > 2) {  // overlong forms, UTF-16 surrogates, beyond U+10FFFF
        auto c1 = static_cast<unsigned char>(s[i + 1]);
        ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) && !(c == 0xF0 && c1 < 0x90) &&
             !(c == 0xF4 && c1 >= 0x90);
      }
      if (ok) {
        out.append(s.substr(i, len));
        i += len;
      } else {
        out.push_back('?');
        ++i;
      }
    }
    return out;
  }
  std::string buf_;
};

// ---------------------------------------------------------------------------------------------
// Spawning

// A directory of the interpreter that the sandbox uid cannot reach (a 0700 ancestor such as /root):
// the child covers `hidden_root` with a tmpfs, recreates the path in it and binds `dir` back.
struct BindBack {
  std::string hidden_root;
  std::vector<std::string> mkdirs;  // below hidden_root, outermost first, ending with dir
  std::string dir;
};

// Everything the forked child needs, prepared before fork: between fork and exec the child of a
// multithreaded process may only make async-signal-safe calls, so no allocation happens there.
struct ExecPlan {
  std::string exe;  // absolute path for execve
  std::vector<std::string> argv, env;
  std::string cwd;                      // empty: keep
  bool drop_to_sandbox_uid = false;     // root only: see sandbox.h
  std::vector<std::string> tmpfs_dirs;  // with drop_to_sandbox_uid
  std::vector<BindBack> binds;          // with drop_to_sandbox_uid
  const SandboxLimits* limits = nullptr;
  int program_fd = -1;       // becomes fd 4 (bwrap --file 4)
  std::string cgroup_procs;  // non-empty: the child joins this cgroup first
  int64_t watch_memory = 0;  // > 0: the watchdog kills the tree above this many bytes
};

struct RawRun {
  std::string spawn_error;  // non-empty: nothing ran
  int status = 0;           // waitpid status
  bool timed_out = false;
  bool started = false;          // the bootstrap wrote its byte: the program itself began
  bool memory_exceeded = false;  // the watchdog killed it
  std::string out, err;
  double wall_s = 0.0;
};

// Async-signal-safe error exit for the child: stderr is already the capture pipe.
[[noreturn]] void child_fail(const char* what) {
  int e = errno;
  char num[16];
  int n = 0;
  do num[n++] = static_cast<char>('0' + e % 10), e /= 10;
  while (e > 0 && n < 15);
  const char* pre = "cogumi sandbox: ";
  [[maybe_unused]] ssize_t w = write(2, pre, strlen(pre));
  w = write(2, what, strlen(what));
  w = write(2, " failed, errno ", 15);
  while (n > 0) w = write(2, &num[--n], 1);
  w = write(2, "\n", 1);
  _exit(127);
}

void set_limit(int resource, rlim_t soft, rlim_t hard) {
  rlimit rl{soft, hard};
  if (setrlimit(resource, &rl) != 0) child_fail("setrlimit");
}

[[noreturn]] void exec_child(const ExecPlan& p, char* const* argv, char* const* envp,
                             const int (&stdio)[5], const std::vector<std::string>& bind_proc_paths,
                             pid_t parent) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  for (int s = 1; s < NSIG; ++s)
    if (s != SIGKILL && s != SIGSTOP) signal(s, SIG_DFL);  // ignored signals would survive exec
  setpgid(0, 0);

  // Move the sources above the targets first so that no dup2 overwrites a source not yet placed.
  int high[5];
  for (int i = 0; i < 5; ++i) high[i] = stdio[i] >= 0 ? fcntl(stdio[i], F_DUPFD, 150) : -1;
  for (int i = 0; i < 5; ++i)
    if (high[i] >= 0 && dup2(high[i], i) < 0) child_fail("dup2");
  // While still the caller's uid (cgroup files are ours), so bwrap and all it starts are inside.
  if (!p.cgroup_procs.empty()) {
    int fd = open(p.cgroup_procs.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0", 1) != 1) child_fail("joining the sandbox cgroup");
    close(fd);
  }

  if (p.drop_to_sandbox_uid) {
    if (unshare(CLONE_NEWNS) != 0) child_fail("unshare(CLONE_NEWNS)");
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
      child_fail("mount private /");
    // Opened in the new namespace (a bind source must belong to it) and before the tmpfs hides the
    // path; the fixed numbers match the /proc/self/fd paths built before fork.
    for (size_t i = 0; i < p.binds.size(); ++i) {
      int fd = open(p.binds[i].dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0 || dup2(fd, kBindFdBase + int(i)) < 0) child_fail("open interpreter dir");
    }
    for (const auto& d : p.tmpfs_dirs)
      if (mount("tmpfs", d.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") != 0)
        child_fail("mount tmpfs");
    for (size_t i = 0; i < p.binds.size(); ++i) {
      for (const auto& m : p.binds[i].mkdirs)
        if (mkdir(m.c_str(), 0755) != 0 && errno != EEXIST) child_fail("mkdir");
      if (mount(bind_proc_paths[i].c_str(), p.binds[i].dir.c_str(), nullptr, MS_BIND | MS_REC,
                nullptr) != 0)
        child_fail("bind interpreter dir");
    }
  }
  int first_free = stdio[4] >= 0 ? 5 : 4;
  if (close_range(first_free, ~0U, 0) != 0)
    for (int fd = first_free; fd < 1024; ++fd) close(fd);

  if (p.drop_to_sandbox_uid) {
    if (setgroups(0, nullptr) != 0) child_fail("setgroups");
    if (setresgid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) child_fail("setresgid");
    if (setresuid(kSandboxUid, kSandboxUid, kSandboxUid) != 0) child_fail("setresuid");
  }
  // After the uid change, which clears it. Catches our death between fork and bwrap's own setup.
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != parent) _exit(127);

  if (const SandboxLimits* l = p.limits) {
    if (l->cpu_s > 0) set_limit(RLIMIT_CPU, l->cpu_s, l->cpu_s + 1);
    if (l->memory_mb > 0)
      set_limit(RLIMIT_AS, rlim_t(l->memory_mb) << 20, rlim_t(l->memory_mb) << 20);
    if (l->max_file_mb > 0)
      set_limit(RLIMIT_FSIZE, rlim_t(l->max_file_mb) << 20, rlim_t(l->max_file_mb) << 20);
    set_limit(RLIMIT_CORE, 0, 0);
  }
  if (!p.cwd.empty() && chdir(p.cwd.c_str()) != 0) child_fail("chdir");
  execve(p.exe.c_str(), argv, envp);
  child_fail("execve");
}

// Reads whatever is ready on the open pipes (fd -1 = closed), waiting at most ms; an exit of the
// process behind `pidfd` (when >= 0) ends the wait too, so a run that closed its pipes just before
// exiting is not waited on for the rest of the poll. True when pidfd reported that exit.
bool pump(int (&fds)[3], TailBuffer* bufs[3], bool* started, int ms, int pidfd = -1) {
  pollfd pfd[4];
  int idx[3];
  nfds_t n = 0;
  for (int i = 0; i < 3; ++i)
    if (fds[i] >= 0) {
      pfd[n] = {fds[i], POLLIN, 0};
      idx[n++] = i;
    }
  const nfds_t n_pipes = n;
  if (pidfd >= 0) pfd[n++] = {pidfd, POLLIN, 0};
  if (poll(n ? pfd : nullptr, n, ms) <= 0) return false;
  char buf[1 << 16];
  for (nfds_t k = 0; k < n_pipes; ++k) {
    if (!pfd[k].revents) continue;
    int i = idx[k];
    for (;;) {
      ssize_t r = read(fds[i], buf, sizeof buf);
      if (r > 0) {
        if (bufs[i]) bufs[i]->append(buf, size_t(r));
        if (i == 2) *started = true;
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      close(fds[i]);  // EOF or error
      fds[i] = -1;
      break;
    }
  }
  return pidfd >= 0 && pfd[n_pipes].revents != 0;
}

// Forks, execs the plan, captures stdout/stderr tails and the start byte (fd 3), kills the whole
// process group at the deadline, and reaps.
RawRun spawn_and_wait(const ExecPlan& plan, double timeout_s) {
  RawRun r;
  int out[2] = {-1, -1}, err[2] = {-1, -1}, ready[2] = {-1, -1};
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || pipe2(ready, O_CLOEXEC)) {
    r.spawn_error = fmt::format("cannot create pipes: {}", std::strerror(errno));
    for (int fd : {devnull, out[0], out[1], err[0], err[1], ready[0], ready[1]})
      if (fd >= 0) close(fd);
    return r;
  }
  std::vector<std::string> bind_proc_paths;
  for (size_t i = 0; i < plan.binds.size(); ++i)
    bind_proc_paths.push_back(fmt::format("/proc/self/fd/{}", kBindFdBase + int(i)));
  std::vector<char*> argv, envp;
  for (const auto& a : plan.argv) argv.push_back(const_cast<char*>(a.c_str()));
  for (const auto& e : plan.env) envp.push_back(const_cast<char*>(e.c_str()));
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  const int stdio[5] = {devnull, out[1], err[1], ready[1], plan.program_fd};
  pid_t parent = getpid();
  auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) exec_child(plan, argv.data(), envp.data(), stdio, bind_proc_paths, parent);
  if (pid < 0) r.spawn_error = fmt::format("fork failed: {}", std::strerror(errno));
  for (int fd : {devnull, out[1], err[1], ready[1]}) close(fd);
  int fds[3] = {out[0], err[0], ready[0]};
  if (pid < 0) {
    for (int fd : fds) close(fd);
    return r;
  }
  setpgid(pid, pid);  // also done by the child; whichever runs first wins the race with kill(-pid)
  for (int fd : fds) fcntl(fd, F_SETFL, O_NONBLOCK);
  // Readable once the child exits (Linux 5.3+); without it the loop notices an exit within 20 ms.
#ifdef SYS_pidfd_open
  int pidfd = int(syscall(SYS_pidfd_open, pid, 0));
#else
  int pidfd = -1;
#endif

  TailBuffer out_tail, err_tail;
  TailBuffer* bufs[3] = {&out_tail, &err_tail, nullptr};
  auto deadline =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s));
  auto next_watch = t0;
  for (;;) {
    // WNOWAIT: the exited child stays a zombie, so its pid and process group cannot be reused
    // before the kill below.
    siginfo_t si{};
    if (waitid(P_PID, pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) break;
    auto now = Clock::now();
    if (now >= deadline) {
      r.timed_out = true;
      break;
    }
    // Only once the program runs: before exec the forked child still shows the caller's memory.
    if (plan.watch_memory > 0 && r.started && now >= next_watch) {
      next_watch = now + std::chrono::milliseconds(20);
      if (sandbox_detail::tree_memory_bytes(pid) > plan.watch_memory) {
        r.memory_exceeded = true;
        break;
      }
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    if (pump(fds, bufs, &r.started, int(std::min<int64_t>(left, 20)), pidfd)) {
      close(pidfd);  // it stays readable: once is enough (a later waitid sees the exit)
      pidfd = -1;
    }
  }
  if (pidfd >= 0) close(pidfd);
  // Under bwrap the group is bwrap itself; killing it tears down the pid namespace. Unconfined,
  // it also ends background processes the program left behind.
  kill(-pid, SIGKILL);
  if (r.timed_out || r.memory_exceeded) kill(pid, SIGKILL);
  auto grace = Clock::now() + std::chrono::seconds(2);
  while ((fds[0] >= 0 || fds[1] >= 0 || fds[2] >= 0) && Clock::now() < grace)
    pump(fds, bufs, &r.started, 20);
  for (int fd : fds)
    if (fd >= 0) close(fd);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  r.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  r.out = out_tail.str();
  r.err = err_tail.str();
  return r;
}

// ---------------------------------------------------------------------------------------------
// Interpreter and bwrap discovery

std::string find_in_path(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(ss, dir, ':');) {
    std::string cand = (dir.empty() ? "." : dir) + "/" + name;
    if (access(cand.c_str(), X_OK) == 0) return cand;
  }
  return "";
}

std::string find_bwrap(const std::string& name) {
  std::string p = find_in_path(name);
  if (p.empty() && name == "bwrap" && access("/usr/bin/bwrap", X_OK) == 0) p = "/usr/bin/bwrap";
  return p;
}

struct Interpreter {
  std::string exe;    // sys.executable: the real binary behind PATH lookups and pyenv shims
  std::string error;  // non-empty: unusable
  std::vector<std::string> tmpfs_dirs;
  std::vector<BindBack> binds;       // what the sandbox uid needs bound back (root only)
  std::vector<std::string> ro_dirs;  // its directories outside /usr and /lib*: bound read-only
};

bool is_under(const fs::path& p, const fs::path& root) {
  auto [a, b] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return a == root.end();
}

// For each directory the interpreter needs: the first ancestor others cannot traverse, if any.
void plan_bind_backs(const std::vector<std::string>& needed_raw, Interpreter* in) {
  std::vector<fs::path> needed;
  for (const auto& n : needed_raw) {
    std::error_code ec;
    fs::path p = fs::weakly_canonical(n, ec);
    if (!ec && !p.empty()) needed.push_back(p);
  }
  std::sort(needed.begin(), needed.end());
  needed.erase(std::unique(needed.begin(), needed.end()), needed.end());
  std::vector<fs::path> outer;  // drop directories inside another needed one: the bind covers them
  for (const auto& p : needed)
    if (std::none_of(outer.begin(), outer.end(), [&](const fs::path& o) { return is_under(p, o); }))
      outer.push_back(p);
  for (const auto& dir : outer) {
    fs::path cur = "/";
    std::optional<fs::path> hidden;
    BindBack b;
    for (const auto& comp : dir.relative_path()) {
      cur /= comp;
      if (hidden) {
        b.mkdirs.push_back(cur.string());
        continue;
      }
      if (cur == dir) break;
      struct stat st {};
      if (stat(cur.c_str(), &st) == 0 && !(st.st_mode & S_IXOTH)) hidden = cur;
    }
    if (!hidden) continue;
    b.hidden_root = hidden->string();
    b.dir = dir.string();
    if (std::find(in->tmpfs_dirs.begin(), in->tmpfs_dirs.end(), b.hidden_root) ==
        in->tmpfs_dirs.end())
      in->tmpfs_dirs.push_back(b.hidden_root);
    in->binds.push_back(b);
  }
}

// Asks the interpreter (trusted: the configured one, run unconfined with our environment) where it
// lives. Cached per name: it cannot change during a run.
const Interpreter& interpreter(const std::string& python) {
  static std::mutex mu;
  static std::map<std::string, Interpreter> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(python);
  if (it != cache.end()) return it->second;
  Interpreter& in = cache[python];
  ExecPlan plan;
  plan.exe = find_in_path(python);
  if (plan.exe.empty()) {
    in.error = fmt::format("python interpreter '{}' not found on PATH", python);
    return in;
  }
  plan.argv = {python, "-c",
               "import sys;print(sys.executable);print(sys.prefix);print(sys.base_prefix)"};
  for (char** e = environ; e && *e; ++e) plan.env.push_back(*e);
  RawRun r = spawn_and_wait(plan, 60.0);
  std::vector<std::string> lines;
  std::stringstream ss(r.out);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  if (!r.spawn_error.empty() || r.timed_out || !WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0 ||
      lines.size() < 3 || lines[0].empty()) {
    in.error =
        fmt::format("python interpreter '{}' does not run: {}{}", python, r.spawn_error, r.err);
    return in;
  }
  in.exe = lines[0];
  std::error_code ec;
  fs::path real = fs::canonical(in.exe, ec);
  std::vector<std::string> needed = {lines[1], lines[2], fs::path(in.exe).parent_path().string()};
  if (!ec) needed.push_back(real.parent_path().string());
  in.ro_dirs = outside_system_dirs(needed);
  if (geteuid() == 0) plan_bind_backs(needed, &in);
  return in;
}

// ---------------------------------------------------------------------------------------------
// One run

// Private host directory holding main.py; removed when the run ends.
class TempDir {
 public:
  TempDir() {
    std::error_code ec;
    fs::path base = fs::temp_directory_path(ec);
    if (ec) base = "/tmp";
    std::string tmpl = (base / "cogumi-sbx-XXXXXX").string();
    if (mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// PATH inside: the interpreter's own directory first, so a program that runs "python3" gets it.
std::string sandbox_path(const Interpreter& in) {
  return fs::path(in.exe).parent_path().string() + ":" + kSandboxPath;
}

std::vector<std::string> bwrap_args(const std::string& bwrap, const Interpreter& in,
                                    const SandboxLimits& l) {
  int64_t tmpfs_mb = std::max<int64_t>(64, 4 * l.max_file_mb);
  int64_t shm_mb = std::max<int64_t>(1, l.shm_mb);
  int nproc = l.max_procs > 0 ? l.max_procs + 1 : 0;  // +1: bwrap's init shares the namespace
  std::string uid = std::to_string(kSandboxUid);
  std::string work = kWorkDir;
  // clang-format off
  std::vector<std::string> a = {bwrap,
      "--unshare-user", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
      "--unshare-cgroup-try", "--disable-userns", "--uid", uid, "--gid", uid,
      "--hostname", "sandbox", "--die-with-parent", "--new-session"};
  a.insert(a.end(), system_bind_args().begin(), system_bind_args().end());
  for (const auto& d : in.ro_dirs) a.insert(a.end(), {"--ro-bind", d, d});
  a.insert(a.end(), {
      "--dev", "/dev", "--proc", "/proc",
      "--size", std::to_string(shm_mb << 20), "--tmpfs", "/dev/shm",
      "--size", std::to_string(tmpfs_mb << 20), "--tmpfs", "/tmp",
      "--dir", work, "--file", "4", work + "/main.py", "--chdir", work,
      "--remount-ro", "/",  // the root tmpfs: no writes outside /tmp and /dev/shm
      "--clearenv", "--setenv", "HOME", work, "--setenv", "TMPDIR", "/tmp",
      "--setenv", "PATH", sandbox_path(in), "--setenv", "LANG", "C.UTF-8",
      "--", in.exe, "-I", "-S", "-c", kBootstrap, std::to_string(nproc)});
  // clang-format on
  return a;
}

// Sets up the whole-sandbox memory limit of one run: its cgroup, or the watchdog.
bool limit_memory(const SandboxLimits& l, bool isolated, sandbox_detail::RunCgroup* cgroup,
                  ExecPlan* plan, std::string* error) {
  if (l.memory_mb <= 0) return true;
  int64_t bytes = l.memory_mb << 20;
  const auto& mc = sandbox_detail::memory_control();
  if (!isolated || mc.mode == MemoryMode::kWatchdog) {
    plan->watch_memory = bytes;
    return true;
  }
  // pids.max counts threads too, and bwrap's two processes besides the program's.
  if (!cgroup->create(mc, bytes, l.max_procs > 0 ? l.max_procs + 4 : 0, error)) return false;
  plan->cgroup_procs = cgroup->procs_path();
  return true;
}

// How the run ended, as an outcome.
SandboxResult to_result(RawRun& r, bool isolated, const SandboxLimits& l, int64_t oom_kills) {
  SandboxResult res;
  res.stdout_tail = std::move(r.out);
  res.stderr_tail = std::move(r.err);
  res.wall_s = r.wall_s;
  if (!r.spawn_error.empty()) {
    res.stderr_tail = r.spawn_error;
    return res;
  }
  if (r.memory_exceeded || oom_kills > 0) {
    res.memory_exceeded = true;
    res.stderr_tail += fmt::format(
        "\ncogumi sandbox: memory limit exceeded ({} MiB for the whole sandbox); {}\n", l.memory_mb,
        oom_kills > 0 ? fmt::format("the kernel killed {} process(es)", oom_kills)
                      : std::string("the watchdog killed the sandbox"));
  }
  if (r.memory_exceeded) {
    res.outcome = SandboxOutcome::kCrashed;
    res.signal = SIGKILL;
    return res;
  }
  if (r.timed_out) {
    res.outcome = SandboxOutcome::kTimeout;
    res.signal = SIGKILL;
    return res;
  }
  if (!r.started) return res;  // kSetupError: bwrap or the interpreter failed; stderr says why
  if (WIFSIGNALED(r.status)) {
    res.outcome = SandboxOutcome::kCrashed;
    res.signal = WTERMSIG(r.status);
    return res;
  }
  int code = WEXITSTATUS(r.status);
  if (isolated && code > 128 && code <= 128 + 64) {  // bwrap's report of a signal death
    res.outcome = SandboxOutcome::kCrashed;
    res.signal = code - 128;
    return res;
  }
  res.exit_code = code;
  res.outcome = code == 0 ? SandboxOutcome::kPassed : SandboxOutcome::kFailed;
  return res;
}

SandboxResult run_once(const std::string& program, const SandboxOptions& opts,
                       const Interpreter& in, const std::string& bwrap) {
  SandboxResult res;
  TempDir dir;
  if (dir.path().empty()) {
    res.stderr_tail = fmt::format("cannot create a temporary directory: {}", std::strerror(errno));
    return res;
  }
  fs::path main_py = dir.path() / "main.py";
  int fd = open(main_py.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  bool written = fd >= 0 && write(fd, program.data(), program.size()) == ssize_t(program.size());
  if (fd >= 0) close(fd);
  if (!written) {
    res.stderr_tail = fmt::format("cannot write '{}': {}", main_py.string(), std::strerror(errno));
    return res;
  }

  ExecPlan plan;
  plan.limits = &opts.limits;
  if (!bwrap.empty()) {
    plan.exe = bwrap;
    plan.argv = bwrap_args(bwrap, in, opts.limits);
    plan.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin"};
    plan.drop_to_sandbox_uid = geteuid() == 0;
    if (plan.drop_to_sandbox_uid) {
      plan.tmpfs_dirs = in.tmpfs_dirs;
      plan.binds = in.binds;
    }
    plan.program_fd = open(main_py.c_str(), O_RDONLY | O_CLOEXEC);  // bwrap copies it in (--file 4)
    if (plan.program_fd < 0) {
      res.stderr_tail = fmt::format("cannot open '{}': {}", main_py.string(), std::strerror(errno));
      return res;
    }
  } else {
    // Unconfined: RLIMIT_NPROC is left out (for root it is not enforced; for others it would count
    // every process of the user).
    plan.exe = in.exe;
    plan.argv = {in.exe, "-I", "-S", "-c", kBootstrap, "0"};
    plan.cwd = dir.path().string();
    plan.env = {"HOME=" + plan.cwd, "TMPDIR=" + plan.cwd, "PATH=" + sandbox_path(in),
                "LANG=C.UTF-8"};
  }
  sandbox_detail::RunCgroup cgroup;
  if (!limit_memory(opts.limits, !bwrap.empty(), &cgroup, &plan, &res.stderr_tail)) {
    if (plan.program_fd >= 0) close(plan.program_fd);
    return res;
  }
  RawRun r = spawn_and_wait(plan, std::max(opts.limits.timeout_s, 0.01));
  if (plan.program_fd >= 0) close(plan.program_fd);
  int64_t oom_kills = cgroup.oom_kills();
  cgroup.remove();
  return to_result(r, !bwrap.empty(), opts.limits, oom_kills);
}

// Whether bwrap isolates `python` here, decided once per interpreter and bwrap by running a
// program.
bool probe(const std::string& python, const std::string& bwrap_name, std::string* why) {
  static std::mutex mu;
  static std::map<std::string, std::pair<bool, std::string>> cache;
  std::lock_guard lock(mu);
  std::string key = python + '\n' + bwrap_name;
  auto it = cache.find(key);
  if (it == cache.end()) {
    std::pair<bool, std::string> v{false, ""};
    const Interpreter& in = interpreter(python);
    std::string bwrap = find_bwrap(bwrap_name);
    if (!in.error.empty()) {
      v.second = in.error;
    } else if (bwrap.empty()) {
      v.second = missing_bwrap_message(bwrap_name);
    } else {
      SandboxOptions o;
      o.limits.timeout_s = 30;
      SandboxResult r = run_once("import sys\nsys.exit(0)\n", o, in, bwrap);
      v.first = r.outcome == SandboxOutcome::kPassed;
      if (!v.first)
        v.second =
            sandbox_detail::explain_setup_failure(sandbox_outcome_name(r.outcome), r.stderr_tail);
    }
    it = cache.emplace(key, std::move(v)).first;
  }
  if (why) *why = it->second.second;
  return it->second.first;
}

}  // namespace

const char* sandbox_outcome_name(SandboxOutcome o) {
  switch (o) {
    case SandboxOutcome::kPassed:
      return "passed";
    case SandboxOutcome::kFailed:
      return "failed";
    case SandboxOutcome::kTimeout:
      return "timeout";
    case SandboxOutcome::kCrashed:
      return "crashed";
    case SandboxOutcome::kSetupError:
      return "setup_error";
  }
  return "setup_error";
}

SandboxSlots::SandboxSlots(int n) : n_(n) {
  if (n < 1 || n > 4096) fail("sandbox slots must be 1..4096, got {}", n);
}

void SandboxSlots::acquire() {
  std::unique_lock lk(mu_);
  cv_.wait(lk, [&] { return held_ < n_; });
  peak_ = std::max(peak_, ++held_);
}

void SandboxSlots::release() {
  {
    std::lock_guard lk(mu_);
    --held_;
  }
  cv_.notify_one();
}

int SandboxSlots::peak() const {
  std::lock_guard lk(mu_);
  return peak_;
}

namespace {
SandboxResult run_python_sandboxed_now(const std::string& program, const SandboxOptions& opts) {
  const Interpreter& in = interpreter(opts.python);
  if (!in.error.empty()) {
    SandboxResult res;
    res.stderr_tail = in.error;
    return res;
  }
  std::string bwrap = find_bwrap(opts.bwrap);
  if (!opts.require_isolation) {
    if (!probe(opts.python, opts.bwrap, nullptr)) bwrap.clear();  // run unconfined
  } else if (bwrap.empty()) {
    SandboxResult res;
    res.stderr_tail = missing_bwrap_message(opts.bwrap);
    return res;
  }
  return run_once(program, opts, in, bwrap);
}
}  // namespace

SandboxResult run_python_sandboxed(const std::string& program, const SandboxOptions& opts) {
  if (!opts.slots) return run_python_sandboxed_now(program, opts);
  struct Held {
    SandboxSlots& s;
    explicit Held(SandboxSlots& x) : s(x) { s.acquire(); }
    ~Held() { s.release(); }
  } held(*opts.slots);
  return run_python_sandboxed_now(program, opts);
}

std::string sandbox_identity(const SandboxOptions& opts) {
  const Interpreter& in = interpreter(opts.python);
  if (!in.error.empty()) return "python: " + in.error;
  std::string s = "python: " + in.exe;
  std::error_code ec;
  const fs::path real = fs::canonical(in.exe, ec);
  if (!ec) {
    std::error_code e1, e2;
    const auto size = fs::file_size(real, e1);
    const auto mtime = fs::last_write_time(real, e2).time_since_epoch().count();
    s += fmt::format(" ({}, {} bytes, mtime {})", real.string(), e1 ? 0 : size, e2 ? 0 : mtime);
  }
  std::string bwrap = find_bwrap(opts.bwrap);
  if (!opts.require_isolation && !probe(opts.python, opts.bwrap, nullptr)) bwrap.clear();
  // The whole command line bwrap gets (mounts, namespaces, the bootstrap), not only its path.
  s += "\nbwrap:";
  if (bwrap.empty()) s += " unconfined";
  for (const auto& a : bwrap.empty() ? std::vector<std::string>{} : bwrap_args(bwrap, in, opts.limits)) s += " " + a;
  s += fmt::format("\nroot: {}", geteuid() == 0);  // root drops to another uid with its own binds
  // The kind of control, not its cgroup's path (which names this process's cgroup).
  const MemoryMode m = sandbox_detail::memory_control().mode;
  s += fmt::format("\nmemory: {}",
                   m == MemoryMode::kCgroup2 ? "cgroup v2" : m == MemoryMode::kCgroup1 ? "cgroup v1" : "watchdog");
  return s;
}

bool sandbox_available(std::string* why) {
  return sandbox_available(SandboxOptions{}, why);
}

bool sandbox_available(const SandboxOptions& opts, std::string* why) {
  return probe(opts.python, opts.bwrap, why);
}

std::string sandbox_memory_control() {
  return sandbox_detail::memory_control().description;
}

void SandboxOptions::validate() const {
  if (!(limits.timeout_s > 0 && limits.timeout_s <= 86400))  // nanoseconds in an int64 beyond ~9.2e9 s
    fail("sandbox option limits.timeout_s must be in (0, 86400] seconds, got {}", limits.timeout_s);
  if (python.empty()) fail("sandbox option python must name an interpreter");
  if (bwrap.empty()) fail("sandbox option bwrap must name bubblewrap");
}

}  // namespace cogumi
