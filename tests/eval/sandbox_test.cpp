#include "eval/sandbox.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "core/error.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

#define REQUIRE_SANDBOX()                                                \
  do {                                                                   \
    std::string why;                                                     \
    if (!sandbox_available(&why)) GTEST_SKIP() << "no sandbox: " << why; \
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

TEST(Sandbox, MissingInterpreterIsSetupError) {
  SandboxOptions o = quick();
  o.python = "/nonexistent/python3";
  auto r = run_python_sandboxed("print(1)\n", o);
  EXPECT_EQ(r.outcome, SandboxOutcome::kSetupError);
  EXPECT_NE(r.stderr_tail.find("/nonexistent/python3"), std::string::npos) << r.stderr_tail;
}

}  // namespace
}  // namespace cogumi
