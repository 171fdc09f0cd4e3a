#include "core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

namespace cogumi {

namespace {
thread_local std::string t_scope;
}

bool stdout_is_tty() { return isatty(STDOUT_FILENO) == 1; }

ProgressScope::ProgressScope(std::string name) : saved_(std::exchange(t_scope, std::move(name))) {}
ProgressScope::~ProgressScope() { t_scope = std::move(saved_); }

std::string progress_prefix() { return t_scope.empty() ? std::string() : fmt::format("[{}] ", t_scope); }

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(t_scope.empty() ? std::move(label) : fmt::format("[{}] {}", t_scope, label)),
      total_(total),
      enabled_(enabled),
      tty_(t_scope.empty() && isatty(STDERR_FILENO) == 1) {
  start_ = last_ = std::chrono::steady_clock::now();
}

Progress::~Progress() {
  if (!finished_) finish();
}

void Progress::update(int64_t done, const std::string& extra) {
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  double since_last = std::chrono::duration<double>(now - last_).count();
  if (tty_ ? since_last < 0.1 : since_last < 5.0) return;
  last_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double frac = total_ > 0 ? double(done) / double(total_) : 0.0;
  if (tty_) {
    int width = 30, fill = int(frac * width);
    std::string bar(fill, '#');
    bar.resize(width, '.');
    fmt::print(stderr, "\r{} [{}] {}/{} {:.0f}s {}\033[K", label_, bar, done, total_, el, extra);
  } else {
    fmt::print(stderr, "{}: {}/{} ({:.0f}%) {:.0f}s {}\n", label_, done, total_, frac * 100, el, extra);
  }
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  finished_ = true;
  if (!enabled_) return;
  double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  fmt::print(stderr, "{}{}: {}/{} done in {:.1f}s {}\n", tty_ ? "\r\033[K" : "", label_, total_, total_, el, extra);
}

}  // namespace cogumi
