#include "engine/embed.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "test_util.h"

namespace cogumi {
namespace {

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

TEST(Embed, BatchedVectorsMatchSingleAndAreNormalised) {
  auto m = Model::load(test::tiny_model());
  EmbedOptions o;
  o.n_seq = 4;
  Embedder e(m, o);
  std::vector<std::string> texts = {"apples and books", "def add(a, b): return a + b", "Which statement is true?",
                                    "call the tool", "the number 42", "apples and books"};
  auto all = e.embed(texts);
  ASSERT_EQ(all.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_EQ(int(all[i].size()), e.dim());
    EXPECT_NEAR(dot(all[i], all[i]), 1.0, 1e-4);
    auto one = e.embed({texts[i]})[0];
    for (int k = 0; k < e.dim(); ++k) ASSERT_NEAR(one[k], all[i][k], 1e-4) << i;
  }
  EXPECT_NEAR(dot(all[0], all[5]), 1.0, 1e-5);  // same text, same vector
  EXPECT_LT(dot(all[0], all[1]), 0.9999);
}

TEST(Embed, OptionsOutOfRangeAreNamed) {
  auto m = Model::load(test::tiny_model());
  auto message = [&](EmbedOptions o) {
    try {
      Embedder e(m, o);
    } catch (const Error& err) {
      return std::string(err.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message({.n_seq = 300}).find("n_seq"), std::string::npos);  // llama.cpp holds 256 sequences
  EXPECT_NE(message({.n_ctx_per_text = 4}).find("n_ctx_per_text"), std::string::npos);
  EXPECT_NE(message({.n_threads = -1}).find("n_threads"), std::string::npos);
}

}  // namespace
}  // namespace cogumi
