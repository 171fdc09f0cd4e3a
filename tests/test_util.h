// Test fixtures: models generated once per test binary into a temporary directory.
#pragma once

#include <filesystem>
#include <functional>
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

}  // namespace cogumi::test
