#include "eval/sandbox_host.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "core/error.h"

namespace cogumi::sandbox_detail {

namespace fs = std::filesystem;

namespace {

// Small kernel files (cgroup, /proc): read whole; false on any error.
bool read_small(const std::string& path, std::string* out) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  out->clear();
  char buf[4096];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
      out->append(buf, size_t(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    close(fd);
    return n == 0;
  }
}

// Writes `text` in one write(2), as cgroup files expect; errno is kept for the caller.
bool write_small(const std::string& path, const std::string& text) {
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, text.data(), text.size()) == ssize_t(text.size());
  int e = errno;
  close(fd);
  errno = e;
  return ok;
}

std::vector<std::string> words(const std::string& s, char sep = ' ') {
  std::vector<std::string> out;
  std::string w;
  for (char c : s + sep) {
    if (c == sep || c == '\n' || c == '\t') {
      if (!w.empty()) out.push_back(w);
      w.clear();
    } else {
      w.push_back(c);
    }
  }
  return out;
}

bool has_word(const std::string& s, const std::string& w, char sep = ' ') {
  for (const auto& x : words(s, sep))
    if (x == w) return true;
  return false;
}

// The value after `key` on its line of a "key value" file (memory.events, memory.oom_control).
int64_t keyed_value(const std::string& text, const std::string& key) {
  std::istringstream ss(text);
  for (std::string k; ss >> k;) {
    int64_t v = 0;
    if (!(ss >> v)) return 0;
    if (k == key) return v;
  }
  return 0;
}

// Our cgroup directory: the cgroup v2 one (the "0::" line of /proc/self/cgroup) or the cgroup v1
// memory one, through the matching mount in mountinfo (whose root may be a part of the tree).
std::string own_cgroup_dir(bool v2) {
  std::string cg, mi;
  if (!read_small("/proc/self/cgroup", &cg) || !read_small("/proc/self/mountinfo", &mi)) return "";
  std::string path;
  std::istringstream cs(cg);
  for (std::string line; std::getline(cs, line);) {
    auto a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string ctrl = line.substr(a + 1, b - a - 1);
    if (v2 ? (line.substr(0, a) == "0" && ctrl.empty()) : has_word(ctrl, "memory", ',')) {
      path = line.substr(b + 1);
      break;
    }
  }
  if (path.empty()) return "";
  std::istringstream ms(mi);
  for (std::string line; std::getline(ms, line);) {
    auto f = words(line);
    auto dash = std::find(f.begin(), f.end(), "-");  // optional fields end at the "-"
    if (f.size() < 5 || f.end() - dash < 4) continue;
    const std::string& type = dash[1];
    const std::string& super = dash[3];
    if (v2 ? type != "cgroup2" : (type != "cgroup" || !has_word(super, "memory", ','))) continue;
    std::string root = f[3], mount = f[4], rel = path;
    if (root != "/" && rel.starts_with(root)) rel = rel.substr(root.size());
    return rel == "/" ? mount : mount + rel;
  }
  return "";
}

// Makes and removes one limited child: proves we may create, limit and delete cgroups here.
bool probe_child(const std::string& base, MemoryMode mode, std::string* why) {
  std::string dir = fmt::format("{}/cogumi-probe-{}", base, getpid());
  if (mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    *why = fmt::format("cannot create a cgroup in {}: {}", base, std::strerror(errno));
    return false;
  }
  const char* file = mode == MemoryMode::kCgroup2 ? "memory.max" : "memory.limit_in_bytes";
  bool ok = write_small(dir + "/" + file, std::to_string(64ll << 20));
  if (!ok) *why = fmt::format("cannot write {}/{}: {}", dir, file, std::strerror(errno));
  rmdir(dir.c_str());
  return ok;
}

// Removes empty run cgroups left by processes that died mid-run (killed, crashed).
void sweep_stale(const std::string& base) {
  DIR* d = opendir(base.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    for (const char* pre : {"cogumi-sbx-", "cogumi-probe-"}) {
      if (!name.starts_with(pre)) continue;
      long pid = std::strtol(name.c_str() + strlen(pre), nullptr, 10);
      if (pid > 0 && kill(pid_t(pid), 0) != 0 && errno == ESRCH) rmdir((base + "/" + name).c_str());
    }
  }
  closedir(d);
}

// cgroup v2 usable when our cgroup has the memory controller and either already hands it to
// children or holds only us: then we move into a leaf and enable it (no-internal-process rule).
bool try_cgroup2(MemoryControl* mc, std::string* why) {
  std::string dir = own_cgroup_dir(true), ctrl, sub, procs;
  if (dir.empty()) return *why = "no cgroup v2 mount", false;
  if (!read_small(dir + "/cgroup.controllers", &ctrl) || !has_word(ctrl, "memory"))
    return *why = fmt::format("cgroup v2 {} has no memory controller (controllers: {})", dir,
                              words(ctrl).empty() ? "none" : ctrl.substr(0, ctrl.find('\n'))),
           false;
  read_small(dir + "/cgroup.subtree_control", &sub);
  if (!has_word(sub, "memory")) {
    read_small(dir + "/cgroup.procs", &procs);
    for (const auto& p : words(procs))
      if (p != std::to_string(getpid()))
        return *why = fmt::format(
                   "cgroup v2 {} is shared with other processes (pid {}), so its "
                   "memory controller cannot be delegated to the sandbox",
                   dir, p),
               false;
    std::string leaf = dir + "/cogumi-main";
    std::string enable = has_word(ctrl, "pids") ? "+memory +pids" : "+memory";
    if ((mkdir(leaf.c_str(), 0755) != 0 && errno != EEXIST) ||
        !write_small(leaf + "/cgroup.procs", "0") ||
        !write_small(dir + "/cgroup.subtree_control", enable))
      return *why = fmt::format("cannot delegate cgroup v2 {}: {}", dir, std::strerror(errno)),
             false;
  }
  if (!probe_child(dir, MemoryMode::kCgroup2, why)) return false;
  mc->mode = MemoryMode::kCgroup2;
  mc->base = dir;
  return true;
}

bool try_cgroup1(MemoryControl* mc, std::string* why) {
  std::string dir = own_cgroup_dir(false);
  if (dir.empty()) return *why = "no cgroup v1 memory hierarchy", false;
  if (!probe_child(dir, MemoryMode::kCgroup1, why)) return false;
  mc->mode = MemoryMode::kCgroup1;
  mc->base = dir;
  return true;
}

// The host's system directories: bound read-only (or recreated as the links they are) in every
// sandbox. Nothing else of the host is there but the interpreter's own directories.
constexpr const char* kSystemDirs[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                       "/lib32", "/lib64", "/libx32"};
// What the dynamic loader and Python read from /etc; the rest of /etc (credentials, service
// configuration) stays out.
constexpr const char* kEtcFiles[] = {"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
                                     "/etc/localtime", "/etc/alternatives"};

bool is_under(const fs::path& p, const fs::path& root) {
  auto [a, b] = std::mismatch(root.begin(), root.end(), p.begin(), p.end());
  return a == root.end();
}

bool under_system_dir(const fs::path& p) {
  return std::any_of(std::begin(kSystemDirs), std::end(kSystemDirs),
                     [&](const char* d) { return is_under(p, d); });
}

std::string read_sysctl(const char* path) {
  std::string v;
  std::ifstream f(path);
  std::getline(f, v);
  return v;
}

std::mutex g_leaked_mu;
std::vector<std::string> g_leaked;  // run cgroups that outlived remove(): retried by later runs

}  // namespace

const MemoryControl& memory_control() {
  static const MemoryControl mc = [] {
    MemoryControl m;
    std::string why2, why1;
    if (try_cgroup2(&m, &why2)) {
      m.description = fmt::format("cgroup v2 ({})", m.base);
    } else if (try_cgroup1(&m, &why1)) {
      m.description = fmt::format("cgroup v1 ({}; no cgroup v2: {})", m.base, why2);
    } else {
      m.description = fmt::format("watchdog (no cgroup v2: {}; no cgroup v1: {})", why2, why1);
      return m;
    }
    sweep_stale(m.base);
    return m;
  }();
  return mc;
}

bool RunCgroup::create(const MemoryControl& mc, int64_t memory_bytes, int max_pids,
                       std::string* error) {
  static std::atomic<uint64_t> counter{0};
  mode_ = mc.mode;
  std::string dir = fmt::format("{}/cogumi-sbx-{}-{}", mc.base, getpid(), counter++);
  if (mkdir(dir.c_str(), 0755) != 0) {
    *error = fmt::format("cannot create cgroup {}: {}", dir, std::strerror(errno));
    return false;
  }
  dir_ = dir;
  std::string bytes = std::to_string(memory_bytes);
  bool ok;
  if (mode_ == MemoryMode::kCgroup2) {
    ok = write_small(dir + "/memory.max", bytes);
    // Swap would let the sandbox hold more than the limit; absent files mean no swap accounting.
    if (ok && !write_small(dir + "/memory.swap.max", "0") && errno != ENOENT) ok = false;
    if (ok && max_pids > 0 && !write_small(dir + "/pids.max", std::to_string(max_pids)) &&
        errno != ENOENT)
      ok = false;
  } else {
    ok = write_small(dir + "/memory.limit_in_bytes", bytes);
    if (ok && !write_small(dir + "/memory.memsw.limit_in_bytes", bytes) && errno != ENOENT)
      ok = false;
  }
  if (!ok) {
    *error = fmt::format("cannot set the memory limit of cgroup {}: {}", dir, std::strerror(errno));
    remove();
    return false;
  }
  procs_ = dir + "/cgroup.procs";
  return true;
}

int64_t RunCgroup::oom_kills() const {
  if (dir_.empty()) return 0;
  std::string text;
  bool v2 = mode_ == MemoryMode::kCgroup2;
  if (!read_small(dir_ + (v2 ? "/memory.events" : "/memory.oom_control"), &text)) return 0;
  return keyed_value(text, "oom_kill");
}

void RunCgroup::remove() {
  if (dir_.empty()) return;
  std::string dir = std::move(dir_);
  dir_.clear();
  procs_.clear();
  // Killing bwrap tears down its pid namespace, but the kernel does that asynchronously.
  if (mode_ == MemoryMode::kCgroup2) write_small(dir + "/cgroup.kill", "1");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  auto pause = std::chrono::microseconds(200);
  bool gone = false;
  while (!(gone = rmdir(dir.c_str()) == 0 || errno == ENOENT) &&
         std::chrono::steady_clock::now() < deadline) {
    std::string procs;
    if (read_small(dir + "/cgroup.procs", &procs))
      for (const auto& p : words(procs)) {
        long pid = std::strtol(p.c_str(), nullptr, 10);
        if (pid > 1 && pid != getpid()) kill(pid_t(pid), SIGKILL);  // never 0: our own group
      }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(50000));
  }
  std::lock_guard lock(g_leaked_mu);
  std::erase_if(g_leaked, [](const std::string& d) { return rmdir(d.c_str()) == 0; });
  if (!gone) g_leaked.push_back(dir);
}

int64_t tree_memory_bytes(pid_t root) {
  int64_t total_kb = 0;
  std::vector<pid_t> todo{root};
  std::string text;
  // A bound on the walk: pids can be reused mid-walk, and a cycle must not spin forever.
  for (int visited = 0; !todo.empty() && visited < 4096; ++visited) {
    pid_t p = todo.back();
    todo.pop_back();
    std::string proc = fmt::format("/proc/{}", p);
    if (read_small(proc + "/status", &text)) {
      std::istringstream ss(text);
      for (std::string key; ss >> key;) {
        if (key == "RssAnon:" || key == "RssShmem:") {
          int64_t kb = 0;
          ss >> kb;
          total_kb += kb;
        }
        ss.ignore(1 << 20, '\n');
      }
    }
    DIR* d = opendir((proc + "/task").c_str());
    if (!d) continue;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      if (!read_small(fmt::format("{}/task/{}/children", proc, e->d_name), &text)) continue;
      for (const auto& c : words(text)) todo.push_back(pid_t(std::strtol(c.c_str(), nullptr, 10)));
    }
    closedir(d);
  }
  return total_kb << 10;
}

// bwrap arguments for the system directories and /etc files present here (decided once).
const std::vector<std::string>& system_bind_args() {
  static const std::vector<std::string> args = [] {
    std::vector<std::string> a;
    for (const char* d : kSystemDirs) {
      std::error_code ec;
      auto st = fs::symlink_status(d, ec);
      if (ec) continue;
      if (fs::is_symlink(st)) {
        a.insert(a.end(), {"--symlink", fs::read_symlink(d, ec).string(), d});
      } else if (fs::is_directory(st)) {
        a.insert(a.end(), {"--ro-bind", d, d});
      }
    }
    std::vector<std::string> etc(std::begin(kEtcFiles), std::end(kEtcFiles));
    std::error_code ec;
    for (const auto& e : fs::directory_iterator("/etc", ec))  // Debian's sitecustomize lives here
      if (e.path().filename().string().starts_with("python3")) etc.push_back(e.path().string());
    std::sort(etc.begin() + std::size(kEtcFiles), etc.end());
    for (const auto& f : etc)
      if (fs::exists(f, ec)) a.insert(a.end(), {"--ro-bind", f, f});
    return a;
  }();
  return args;
}

// The interpreter's directories that the system binds do not already cover, outermost only; both
// as named and as resolved, since the sandbox runs the interpreter by the name Python reported.
std::vector<std::string> outside_system_dirs(const std::vector<std::string>& needed) {
  std::vector<fs::path> cands;
  for (const auto& n : needed) {
    if (n.empty()) continue;
    cands.push_back(fs::path(n).lexically_normal());
    std::error_code ec;
    fs::path c = fs::weakly_canonical(n, ec);
    if (!ec && !c.empty()) cands.push_back(c);
  }
  std::erase_if(cands, [](const fs::path& p) { return p == "/" || under_system_dir(p); });
  std::sort(cands.begin(), cands.end());
  cands.erase(std::unique(cands.begin(), cands.end()), cands.end());
  std::vector<std::string> out;
  std::vector<fs::path> kept;
  for (const auto& p : cands)
    if (std::none_of(kept.begin(), kept.end(), [&](const fs::path& o) { return is_under(p, o); })) {
      kept.push_back(p);
      out.push_back(p.string());
    }
  return out;
}

std::string missing_bwrap_message(const std::string& name) {
  return fmt::format(
      "the code sandbox needs bubblewrap, and '{}' is not {}. Fix: install it (Debian/Ubuntu: "
      "sudo apt-get install bubblewrap; Fedora: sudo dnf install bubblewrap; Arch: sudo pacman -S "
      "bubblewrap)",
      name, name.find('/') == std::string::npos ? "on PATH or at /usr/bin/bwrap" : "executable");
}

// Why bwrap could not start a program, with the fix: mostly user namespaces refused by the host.
std::string explain_setup_failure(const std::string& outcome, const std::string& err) {
  std::string found;
  if (read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1")
    found += " kernel.apparmor_restrict_unprivileged_userns=1 (Ubuntu 23.10+/24.04 default);";
  if (read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0")
    found += " kernel.unprivileged_userns_clone=0;";
  if (read_sysctl("/proc/sys/user/max_user_namespaces") == "0")
    found += " user.max_user_namespaces=0;";
  bool userns = !found.empty();
  for (const char* k : {"namespace", "uid map", "Operation not permitted", "Permission denied",
                        "No space left on device"})
    userns = userns || err.find(k) != std::string::npos;
  if (!userns)
    return fmt::format("bubblewrap cannot run a sandboxed program here ({}): {}", outcome, err);
  return fmt::format(
      "the code sandbox cannot start: bubblewrap may not create user namespaces here{}. Fix, by "
      "cause: Ubuntu's AppArmor restriction: give bwrap a profile (/etc/apparmor.d/bwrap: 'abi "
      "<abi/4.0>, include <tunables/global> profile bwrap /usr/bin/bwrap flags=(unconfined) {{ "
      "userns, }}', then sudo apparmor_parser -r /etc/apparmor.d/bwrap) or sudo sysctl -w "
      "kernel.apparmor_restrict_unprivileged_userns=0; older Debian kernels: sudo sysctl -w "
      "kernel.unprivileged_userns_clone=1; sudo sysctl -w user.max_user_namespaces=15000 where it "
      "is 0; in a Docker or Podman container, whose default seccomp profile refuses them: run it "
      "with --security-opt seccomp=unconfined --security-opt apparmor=unconfined. bwrap said: {}",
      found.empty() ? "" : " (found:" + found.substr(0, found.size() - 1) + ")", err);
}

}  // namespace cogumi::sandbox_detail
