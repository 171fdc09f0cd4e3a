#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace cogumi {

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& task) {
  detail::parallel_for(n, threads, task, [](std::function<void()> f) { return std::thread(std::move(f)); });
}

void detail::parallel_for(size_t n, int threads, const std::function<void(size_t)>& task, const ThreadStart& start) {
  const size_t t = std::min(n, size_t(std::max(1, threads)));
  if (t <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  size_t first_bad = n;
  std::exception_ptr error;
  auto work = [&] {
    for (size_t i; !failed.load(std::memory_order_relaxed) && (i = next++) < n;) {
      try {
        task(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (i < first_bad) first_bad = i, error = std::current_exception();
        failed = true;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  try {
    for (size_t k = 1; k < t; ++k) pool.push_back(start(work));
  } catch (...) {
    // no more threads (std::system_error), or no memory for one's closure: the ones running (and
    // this one) take every task; leaving here would destroy joinable threads, which terminates
  }
  work();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace cogumi
