// cogumi/core: run n independent tasks on a few threads (dynamic: each thread takes the next
// index).
//
// For work split into independent pieces of uneven size (an adapter's tensors, a bank's rows):
// results must not depend on which thread ran what, so each task writes only its own slot. The
// first failing task by index wins: its exception is rethrown on the caller's thread once every
// thread has stopped, and tasks not yet started are skipped. threads <= 1 runs everything on the
// caller's thread, in order.
#pragma once

#include <cstddef>
#include <functional>

namespace cogumi {

void parallel_for(size_t n, int threads, const std::function<void(size_t)>& task);

}  // namespace cogumi
