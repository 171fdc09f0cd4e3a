#include <gtest/gtest.h>
#include <unistd.h>

#include "engine/adapter.h"
#include "engine/model.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi::test {

const std::filesystem::path& tmp_dir() {
  static std::filesystem::path d = [] {
    auto p = std::filesystem::temp_directory_path() / ("cogumi-test-" + std::to_string(getpid()));
    std::filesystem::create_directories(p);
    return p;
  }();
  return d;
}

const std::filesystem::path& tiny_model() {
  static std::filesystem::path p = [] {
    auto path = tmp_dir() / "tiny.gguf";
    ModelInitOptions o;
    o.shape = model_shape_preset("tiny");
    o.seed = 7;
    o.init_std = 0.2f;  // larger weights: peaked distributions, so greedy ties are rare
    model_init(path, o);
    return path;
  }();
  return p;
}

const std::filesystem::path& tiny_adapter() {
  static std::filesystem::path p = [] {
    auto path = tmp_dir() / "tiny-lora.gguf";
    AdapterInitOptions o;
    o.rank = 4;
    o.std_a = 0.5f;
    o.std_b = 0.5f;
    adapter_init(tiny_model(), path, o);
    return path;
  }();
  return p;
}

}  // namespace cogumi::test

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  cogumi::engine_init();
  int rc = RUN_ALL_TESTS();
  std::error_code ec;
  std::filesystem::remove_all(cogumi::test::tmp_dir(), ec);
  return rc;
}
