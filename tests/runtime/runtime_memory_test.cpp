// Runtime::memory() from many threads at once: the server's request threads open the session
// store on first use. Before the lock, threads that all saw "not open yet" each opened a store and
// assigned it, so some kept a reference to a store another thread had just destroyed.
#include <gtest/gtest.h>

#include <latch>
#include <set>
#include <thread>

#include "core/io.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace cogumi {
namespace {

SystemConfig system_with_memory(const fs::path& dir) {
  const fs::path models = fs::path(COGUMI_REPO_DIR) / "models";
  const fs::path yaml = dir / "system.yaml";
  write_file_atomic(yaml, "base: " + (models / "nano-base.gguf").string() +
                              "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n"
                              "generation: {max_tokens: 8}\nmemory: " +
                              (dir / "db" / "sessions.db").string() + "\n");
  SystemConfig cfg = SystemConfig::load(yaml);
  cfg.threads = 1;
  return cfg;
}

// Every round: a fresh Runtime, kThreads threads released together at its first memory() call.
// All must get the same store, and every turn each thread writes through it must be there.
TEST(RuntimeMemory, ConcurrentFirstUseOpensOneStoreAndLosesNoTurn) {
  constexpr int kThreads = 8, kRounds = 6, kTurns = 5;
  const fs::path dir = test::tmp_dir() / "runtime-memory";
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE(round);
    fs::remove_all(dir);
    fs::create_directories(dir);
    Runtime rt(system_with_memory(dir));
    std::latch start(kThreads);
    std::vector<SessionStore*> seen(kThreads, nullptr);
    std::vector<std::string> sessions(kThreads);
    std::vector<std::string> errors(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t)
      threads.emplace_back([&, t] {
        start.arrive_and_wait();
        try {
          SessionStore& store = rt.memory();
          seen[t] = &store;
          sessions[t] = store.create_session();
          for (int i = 0; i < kTurns; ++i) {
            Turn turn;
            turn.role = i % 2 ? "assistant" : "user";
            turn.content = "thread " + std::to_string(t) + " turn " + std::to_string(i);
            store.append_turn(sessions[t], turn);
          }
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    for (auto& th : threads) th.join();
    for (int t = 0; t < kThreads; ++t) EXPECT_EQ(errors[t], "") << "thread " << t;
    EXPECT_EQ(std::set<SessionStore*>(seen.begin(), seen.end()).size(), 1u) << "more than one store was opened";
    for (int t = 0; t < kThreads; ++t) {
      const auto turns = rt.memory().last_turns(sessions[t], 100);
      ASSERT_EQ(turns.size(), size_t(kTurns)) << "thread " << t;
      EXPECT_EQ(turns.back().content, "thread " + std::to_string(t) + " turn " + std::to_string(kTurns - 1));
    }
    EXPECT_EQ(rt.memory().sessions().size(), size_t(kThreads));
  }
}

}  // namespace
}  // namespace cogumi
