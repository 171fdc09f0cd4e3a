// compute_threads: an explicit count wins, COGUMI_THREADS caps the default (the test suite runs
// with 1), and a bad value is an error naming the variable.
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "core/error.h"
#include "core/threads.h"

namespace cogumi {
namespace {

// Sets COGUMI_THREADS (or unsets it) for one scope, then puts back what was there.
class ThreadsEnv {
 public:
  explicit ThreadsEnv(const char* value) {
    if (const char* old = std::getenv("COGUMI_THREADS")) old_ = old;
    if (value) setenv("COGUMI_THREADS", value, 1);
    else unsetenv("COGUMI_THREADS");
  }
  ~ThreadsEnv() {
    if (old_) setenv("COGUMI_THREADS", old_->c_str(), 1);
    else unsetenv("COGUMI_THREADS");
  }

 private:
  std::optional<std::string> old_;
};

TEST(ComputeThreads, ExplicitCountWinsEnvironmentCapsTheDefault) {
  {
    ThreadsEnv env(nullptr);
    EXPECT_EQ(compute_threads(0), int(std::max(1u, std::thread::hardware_concurrency())));
    EXPECT_EQ(compute_threads(7), 7);
  }
  ThreadsEnv env("3");
  EXPECT_EQ(compute_threads(0), 3);
  EXPECT_EQ(compute_threads(), 3);
  EXPECT_EQ(compute_threads(5), 5);
}

TEST(ComputeThreads, BadValuesNameTheVariable) {
  for (const char* bad : {"0", "-2", "two", "3x", "5000"}) {
    ThreadsEnv env(bad);
    try {
      compute_threads(0);
      ADD_FAILURE() << "COGUMI_THREADS=" << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("COGUMI_THREADS=" + std::string(bad)), std::string::npos) << e.what();
    }
  }
  ThreadsEnv env("");  // empty: as if unset
  EXPECT_EQ(compute_threads(0), int(std::max(1u, std::thread::hardware_concurrency())));
}

}  // namespace
}  // namespace cogumi
