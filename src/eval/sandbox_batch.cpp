// Many sandbox runs at once, on worker threads.
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "eval/sandbox.h"

namespace cogumi {

std::vector<SandboxResult> run_python_batch(const std::vector<std::string>& programs,
                                            const SandboxOptions& opts, int workers,
                                            const std::function<void(size_t)>& on_done) {
  if (workers < 1) fail("run_python_batch: workers must be at least 1, got {}", workers);
  opts.validate();
  std::vector<SandboxResult> results(programs.size());
  std::atomic<size_t> next{0};
  std::mutex mu;  // serializes on_done and the first error
  std::exception_ptr error;
  auto work = [&] {
    for (size_t i; (i = next++) < programs.size();) {
      try {
        results[i] = run_python_sandboxed(programs[i], opts);
        if (on_done) {
          std::lock_guard lock(mu);
          on_done(i);
        }
      } catch (...) {
        std::lock_guard lock(mu);
        if (!error) error = std::current_exception();
        next = programs.size();  // stop handing out work
      }
    }
  };
  size_t n_threads = std::min(size_t(workers), programs.size());
  if (n_threads <= 1) {
    work();
  } else {
    std::vector<std::thread> threads;
    for (size_t t = 0; t < n_threads; ++t) threads.emplace_back(work);
    for (auto& t : threads) t.join();
  }
  if (error) std::rethrow_exception(error);
  return results;
}

}  // namespace cogumi
