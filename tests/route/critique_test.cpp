#include "route/critique.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"

namespace cogumi {
namespace {

// Arithmetic questions answered right (the true sum, confident) or wrong (an off sum, a
// rambling non-answer, or unsure tokens). Word features plus the log-prob signal separate them.
std::vector<CritiqueExample> constructed(uint64_t seed, int n) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> num(1, 50), kind(0, 2);
  std::normal_distribution<double> noise(0, 0.3);
  std::vector<CritiqueExample> out;
  for (int i = 0; i < n; ++i) {
    const int a = num(rng), b = num(rng);
    CritiqueExample e;
    e.question = "What is " + std::to_string(a) + " plus " + std::to_string(b) + "?";
    e.correct = i % 2 == 0;
    if (e.correct) {
      e.answer = "The answer is " + std::to_string(a + b) + ".";
      e.logprob_mean = -0.3 + noise(rng), e.logprob_min = -2 + noise(rng);
    } else if (kind(rng) == 0) {
      e.answer = "hmm maybe perhaps it could be unclear";
      e.extracted = false;
      e.logprob_mean = -2.5 + noise(rng), e.logprob_min = -9 + noise(rng);
    } else {
      e.answer = "I think maybe it is " + std::to_string(a + b + 7) + " perhaps.";
      e.logprob_mean = -1.8 + noise(rng), e.logprob_min = -7 + noise(rng);
    }
    out.push_back(e);
  }
  return out;
}

TEST(CritiqueTest, SeparatesRightFromWrongOnHeldOutItems) {
  const Critique c = Critique::train(constructed(1, 400), {});
  const CritiqueReport r = evaluate_critique(c, constructed(2, 200));
  EXPECT_EQ(r.n, 200u);
  EXPECT_GT(r.auc, 0.9);
  EXPECT_GT(r.accuracy, 0.85);
  EXPECT_GT(r.kept_accuracy, 0.85);
}

TEST(CritiqueTest, RocAucCountsTiesHalf) {
  EXPECT_DOUBLE_EQ(roc_auc({0.1, 0.9}, {false, true}), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.9, 0.1}, {false, true}), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc({0.5, 0.5}, {false, true}), 0.5);
  EXPECT_DOUBLE_EQ(roc_auc({0.2, 0.4}, {true, true}), 0.5);
}

TEST(CritiqueTest, SaveLoadRoundTripGivesIdenticalScores) {
  const Critique c = Critique::train(constructed(3, 200), {});
  const auto path = std::filesystem::temp_directory_path() / "cogumi_critique_test.json";
  c.save(path);
  const Critique d = Critique::load(path);
  std::filesystem::remove(path);
  EXPECT_EQ(d.min_score(), 7);
  for (const auto& e : constructed(4, 50)) {
    EXPECT_EQ(c.probability(e), d.probability(e));
    EXPECT_EQ(c.score(e), d.score(e));
  }
}

std::string error_of(const nlohmann::json& j) {
  try {
    Critique::from_json(j, "crit.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(CritiqueTest, BadFileErrorsNameTheField) {
  const nlohmann::json good = Critique::train(constructed(5, 60), {}).to_json();
  EXPECT_EQ(error_of(good), "");
  auto j = good;
  j["format"] = "cogumi-router";
  EXPECT_NE(error_of(j).find("'format'"), std::string::npos) << error_of(j);
  j = good;
  j["min_score"] = 11;
  EXPECT_NE(error_of(j).find("'min_score'"), std::string::npos) << error_of(j);
  j = good;
  j.erase("bias");
  EXPECT_NE(error_of(j).find("bias"), std::string::npos) << error_of(j);
  j = good;
  j["weights"] = nlohmann::json::array({nlohmann::json::array({1u << 30, 0.5})});
  EXPECT_NE(error_of(j).find("'weights'"), std::string::npos) << error_of(j);
  EXPECT_THROW(Critique::load("/nonexistent/crit.json"), Error);
}

TEST(CritiqueTest, TrainNeedsBothClassesAndValidOptions) {
  auto ex = constructed(6, 10);
  for (auto& e : ex) e.correct = true;
  EXPECT_THROW(Critique::train(ex, {}), Error);
  CritiqueTrainOptions o;
  o.min_score = 12;
  EXPECT_THROW(Critique::train(constructed(6, 10), o), Error);
}

TEST(CritiqueTest, KeepDropsLowScoresOnlyWhenAHighOneExists) {
  EXPECT_EQ(critique_keep({3, 8, 6, 7, 2}, 7), (std::vector<size_t>{1, 3}));
  EXPECT_EQ(critique_keep({3, 6, 2}, 7), (std::vector<size_t>{0, 1, 2}));  // none high: all vote
  EXPECT_EQ(critique_keep({9, 10}, 7), (std::vector<size_t>{0, 1}));
  EXPECT_EQ(critique_keep({}, 7), (std::vector<size_t>{}));
}

TEST(CritiqueTest, LoadsExamplesFromAnEvalRun) {
  const auto dir = std::filesystem::temp_directory_path() / "cogumi_critique_run";
  std::filesystem::create_directories(dir);
  {
    std::ofstream f(dir / "items.jsonl");
    f << R"({"question":"q1","output":"a1","correct":true,"extracted":"4","logprob_mean":-0.5,"logprob_min":-2})"
      << "\n"
      << R"({"question":"q2","output":"a2","correct":false,"extracted":null})" << "\n";
  }
  auto ex = load_critique_examples({dir});
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_TRUE(ex[0].correct && ex[0].extracted && ex[0].logprob_mean == -0.5);
  EXPECT_TRUE(!ex[1].correct && !ex[1].extracted && !ex[1].logprob_mean);
  {
    std::ofstream f(dir / "items.jsonl");
    f << R"({"question":"q1","output":"a1"})" << "\n";
  }
  try {
    load_critique_examples({dir});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'correct'"), std::string::npos) << e.what();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cogumi
