// Training on a pruned model with per-block shapes (a `deci` GGUF): LoRA and full SFT lower the
// loss, and what they write stays a deci model stock llama.cpp loads: the adapter (its
// general.architecture must be the base's), the LoRA merged into the base, the fully trained model.
#include <gguf.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/io.h"
#include "engine/generate.h"
#include "engine/logits.h"
#include "engine/model.h"
#include "test_util.h"
#include "train/deci_fixture.h"
#include "train/lora_merge.h"
#include "train/trainer.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

fs::path write_pairs() {
  const auto p = test::tmp_dir() / "deci-pairs.jsonl";
  std::ofstream f(p);
  for (const auto& [q, a] : std::vector<std::pair<std::string, std::string>>{{"What is two plus three?", "five"},
                                                                              {"Name a red fruit.", "apple"},
                                                                              {"Which is larger, 7 or 9?", "9"},
                                                                              {"Capital of France?", "Paris"}})
    f << nlohmann::json{{"instruction", q}, {"output", a}}.dump() << "\n";
  return p;
}

TrainOptions options(const std::string& out) {
  TrainOptions o;
  o.model = test::tiny_deci_model();
  o.data = {{write_pairs()}};
  o.out = test::tmp_dir() / out;
  o.sft.max_len = 48;
  o.batch = 4;
  o.progress = false;
  o.n_threads = 0;
  o.device = "cpu";
  return o;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

// The per-block widths a GGUF states (deci.feed_forward_length is an array there).
std::vector<int> ffn_widths(const fs::path& p) {
  gguf_context* g = gguf_init_from_file(p.c_str(), {true, nullptr});
  EXPECT_NE(g, nullptr);
  std::vector<int> out;
  const int64_t id = gguf_find_key(g, "deci.feed_forward_length");
  if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_ARRAY) {
    const auto* d = static_cast<const int32_t*>(gguf_get_arr_data(g, id));
    out.assign(d, d + gguf_get_arr_n(g, id));
  }
  gguf_free(g);
  return out;
}

TEST(DeciTrain, LoraLowersTheLossAndItsMergeIsTheModelLlamaCppServesWithTheAdapter) {
  TrainOptions o = options("deci-lora.gguf");
  o.lora.rank = 8;
  o.lora.alpha = 16;
  o.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
  o.max_steps = 40;
  o.lr = 1e-2f;
  const TrainResult r = train(o);
  ASSERT_EQ(r.steps, 40);
  EXPECT_EQ(r.n_skipped, 0);
  EXPECT_LT(r.last_loss, 0.5 * r.first_loss) << r.first_loss << " -> " << r.last_loss;
  EXPECT_EQ(lora_info(o.out)["arch"], "deci");

  // llama.cpp applies the adapter to the deci base (it refuses an adapter of another architecture)...
  auto base = Model::load(test::tiny_deci_model());
  base->load_adapter("r", o.out);
  const auto toks = base->tokenize("Question: What is two plus three? Answer: five", true);
  const auto with_adapter = model_logits(*base, toks, "r");
  EXPECT_GT(max_abs_diff(with_adapter, model_logits(*base, toks)), 1e-2);
  // ...and the merged model is a deci GGUF with the base's per-block widths that computes the same.
  const auto merged = test::tmp_dir() / "deci-merged.gguf";
  lora_merge(test::tiny_deci_model(), o.out, merged);
  EXPECT_EQ(ffn_widths(merged), (std::vector<int>{256, 96, 160, 32}));
  auto m = Model::load(merged);
  EXPECT_EQ(m->info().arch, "deci");
  EXPECT_LT(max_abs_diff(model_logits(*m, toks), with_adapter), 2e-3);
}

TEST(DeciTrain, FullSftLowersTheLossAndWritesADeciModelLlamaCppLoads) {
  TrainOptions o = options("deci-full.gguf");
  o.full = true;
  o.max_steps = 30;
  o.lr = 3e-3f;
  const TrainResult r = train(o);
  ASSERT_EQ(r.steps, 30);
  EXPECT_LT(r.last_loss, 0.5 * r.first_loss) << r.first_loss << " -> " << r.last_loss;
  EXPECT_EQ(ffn_widths(o.out), (std::vector<int>{256, 96, 160, 32}));
  auto m = Model::load(o.out);
  EXPECT_EQ(m->info().arch, "deci");
  auto before = Model::load(test::tiny_deci_model());
  const auto toks = m->tokenize("Capital of France?", true);
  EXPECT_GT(max_abs_diff(model_logits(*m, toks), model_logits(*before, toks)), 1e-2);  // the weights changed
}

}  // namespace
}  // namespace cogumi
