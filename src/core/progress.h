// cogumi/core: progress reporting for long jobs.
//
// Draws a one-line bar on stderr when stderr is a terminal; otherwise prints a plain line
// at most every few seconds so logs in CI stay readable. Thread-compatible, not thread-safe.
// Inside a ProgressScope (a pipeline stage running beside others) the lines name the scope and
// no bar is drawn: two bars would overwrite each other's line.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace cogumi {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string label_;
  int64_t total_;
  bool enabled_;
  bool tty_;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

// While alive, every Progress made on this thread prints plain lines starting "[NAME] ".
class ProgressScope {
 public:
  explicit ProgressScope(std::string name);
  ~ProgressScope();
  ProgressScope(const ProgressScope&) = delete;
  ProgressScope& operator=(const ProgressScope&) = delete;

 private:
  std::string saved_;
};

// "[NAME] " inside a ProgressScope on this thread, else "": for other lines a stage prints.
std::string progress_prefix();

// True when stdout is a terminal.
bool stdout_is_tty();

}  // namespace cogumi
