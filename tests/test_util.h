// Test fixtures: models generated once per test binary into a temporary directory.
#pragma once

#include <filesystem>
#include <string>

namespace cogumi::test {

// Directory for this test run's files (removed at exit).
const std::filesystem::path& tmp_dir();
// A tiny random-init llama model with the built-in vocabulary (F32, seed 7).
const std::filesystem::path& tiny_model();
// A random LoRA adapter for tiny_model() with non-zero B (changes outputs).
const std::filesystem::path& tiny_adapter();

}  // namespace cogumi::test
