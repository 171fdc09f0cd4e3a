#include "eval/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>
#include <string>

#include "core/error.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

// Never a skip: a machine without a working bubblewrap fails here, with the cause and the fix.
#define REQUIRE_SANDBOX()                                               \
  do {                                                                  \
    std::string why;                                                    \
    ASSERT_TRUE(sandbox_available(&why)) << "no code sandbox: " << why; \
  } while (0)

SandboxOptions quick(double timeout_s = 10.0) {
  SandboxOptions o;
  o.limits.timeout_s = timeout_s;
  return o;
}

std::string describe(const SandboxResult& r) {
  return fmt::format("outcome={} exit={} signal={} wall={:.2f}s\nstdout: {}\nstderr: {}",
                     sandbox_outcome_name(r.outcome), r.exit_code, r.signal, r.wall_s,
                     r.stdout_tail, r.stderr_tail);
}

TEST(Sandbox, OutcomeNames) {
  EXPECT_STREQ(sandbox_outcome_name(SandboxOutcome::kPassed), "passed");
  EXPECT_STREQ(sandbox_outcome_name(SandboxOutcome::kFailed), "failed");
  EXPECT_STREQ(sandbox_outcome_name(SandboxOutcome::kTimeout), "timeout");
  EXPECT_STREQ(sandbox_outcome_name(SandboxOutcome::kCrashed), "crashed");
  EXPECT_STREQ(sandbox_outcome_name(SandboxOutcome::kSetupError), "setup_error");
}

TEST(Sandbox, PassingProgram) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed(
      "def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('ok')\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_tail, "ok\n");
}

TEST(Sandbox, AssertionFailureIsFailedWithTraceback) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed("x = 1\nassert x == 2, 'boom'\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kFailed) << describe(r);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.stderr_tail.find("Traceback"), std::string::npos) << r.stderr_tail;
  EXPECT_NE(r.stderr_tail.find("AssertionError: boom"), std::string::npos) << r.stderr_tail;
}

TEST(Sandbox, InfiniteLoopTimesOut) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed("while True:\n    pass\n", quick(2.0));
  EXPECT_EQ(r.outcome, SandboxOutcome::kTimeout) << describe(r);
  EXPECT_GE(r.wall_s, 1.9);
  EXPECT_LT(r.wall_s, 4.0);
}

TEST(Sandbox, SignalDeathIsCrashed) {
  REQUIRE_SANDBOX();
  auto r =
      run_python_sandboxed("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kCrashed) << describe(r);
  EXPECT_EQ(r.signal, SIGSEGV);
}

TEST(Sandbox, CpuLimitKills) {
  REQUIRE_SANDBOX();
  SandboxOptions o = quick(8.0);
  o.limits.cpu_s = 1;
  auto r = run_python_sandboxed("while True:\n    pass\n", o);
  EXPECT_EQ(r.outcome, SandboxOutcome::kCrashed) << describe(r);
  EXPECT_TRUE(r.signal == SIGXCPU || r.signal == SIGKILL) << r.signal;
  EXPECT_LT(r.wall_s, 5.0);
}

TEST(Sandbox, ForkBombIsContained) {
  REQUIRE_SANDBOX();
  const char* bomb =
      "import os\n"
      "while True:\n"
      "    try:\n"
      "        os.fork()\n"
      "    except OSError:\n"
      "        pass\n";
  auto r = run_python_sandboxed(bomb, quick(3.0));
  EXPECT_NE(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_NE(r.outcome, SandboxOutcome::kSetupError) << describe(r);
  EXPECT_LT(r.wall_s, 6.0);
  // The process limit held inside: the program could count its own children.
  auto counted = run_python_sandboxed(
      "import os, time\n"
      "n = 0\n"
      "try:\n"
      "    for _ in range(200):\n"
      "        if os.fork() == 0:\n"
      "            time.sleep(5); os._exit(0)\n"
      "        n += 1\n"
      "except OSError:\n"
      "    pass\n"
      "print(n, flush=True)\n"
      "os._exit(0)\n",
      quick());
  ASSERT_EQ(counted.outcome, SandboxOutcome::kPassed) << describe(counted);
  EXPECT_LE(std::stoi(counted.stdout_tail), 32) << counted.stdout_tail;
  // And the host is fine: the next program runs normally.
  auto ok = run_python_sandboxed("print('alive')\n", quick());
  EXPECT_EQ(ok.outcome, SandboxOutcome::kPassed) << describe(ok);
}

TEST(Sandbox, LargeAllocationFails) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed("x = bytearray(4 << 30)\nprint(len(x))\n", quick());
  EXPECT_NE(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_NE(r.outcome, SandboxOutcome::kSetupError) << describe(r);
}

TEST(Sandbox, CannotWriteOutsideItsDirectory) {
  REQUIRE_SANDBOX();
  const char* home = std::getenv("HOME");
  std::vector<fs::path> targets = {"/etc/cogumi_sbx_x", fs::current_path() / "cogumi_sbx_x",
                                   "/work/main/cogumi_sbx_x",
                                   fs::path(home ? home : "/root") / "cogumi_sbx_x"};
  // /tmp inside is a private tmpfs: the write succeeds there but must not reach the host's /tmp.
  fs::path host_tmp = "/tmp/cogumi_sbx_x";
  std::string prog =
      fmt::format("import sys\nopen('{}', 'w').write('x')\nleaks = []\n", host_tmp.string());
  // cwd or HOME may be under /tmp, which inside is the private tmpfs: only checked on the host.
  for (const auto& t : targets)
    if (!t.string().starts_with("/tmp/"))
      prog += fmt::format(
          "try:\n    open('{}', 'w').write('x')\n    leaks.append('{}')\nexcept OSError as e:\n    "
          "print('blocked', e)\n",
          t.string(), t.string());
  prog +=
      "open('inside.txt', 'w').write('fine')\nprint('leaks', leaks)\nsys.exit(1 if leaks else 0)\n";
  auto r = run_python_sandboxed(prog, quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  targets.push_back(host_tmp);
  for (const auto& t : targets) {
    EXPECT_FALSE(fs::exists(t)) << t;
    std::error_code ec;
    fs::remove(t, ec);  // tidy up if the sandbox ever leaked
  }
}

TEST(Sandbox, NetworkIsUnreachable) {
  REQUIRE_SANDBOX();
  // A listener on the host's loopback: the sandbox must not reach it.
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(srv, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(srv, 4), 0);
  socklen_t len = sizeof addr;
  ASSERT_EQ(getsockname(srv, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  int port = ntohs(addr.sin_port);
  std::string prog = fmt::format(
      "import socket, sys\n"
      "reached = []\n"
      "for host, port in [('1.1.1.1', 53), ('127.0.0.1', {})]:\n"
      "    try:\n"
      "        socket.create_connection((host, port), timeout=2).close()\n"
      "        reached.append(host)\n"
      "    except OSError as e:\n"
      "        print('blocked', host, e)\n"
      "sys.exit(1 if reached else 0)\n",
      port);
  auto r = run_python_sandboxed(prog, quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  fcntl(srv, F_SETFL, O_NONBLOCK);
  int c = accept(srv, nullptr, nullptr);
  EXPECT_LT(c, 0) << "the sandbox connected to the host loopback";
  if (c >= 0) close(c);
  close(srv);
}

TEST(Sandbox, FileSizeLimit) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed(
      "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (100 << 20))\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kFailed) << describe(r);
  EXPECT_NE(r.stderr_tail.find("File too large"), std::string::npos) << r.stderr_tail;
}

TEST(Sandbox, LargeStdoutDoesNotHang) {
  REQUIRE_SANDBOX();
  auto r =
      run_python_sandboxed("import sys\nsys.stdout.write('x' * 10_000_000 + 'END')\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_LE(r.stdout_tail.size(), 4096u);
  EXPECT_EQ(r.stdout_tail.substr(r.stdout_tail.size() - 3), "END");
  EXPECT_LT(r.wall_s, 5.0);
}

TEST(Sandbox, TailsAreValidUtf8) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed(
      "import sys\nsys.stdout.buffer.write(b'ok\\xff\\xed\\xa0\\x80\\xc3\\xa9\\xc3')\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_EQ(r.stdout_tail, "ok????\u00e9?");  // bad byte, 3-byte surrogate, é, cut char
}

TEST(Sandbox, BatchKeepsInputOrder) {
  REQUIRE_SANDBOX();
  std::vector<std::string> programs;
  for (int i = 0; i < 8; ++i)
    programs.push_back(fmt::format("import sys, time\ntime.sleep({})\nprint({})\nsys.exit({})\n",
                                   (8 - i) * 0.02, i, i % 2));
  std::atomic<int> calls{0};
  std::set<size_t> seen;
  auto results = run_python_batch(programs, quick(), 2, [&](size_t i) {
    ++calls;
    seen.insert(i);  // on_done calls are serialized, so no lock here
  });
  ASSERT_EQ(results.size(), 8u);
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(results[i].stdout_tail, fmt::format("{}\n", i)) << describe(results[i]);
    EXPECT_EQ(results[i].outcome, i % 2 ? SandboxOutcome::kFailed : SandboxOutcome::kPassed)
        << describe(results[i]);
  }
  EXPECT_EQ(calls, 8);
  EXPECT_EQ(seen.size(), 8u);
  EXPECT_THROW(run_python_batch(programs, quick(), 0), Error);
}

// Batches on several threads (a server finishing requests together) share one cap: never more
// sandboxes at once than the slots, each batch asking for 3 workers; all results still right.
TEST(Sandbox, SlotsCapSandboxesAcrossConcurrentBatches) {
  REQUIRE_SANDBOX();
  SandboxOptions o = quick();
  o.slots = std::make_shared<SandboxSlots>(2);
  std::vector<std::string> programs;
  for (int i = 0; i < 3; ++i) programs.push_back(fmt::format("import time\ntime.sleep(0.2)\nprint({})\n", i));
  std::vector<std::vector<SandboxResult>> results(3);
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) threads.emplace_back([&, t] { results[size_t(t)] = run_python_batch(programs, o, 3); });
  for (auto& t : threads) t.join();
  for (const auto& r : results)
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r[size_t(i)].stdout_tail, fmt::format("{}\n", i)) << describe(r[size_t(i)]);
  EXPECT_EQ(o.slots->peak(), 2);  // 9 programs of 0.2 s on 9 worker threads: the cap was reached, never passed
  EXPECT_THROW(SandboxSlots(0), Error);
}

TEST(Sandbox, MissingInterpreterIsSetupError) {
  SandboxOptions o = quick();
  o.python = "/nonexistent/python3";
  auto r = run_python_sandboxed("print(1)\n", o);
  EXPECT_EQ(r.outcome, SandboxOutcome::kSetupError);
  EXPECT_NE(r.stderr_tail.find("/nonexistent/python3"), std::string::npos) << r.stderr_tail;
}

// A directory on the host that any uid may enter (as a careless tree, key store or socket
// directory would be), removed afterwards: /var/tmp is such a place on every Linux host.
class HostDir {
 public:
  HostDir() {
    fs::path base = fs::is_directory("/var/tmp") ? fs::path("/var/tmp") : fs::current_path();
    std::string tmpl = (base / "cogumi-sbx-host-XXXXXX").string();
    EXPECT_NE(mkdtemp(tmpl.data()), nullptr) << tmpl;
    path_ = tmpl;
    fs::permissions(path_, fs::perms(0755));
  }
  ~HostDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void write_text(const fs::path& p, const std::string& text, int mode = 0644) {
  std::ofstream(p) << text;
  fs::permissions(p, fs::perms(mode));
}

TEST(Sandbox, HostFilesAreNotVisible) {
  REQUIRE_SANDBOX();
  std::string secret = fmt::format("COGUMI-SECRET-{}-{}", getpid(), std::rand());
  HostDir host;
  const char* home_env = std::getenv("HOME");
  ASSERT_TRUE(home_env && *home_env) << "HOME is not set";
  fs::path in_home = fs::path(home_env) / fmt::format(".cogumi_sbx_secret_{}", getpid());
  write_text(in_home, secret);
  write_text(host.path() / ".env", secret);
  // Files every host has and anyone may read: the sandbox's /etc holds only what Python needs.
  std::vector<std::string> paths = {in_home.string(), (host.path() / ".env").string(),
                                    "/etc/passwd", "/etc/hostname"};
  std::string prog = "import sys\nseen = []\n";
  for (const auto& p : paths)
    prog += fmt::format(
        "try:\n    open('{0}', 'rb').read(1)\n    seen.append('{0}')\nexcept OSError as e:\n"
        "    print('blocked', e)\n",
        p);
  prog += "print('seen', seen)\nsys.exit(1 if seen else 0)\n";
  auto r = run_python_sandboxed(prog, quick());
  fs::remove(in_home);
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_EQ(r.stdout_tail.find(secret), std::string::npos) << r.stdout_tail;
}

TEST(Sandbox, HostUnixSocketsAreUnreachable) {
  REQUIRE_SANDBOX();
  HostDir host;
  // A path socket anyone may connect to (as /run/user/UID/bus is for its user, docker.sock for
  // its group) and an abstract one: neither a read-only mount nor a network namespace alone stops
  // the first, the network namespace stops the second.
  fs::path sock_path = host.path() / "host.sock";
  std::string abstract = fmt::format("cogumi-sbx-test-{}", getpid());
  int listeners[2];
  for (int i = 0; i < 2; ++i) {
    listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ASSERT_GE(listeners[i], 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (i == 0) {
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock_path.c_str());
      len = sizeof addr;
    } else {
      std::memcpy(addr.sun_path + 1, abstract.data(), abstract.size());
      len = socklen_t(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
    }
    ASSERT_EQ(bind(listeners[i], reinterpret_cast<sockaddr*>(&addr), len), 0) << strerror(errno);
    ASSERT_EQ(listen(listeners[i], 4), 0);
  }
  chmod(sock_path.c_str(), 0777);
  std::string prog = fmt::format(
      "import socket, sys\n"
      "reached = []\n"
      "for addr in ['{}', '\\0{}']:\n"
      "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
      "    s.settimeout(2)\n"
      "    try:\n"
      "        s.connect(addr)\n"
      "        reached.append(repr(addr))\n"
      "    except OSError as e:\n"
      "        print('blocked', repr(addr), e)\n"
      "print('reached', reached)\n"
      "sys.exit(1 if reached else 0)\n",
      sock_path.string(), abstract);
  auto r = run_python_sandboxed(prog, quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  for (int fd : listeners) {
    int c = accept(fd, nullptr, nullptr);
    EXPECT_LT(c, 0) << "the sandbox connected to a host Unix socket";
    if (c >= 0) close(c);
    close(fd);
  }
}

TEST(Sandbox, DevShmIsPrivateAndSized) {
  REQUIRE_SANDBOX();
  SandboxOptions o = quick(20.0);
  // Files of 8 MiB (under the 16 MiB RLIMIT_FSIZE), stopping at 512 MiB if nothing stops them.
  auto r = run_python_sandboxed(
      "import errno\n"
      "total = 0\n"
      "try:\n"
      "    for i in range(64):\n"
      "        with open(f'/dev/shm/fill{i}', 'wb') as f:\n"
      "            f.write(b'x' * (8 << 20))\n"
      "        total += 8\n"
      "    print('never stopped')\n"
      "except OSError as e:\n"
      "    print('stopped', errno.errorcode.get(e.errno))\n"
      "print('total', total)\n",
      o);
  ASSERT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  int total = -1;
  auto at = r.stdout_tail.find("total ");
  if (at != std::string::npos) total = std::atoi(r.stdout_tail.c_str() + at + 6);
  EXPECT_GT(total, 0) << "/dev/shm must be usable (multiprocessing needs it): " << describe(r);
  EXPECT_LE(total, o.limits.shm_mb) << describe(r);
  EXPECT_NE(r.stdout_tail.find("stopped ENOSPC"), std::string::npos) << describe(r);
}

TEST(Sandbox, ManySmallAllocatorsShareOneLimit) {
  REQUIRE_SANDBOX();
  SandboxOptions o = quick(30.0);
  o.limits.memory_mb = 256;
  // 16 children of 48 MiB each, each alone well under the limit; the parent counts the memory
  // held by children still alive. Over 256 MiB in all, the kernel (cgroup) kills children or the
  // watchdog kills the sandbox.
  auto r = run_python_sandboxed(
      "import os, time\n"
      "MB = 48\n"
      "kids = []\n"
      "for i in range(16):\n"
      "    r, w = os.pipe()\n"
      "    try:\n"
      "        pid = os.fork()\n"
      "    except OSError:\n"
      "        break\n"
      "    if pid == 0:\n"
      "        os.close(r)\n"
      "        try:\n"
      "            b = b'\\x01' * (MB << 20)\n"
      "            os.write(w, b'1')\n"
      "        except MemoryError:\n"
      "            os._exit(1)\n"
      "        time.sleep(60)\n"
      "        os._exit(0)\n"
      "    os.close(w)\n"
      "    kids.append((pid, os.read(r, 1) == b'1'))\n"
      "    os.close(r)\n"
      "time.sleep(0.5)\n"
      "held = sum(MB for pid, ok in kids if ok and os.waitpid(pid, os.WNOHANG) == (0, 0))\n"
      "print('held', held, 'MiB in', len(kids), 'children', flush=True)\n"
      "for pid, _ in kids:\n"
      "    try:\n"
      "        os.kill(pid, 9)\n"
      "    except ProcessLookupError:\n"
      "        pass\n",
      o);
  EXPECT_NE(r.outcome, SandboxOutcome::kSetupError) << describe(r);
  EXPECT_NE(r.outcome, SandboxOutcome::kTimeout) << describe(r);
  auto at = r.stdout_tail.find("held ");
  if (at != std::string::npos) {
    EXPECT_LE(std::atoi(r.stdout_tail.c_str() + at + 5), o.limits.memory_mb) << describe(r);
  } else {  // killed as a whole before it could report
    EXPECT_EQ(r.outcome, SandboxOutcome::kCrashed) << describe(r);
  }
  EXPECT_TRUE(r.memory_exceeded) << describe(r);
  std::cout << "memory control: " << sandbox_memory_control() << "\n" << describe(r) << "\n";
  // The next program is not affected.
  auto ok = run_python_sandboxed("print('alive')\n", quick());
  EXPECT_EQ(ok.outcome, SandboxOutcome::kPassed) << describe(ok);
}

TEST(Sandbox, OsExitEndsWithItsCode) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed("print('buffered', end='')\nimport os\nos._exit(0)\n", quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
  EXPECT_EQ(r.exit_code, 0);
  auto f = run_python_sandboxed("import os\nos._exit(3)\n", quick());
  EXPECT_EQ(f.outcome, SandboxOutcome::kFailed) << describe(f);
  EXPECT_EQ(f.exit_code, 3);
}

TEST(Sandbox, RunsAsUnprivilegedUser) {
  REQUIRE_SANDBOX();
  auto r = run_python_sandboxed(
      "import os\n"
      "ids = (os.getuid(), os.geteuid(), os.getgid(), os.getegid())\n"
      "print(ids)\n"
      "assert 0 not in ids, ids\n",
      quick());
  EXPECT_EQ(r.outcome, SandboxOutcome::kPassed) << describe(r);
}

TEST(Sandbox, MissingBubblewrapNamesTheFix) {
  SandboxOptions o = quick();
  o.bwrap = "/nonexistent/bwrap";
  std::string why;
  EXPECT_FALSE(sandbox_available(o, &why));
  EXPECT_NE(why.find("bubblewrap"), std::string::npos) << why;
  EXPECT_NE(why.find("apt-get install bubblewrap"), std::string::npos) << why;
  auto r = run_python_sandboxed("print(1)\n", o);
  EXPECT_EQ(r.outcome, SandboxOutcome::kSetupError) << describe(r);
  EXPECT_NE(r.stderr_tail.find("apt-get install bubblewrap"), std::string::npos) << r.stderr_tail;
}

TEST(Sandbox, RefusedUserNamespacesNameTheFix) {
  // A bwrap that fails as bubblewrap does under Ubuntu 24.04's AppArmor default.
  HostDir host;
  fs::path fake = host.path() / "bwrap";
  write_text(fake, "#!/bin/sh\necho 'bwrap: setting up uid map: Permission denied' >&2\nexit 1\n",
             0755);
  SandboxOptions o = quick();
  o.bwrap = fake.string();
  std::string why;
  EXPECT_FALSE(sandbox_available(o, &why));
  EXPECT_NE(why.find("user namespaces"), std::string::npos) << why;
  EXPECT_NE(why.find("kernel.apparmor_restrict_unprivileged_userns=0"), std::string::npos) << why;
  EXPECT_NE(why.find("/etc/apparmor.d/bwrap"), std::string::npos) << why;
  EXPECT_NE(why.find("setting up uid map: Permission denied"), std::string::npos) << why;
}

TEST(Sandbox, OptionsValidate) {
  SandboxOptions o;
  EXPECT_NO_THROW(o.validate());
  o.limits.timeout_s = 0;
  EXPECT_THROW(o.validate(), Error);
  o = SandboxOptions{};
  o.python.clear();
  EXPECT_THROW(o.validate(), Error);
}

}  // namespace
}  // namespace cogumi
