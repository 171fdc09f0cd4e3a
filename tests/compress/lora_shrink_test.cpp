// cogumi lora shrink: the truncated SVD of each adapter delta, written as a smaller adapter that
// llama.cpp loads. The error bound is Eckart-Young's: the Frobenius error equals the discarded
// singular values' energy, and keeping every singular value reproduces the delta.
#include <gtest/gtest.h>

#include <cmath>

#include "compress/lora_shrink.h"
#include "core/io.h"
#include "engine/adapter.h"
#include "engine/generate.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

// A random rank-8 adapter (B non-zero, so every delta has 8 comparable singular values).
const fs::path& rank8_adapter() {
  static const fs::path path = [] {
    fs::path p = test::tmp_dir() / "shrink-rank8.gguf";
    AdapterInitOptions o;
    o.rank = 8;
    o.alpha = 16.0f;
    o.targets = {"q", "v", "up", "down"};
    o.std_b = 0.05f;
    o.seed = 11;
    adapter_init(test::tiny_model(), p, o);
    return p;
  }();
  return path;
}

double frob_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(s);
}

double frob(const std::vector<float>& a) { return frob_diff(a, std::vector<float>(a.size(), 0.0f)); }

TEST(LoraShrink, ErrorEqualsDiscardedEnergy) {
  const fs::path out = test::tmp_dir() / "shrink-r3.gguf";
  LoraShrinkOptions o;
  o.rank = 3;
  const LoraShrinkResult r = lora_shrink(rank8_adapter(), out, o);
  ASSERT_EQ(r.tensors.size(), 8u);  // 4 modules x 2 layers
  for (const auto& t : r.tensors) {
    EXPECT_EQ(t.rank_in, 8);
    EXPECT_EQ(t.rank_out, 3);
    const std::vector<float> before = lora_delta(rank8_adapter(), t.name), after = lora_delta(out, t.name);
    double all = 0.0, discarded = 0.0;
    for (size_t i = 0; i < t.sigma.size(); ++i) {
      all += t.sigma[i] * t.sigma[i];
      if (i >= 3) discarded += t.sigma[i] * t.sigma[i];
    }
    // The singular values are those of the delta: their energy is its squared norm.
    EXPECT_NEAR(std::sqrt(all), frob(before), 1e-4 * frob(before)) << t.name;
    // The delta written back is off by exactly the discarded energy.
    const double err = frob_diff(before, after);
    EXPECT_GT(err, 0.1 * frob(before)) << t.name;  // a real truncation, not a copy
    EXPECT_NEAR(err, std::sqrt(discarded), 1e-4 * frob(before)) << t.name;
    EXPECT_NEAR(err, t.frob_error, 1e-4 * frob(before)) << t.name;
  }
  EXPECT_EQ(r.params_out * 8, r.params_in * 3);
  EXPECT_LT(fs::file_size(out), fs::file_size(rank8_adapter()));
}

TEST(LoraShrink, FullRankReproducesDeltaAndOutput) {
  for (int rank : {8, 64}) {
    const fs::path out = test::tmp_dir() / ("shrink-full" + std::to_string(rank) + ".gguf");
    LoraShrinkOptions o;
    o.rank = rank;
    const LoraShrinkResult r = lora_shrink(rank8_adapter(), out, o);
    for (const auto& t : r.tensors) {
      EXPECT_EQ(t.rank_out, 8) << "rank >= the original keeps the original";
      const std::vector<float> before = lora_delta(rank8_adapter(), t.name), after = lora_delta(out, t.name);
      EXPECT_LT(frob_diff(before, after), 1e-5 * frob(before)) << t.name;
    }
  }
  // llama.cpp loads the refactored adapter and greedy output is unchanged.
  auto model = Model::load(test::tiny_model());
  model->load_adapter("orig", rank8_adapter());
  model->load_adapter("full", test::tmp_dir() / "shrink-full8.gguf");
  Generator g(model);
  GenRequest a;
  a.prompt = "The quick brown fox";
  a.max_tokens = 12;
  a.ignore_eos = true;
  a.adapter = "orig";
  GenRequest b = a, base = a;
  b.adapter = "full";
  base.adapter = "";
  const auto res = g.generate({a, b, base});
  EXPECT_EQ(res[0].text, res[1].text);
  EXPECT_NE(res[0].text, res[2].text) << "the adapter must change the output for this check to mean anything";
}

TEST(LoraShrink, EnergyAndSizeTargets) {
  LoraShrinkOptions e;
  e.energy = 0.6;
  const LoraShrinkResult re = lora_shrink(rank8_adapter(), test::tmp_dir() / "shrink-e.gguf", e);
  for (const auto& t : re.tensors) {
    EXPECT_GE(t.energy_kept, 0.6) << t.name;
    double less = 0.0, all = 0.0;  // one singular value fewer would miss the target
    for (size_t i = 0; i < t.sigma.size(); ++i) {
      all += t.sigma[i] * t.sigma[i];
      if (int(i) < t.rank_out - 1) less += t.sigma[i] * t.sigma[i];
    }
    EXPECT_LT(less / all, 0.6) << t.name;
    EXPECT_LT(t.rank_out, 8) << t.name;
  }
  LoraShrinkOptions s;
  s.size_mb = 0.5 * double(lora_shrink(rank8_adapter(), test::tmp_dir() / "shrink-x.gguf", LoraShrinkOptions{8}).bytes_in) / 1e6;
  const fs::path out = test::tmp_dir() / "shrink-s.gguf";
  const LoraShrinkResult rs = lora_shrink(rank8_adapter(), out, s);
  EXPECT_LE(double(rs.bytes_out), s.size_mb * 1e6);
  EXPECT_GT(double(rs.bytes_out), 0.35 * s.size_mb * 2e6);  // the budget is used, not just rank 1
  auto model = Model::load(test::tiny_model());
  EXPECT_NO_THROW(model->load_adapter("s", out));  // uneven ranks load in llama.cpp
}

TEST(LoraShrink, ThreadsWriteTheSameAdapter) {
  // The tensors are factored on several threads at once; which thread took which must not show.
  std::string one;
  for (int threads : {1, 2, 3}) {
    const fs::path out = test::tmp_dir() / ("shrink-t" + std::to_string(threads) + ".gguf");
    LoraShrinkOptions o;
    o.energy = 0.9;
    o.n_threads = threads;
    lora_shrink(rank8_adapter(), out, o);
    const std::string bytes = read_file(out);
    ASSERT_FALSE(bytes.empty());
    if (threads == 1) one = bytes;
    EXPECT_EQ(bytes, one) << threads << " threads";
  }
  LoraShrinkOptions bad;
  bad.rank = 2;
  bad.n_threads = -1;
  EXPECT_NE(test::error_of([&] { lora_shrink(rank8_adapter(), test::tmp_dir() / "x.gguf", bad); })
                .find("--threads must be in [0, 4096], got -1"),
            std::string::npos);
}

TEST(LoraShrink, BadInputNamesTheProblem) {
  LoraShrinkOptions none;
  EXPECT_NE(test::error_of([&] { lora_shrink(rank8_adapter(), test::tmp_dir() / "x.gguf", none); })
                .find("exactly one of --rank, --energy, --size-mb"),
            std::string::npos);
  LoraShrinkOptions tiny;
  tiny.size_mb = 1e-6;
  EXPECT_NE(test::error_of([&] { lora_shrink(rank8_adapter(), test::tmp_dir() / "x.gguf", tiny); })
                .find("below the smallest adapter"),
            std::string::npos);
  LoraShrinkOptions r;
  r.rank = 2;
  EXPECT_NE(test::error_of([&] { lora_shrink(test::tiny_model(), test::tmp_dir() / "x.gguf", r); })
                .find("is not a LoRA adapter"),
            std::string::npos);
}

}  // namespace
}  // namespace cogumi
