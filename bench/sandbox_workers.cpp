// The sandbox's throughput against its worker count (bench/RESULTS.md, "The main job in minutes", session 35):
// N one-line programs through run_python_batch (src/eval/sandbox.h) on W workers, with the whole-sandbox memory
// limit (its cgroup) or without it (MEM 0); prints the wall time per program and each run's mean wall_s. Not part of
// the CMake build; from a configured build/ (libcogumi.a):
//   g++ -O2 -std=c++20 -I src bench/sandbox_workers.cpp build/src/libcogumi.a -lfmt -lpthread -o /tmp/sandbox_workers
//   for w in 1 2 4 8; do /tmp/sandbox_workers 60 $w 1024; done; /tmp/sandbox_workers 60 1 0
#include "eval/sandbox.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
using namespace cogumi;
int main(int argc, char** argv) {
  int n = atoi(argv[1]), workers = atoi(argv[2]); long mem = atol(argv[3]);
  SandboxOptions o; o.limits.memory_mb = mem;
  std::vector<std::string> progs(n, "import sys\nx = [i*i for i in range(1000)]\nprint(sum(x))\n");
  auto t0 = std::chrono::steady_clock::now();
  auto r = run_python_batch(progs, o, workers);
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double w = 0; int ok = 0;
  for (auto& x : r) { w += x.wall_s; ok += x.outcome == SandboxOutcome::kPassed; }
  printf("n=%d workers=%d mem=%ld: %.1f ms/run wall, mean run wall_s %.1f ms, passed %d\n", n, workers, mem, s / n * 1000, w / n * 1000, ok);
}
