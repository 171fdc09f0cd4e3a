// Progress lines of stages running side by side (cogumi run --jobs): each names its stage, and
// none redraws a shared terminal line.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <thread>

#include "core/progress.h"

namespace cogumi {
namespace {

std::string finished_line(const char* scope) {
  testing::internal::CaptureStderr();
  {
    std::optional<ProgressScope> s;
    if (scope) s.emplace(scope);
    Progress p("train", 10);
    p.finish("loss 0.1");
  }
  return testing::internal::GetCapturedStderr();
}

TEST(ProgressScope, LinesNameTheStageAndDrawNoBar) {
  const std::string in = finished_line("train.math");
  EXPECT_EQ(in.rfind("[train.math] train: 10/10 done in", 0), 0u) << in;
  EXPECT_EQ(in.find('\r'), std::string::npos) << in;
  const std::string out = finished_line(nullptr);  // the scope ended with its object
  EXPECT_NE(out.find("train: 10/10 done in"), std::string::npos) << out;
  EXPECT_EQ(out.find("[train.math]"), std::string::npos) << out;
  // A scope belongs to its thread: another thread's lines are its own.
  ProgressScope outer("eval.math");
  std::string other;
  std::thread([&] { other = finished_line("train.code"); }).join();
  EXPECT_NE(other.find("[train.code] train:"), std::string::npos) << other;
  EXPECT_NE(finished_line(nullptr).find("[eval.math] train:"), std::string::npos);
}

}  // namespace
}  // namespace cogumi
