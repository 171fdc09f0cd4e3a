// The pipeline's `checkpoint_activations:` training setting (the trainer's --checkpoint-activations):
// off by default and then out of the stage key, so earlier runs keep their trained modifiers; in
// the key when on, per modifier or for all of them; a bad value names the file, line and key.
#include <gtest/gtest.h>

#include <fstream>

#include "pipeline/config.h"
#include "test_util.h"
#include "train/trainer.h"

namespace cogumi {
namespace {

fs::path write_config(const std::string& name, const std::string& training) {
  const fs::path dir = test::tmp_dir() / "pipeline-checkpoint";
  fs::create_directories(dir);
  std::ofstream(dir / name) << "base: {gguf: base.gguf}\n" << training
                            << "domains:\n"
                               "  math:\n"
                               "    test: {gsm8k: t.jsonl}\n"
                               "    mine: {gsm8k: m.jsonl}\n"
                               "  code:\n"
                               "    test: {humaneval: c.jsonl}\n"
                               "    sft: s.jsonl\n"
                               "    train: {checkpoint_activations: true}\n";
  return dir / name;
}

TEST(PipelineTrainCheckpoint, OffByDefaultAndKeyedOnlyWhenOn) {
  const PipelineConfig c = PipelineConfig::load(write_config("default.yaml", ""));
  EXPECT_FALSE(c.domains[0].train.checkpoint_activations);
  EXPECT_FALSE(c.domains[0].train.to_json().contains("checkpoint_activations"));  // the key of earlier runs
  EXPECT_TRUE(c.domains[1].train.checkpoint_activations);
  EXPECT_EQ(c.domains[1].train.to_json().at("checkpoint_activations"), true);
  const PipelineConfig all = PipelineConfig::load(write_config("all.yaml", "training: {checkpoint_activations: true}\n"));
  EXPECT_TRUE(all.domains[0].train.checkpoint_activations);
  EXPECT_NE(all.domains[0].train.to_json(), c.domains[0].train.to_json());
}

// checkpoint_blocks (the trainer's --checkpoint-blocks): keyed only when set; a domain's setting replaces the
// other kind inherited from `training:`; both on in one place is an error naming the key.
TEST(PipelineTrainCheckpoint, CheckpointBlocksKeyedAndExclusive) {
  const PipelineConfig c = PipelineConfig::load(write_config("blocks.yaml", "training: {checkpoint_blocks: 16}\n"));
  EXPECT_EQ(c.domains[0].train.checkpoint_blocks, 16);
  EXPECT_EQ(c.domains[0].train.to_json().at("checkpoint_blocks"), 16);
  EXPECT_FALSE(c.domains[0].train.checkpoint_activations);
  EXPECT_TRUE(c.domains[1].train.checkpoint_activations);  // code's own setting replaces the inherited blocks
  EXPECT_EQ(c.domains[1].train.checkpoint_blocks, 0);
  EXPECT_FALSE(c.domains[1].train.to_json().contains("checkpoint_blocks"));
  const fs::path both = write_config("both.yaml", "training:\n  checkpoint_activations: true\n  checkpoint_blocks: 4\n");
  const std::string e = test::error_of([&] { PipelineConfig::load(both); });
  EXPECT_NE(e.find("training.checkpoint_blocks"), std::string::npos) << e;
  EXPECT_NE(e.find("give one"), std::string::npos) << e;
  // a domain's explicit off replaces the inherited setting of either kind
  const fs::path off = write_config("off.yaml", "training: {checkpoint_blocks: 16}\n");
  {
    std::ofstream(off, std::ios::app) << "  reasoning:\n    test: {mmlu: r.csv}\n    sft: s.jsonl\n"
                                         "    train: {checkpoint_activations: false}\n";
  }
  const PipelineConfig o = PipelineConfig::load(off);
  ASSERT_EQ(o.domains.size(), 3u);
  EXPECT_EQ(o.domains[2].train.checkpoint_blocks, 0);
  EXPECT_FALSE(o.domains[2].train.checkpoint_activations);
  // auto: the fewest that fit the device, resolved when the modifier trains; keyed as "auto"
  const PipelineConfig a = PipelineConfig::load(write_config("auto.yaml", "training: {checkpoint_blocks: auto}\n"));
  EXPECT_EQ(a.domains[0].train.checkpoint_blocks, TrainOptions::kCheckpointBlocksAuto);
  EXPECT_EQ(a.domains[0].train.to_json().at("checkpoint_blocks"), "auto");
  const fs::path range = write_config("range.yaml", "training:\n  checkpoint_blocks: -1\n");
  EXPECT_NE(test::error_of([&] { PipelineConfig::load(range); }).find("training.checkpoint_blocks"), std::string::npos);
}

TEST(PipelineTrainCheckpoint, BadValueIsAClearError) {
  const fs::path bad = write_config("bad.yaml", "training:\n  checkpoint_activations: sometimes\n");
  const std::string e = test::error_of([&] { PipelineConfig::load(bad); });
  EXPECT_NE(e.find(bad.string() + ":3"), std::string::npos) << e;
  EXPECT_NE(e.find("training.checkpoint_activations"), std::string::npos) << e;
  EXPECT_NE(e.find("true or false"), std::string::npos) << e;
}

}  // namespace
}  // namespace cogumi
