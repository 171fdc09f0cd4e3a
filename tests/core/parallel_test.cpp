// parallel_for: every task runs exactly once whatever the thread count, on several threads when
// asked, and the lowest-indexed failure reaches the caller (the later ones are dropped, the tasks
// not yet started are skipped).
#include "core/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace cogumi {
namespace {

TEST(ParallelFor, EveryTaskRunsOnce) {
  for (int threads : {0, 1, 2, 4, 64}) {
    std::vector<std::atomic<int>> runs(100);
    parallel_for(runs.size(), threads, [&](size_t i) { runs[i]++; });
    for (size_t i = 0; i < runs.size(); ++i)
      ASSERT_EQ(runs[i].load(), 1) << "task " << i << ", " << threads << " threads";
  }
  parallel_for(0, 4, [](size_t) { FAIL() << "no task to run"; });
}

TEST(ParallelFor, OneThreadRunsInOrderOnTheCaller) {
  std::vector<size_t> order;
  const auto caller = std::this_thread::get_id();
  parallel_for(5, 1, [&](size_t i) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    order.push_back(i);
  });
  EXPECT_EQ(order, (std::vector<size_t>{0, 1, 2, 3, 4}));
}

TEST(ParallelFor, SeveralThreadsShareTheWork) {
  // Each task waits until two distinct threads have started one: with one thread this would hang,
  // so a pool that ran everything on the caller fails by timeout instead of passing.
  std::mutex mu;
  std::set<std::thread::id> ids;
  std::atomic<int> seen{0};
  parallel_for(2, 2, [&](size_t) {
    {
      std::lock_guard<std::mutex> lock(mu);
      ids.insert(std::this_thread::get_id());
      seen = int(ids.size());
    }
    for (int spin = 0; seen.load() < 2 && spin < 2000; ++spin)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  EXPECT_EQ(ids.size(), 2u);
}

TEST(ParallelFor, TheLowestFailingTaskIsRethrown) {
  for (int threads : {1, 2, 3}) {
    std::atomic<int> ran{0};
    try {
      parallel_for(50, threads, [&](size_t i) {
        ran++;
        std::this_thread::sleep_for(
            std::chrono::milliseconds(1));  // a task's length, so skipping can show
        if (i == 7 || i == 9) throw std::runtime_error("task " + std::to_string(i) + " failed");
      });
      FAIL() << "no exception with " << threads << " threads";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "task 7 failed") << threads << " threads";
    }
    EXPECT_GE(ran.load(), 8);   // tasks 0..7 all ran
    EXPECT_LT(ran.load(), 50);  // the rest were skipped once a task failed
  }
}

TEST(ParallelFor, ThreadsThatCannotStartLeaveTheirTasksToTheOthers) {
  // std::thread's constructor throws std::system_error when the process is out of threads; before
  // session 34 that escaped parallel_for with the started threads still joinable (std::terminate).
  for (int can_start : {0, 1, 2}) {
    std::atomic<int> started{0};
    std::vector<std::atomic<int>> runs(40);
    detail::parallel_for(runs.size(), 5, [&](size_t i) { runs[i]++; }, [&](std::function<void()> f) {
      if (started >= can_start) throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again));
      ++started;
      return std::thread(std::move(f));
    });
    for (size_t i = 0; i < runs.size(); ++i)
      ASSERT_EQ(runs[i].load(), 1) << "task " << i << ", " << can_start << " threads started";
  }
}

}  // namespace
}  // namespace cogumi
