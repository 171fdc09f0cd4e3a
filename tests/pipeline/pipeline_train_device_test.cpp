// The pipeline's `device:` training setting: auto (the first GPU when the build has one, else the
// CPU) by default and out of the stage key, so runs made before it keep their trained modifiers;
// cpu/gpu/gpu:N in the key; bad values and a contradiction with cpu_only name the file and key.
#include <gtest/gtest.h>

#include <fstream>

#include "pipeline/config.h"
#include "test_util.h"

namespace cogumi {
namespace {

fs::path write_config(const std::string& name, const std::string& training, const std::string& top = "") {
  const fs::path dir = test::tmp_dir() / "pipeline-device";
  fs::create_directories(dir);
  std::ofstream(dir / name) << top << "base: {gguf: base.gguf}\n" << training
                            << "domains:\n"
                               "  math:\n"
                               "    test: {gsm8k: t.jsonl}\n"
                               "    mine: {gsm8k: m.jsonl}\n"
                               "  code:\n"
                               "    test: {humaneval: c.jsonl}\n"
                               "    sft: s.jsonl\n"
                               "    train: {device: gpu:1}\n";
  return dir / name;
}

TEST(PipelineTrainDevice, AutoByDefaultAndKeyedOnlyWhenSet) {
  const PipelineConfig c = PipelineConfig::load(write_config("auto.yaml", ""));
  EXPECT_EQ(c.domains[0].train.device, "auto");
  EXPECT_FALSE(c.domains[0].train.to_json().contains("device"));  // the key of runs before `device`
  EXPECT_EQ(c.domains[1].train.device, "gpu:1");
  EXPECT_EQ(c.domains[1].train.to_json().at("device"), "gpu:1");
  const PipelineConfig cpu = PipelineConfig::load(write_config("cpu.yaml", "training: {device: cpu}\n"));
  EXPECT_EQ(cpu.domains[0].train.device, "cpu");
  EXPECT_NE(cpu.domains[0].train.to_json(), c.domains[0].train.to_json());
}

TEST(PipelineTrainDevice, BadDeviceAndContradictionAreClearErrors) {
  const fs::path bad = write_config("bad.yaml", "training:\n  device: tpu\n");
  const std::string e = test::error_of([&] { PipelineConfig::load(bad); });
  EXPECT_NE(e.find(bad.string() + ":3"), std::string::npos) << e;
  EXPECT_NE(e.find("training.device"), std::string::npos) << e;
  EXPECT_NE(e.find("auto"), std::string::npos) << e;
  const fs::path both = write_config("both.yaml", "", "cpu_only: true\n");
  const std::string e2 = test::error_of([&] { PipelineConfig::load(both); });
  EXPECT_NE(e2.find("cpu_only: true and domain code's training device 'gpu:1' contradict"), std::string::npos) << e2;
}

}  // namespace
}  // namespace cogumi
