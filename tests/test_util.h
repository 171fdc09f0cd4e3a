// Test fixtures: models generated once per test binary into a temporary directory.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "core/error.h"

namespace cogumi::test {

// Directory for this test run's files (removed at exit).
const std::filesystem::path& tmp_dir();
// A tiny random-init llama model with the built-in vocabulary (F32, seed 7).
const std::filesystem::path& tiny_model();
// A random LoRA adapter for tiny_model() with non-zero B (changes outputs).
const std::filesystem::path& tiny_adapter();

// The message of the cogumi::Error that fn throws; "" when it throws none.
inline std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// An environment variable set (value) or unset (nullptr) for a scope, its previous state restored however the
// scope ends (switches that code reads when it builds something: GGML_COGUMI_NARROW_GRADS, ...).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      ::unsetenv(name_.c_str());
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

}  // namespace cogumi::test
