// Test helper for the kill -9 test (memory_test.cpp): appends turns to a session store as fast as
// it can, from THREADS threads with a session each, and reports each committed turn on stdout as
// "ID THREAD K\n" only after append_turn has returned. It never stops on its own: the test kills
// it with SIGKILL mid-stream and then looks for every reported turn.
//   cogumi_memory_writer DB [THREADS]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "runtime/memory.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DB [THREADS]\n", argv[0]);
    return 2;
  }
  const int threads = argc > 2 ? std::atoi(argv[2]) : 2;
  try {
    auto store = cogumi::SessionStore::open(argv[1]);
    std::mutex out_mu;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&, t] {
        try {
          const std::string session = store.create_session({{"writer_thread", t}});
          // Long enough content that the WAL grows past its auto-checkpoint size, so some kills
          // land during a checkpoint too.
          const std::string filler(1500, char('a' + t % 26));
          for (long k = 0;; ++k) {
            cogumi::Turn turn;
            turn.role = k % 2 ? "assistant" : "user";
            turn.content = std::to_string(t) + " " + std::to_string(k) + " " + filler;
            turn.choice = "math";
            turn.decision = {{"choice", "math"}, {"k", k}};
            turn.confidence = 0.5;
            const int64_t id = store.append_turn(session, turn);
            const std::string line =
                std::to_string(id) + " " + std::to_string(t) + " " + std::to_string(k) + "\n";
            std::lock_guard lock(out_mu);
            // One write() per line: a pipe write under PIPE_BUF bytes is atomic, so the reader
            // never sees half a report.
            if (write(1, line.data(), line.size()) != ssize_t(line.size())) std::_Exit(3);
          }
        } catch (const std::exception& e) {
          std::fprintf(stderr, "memory_writer: %s\n", e.what());
          std::_Exit(1);
        }
      });
    }
    for (auto& th : pool) th.join();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "memory_writer: %s\n", e.what());
    return 1;
  }
  return 0;
}
