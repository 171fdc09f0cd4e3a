#include "core/threads.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string_view>
#include <thread>

#include "core/error.h"

namespace cogumi {

int compute_threads(int requested) {
  if (requested > 0) return requested;
  if (const char* env = std::getenv("COGUMI_THREADS"); env && *env) {
    const std::string_view s(env);
    int n = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
    if (ec != std::errc() || end != s.data() + s.size() || n < 1 || n > 4096)
      fail("COGUMI_THREADS={}: expected a whole number of threads in 1..4096", s);
    return n;
  }
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace cogumi
