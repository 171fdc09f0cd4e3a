// cogumi/core: run n independent tasks on a few threads (dynamic: each thread takes the next
// index).
//
// For work split into independent pieces of uneven size (an adapter's tensors, a bank's rows):
// results must not depend on which thread ran what, so each task writes only its own slot. The
// first failing task by index wins: its exception is rethrown on the caller's thread once every
// thread has stopped, and tasks not yet started are skipped. threads <= 1 runs everything on the
// caller's thread, in order. A thread that cannot be started (a process at its thread limit)
// leaves its share to the threads that did start, the caller's included: fewer threads, the same
// results.
#pragma once

#include <cstddef>
#include <functional>
#include <thread>

namespace cogumi {

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& task);

namespace detail {
// parallel_for with the way a worker thread starts given (tests: a start that throws
// std::system_error, as std::thread's constructor does when the process has no threads left).
using ThreadStart = std::function<std::thread(std::function<void()>)>;
void parallel_for(size_t n, int threads, const std::function<void(size_t)>& task, const ThreadStart& start);
}  // namespace detail

}  // namespace cogumi
