#include "engine/generate.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"

namespace cogumi {
namespace {

std::vector<GenRequest> greedy_requests(int n, int max_tokens, const std::string& shared = "") {
  const char* words[] = {"apples", "books", "the number", "def add", "Which statement", "total cost", "user", "tool"};
  std::vector<GenRequest> reqs;
  for (int i = 0; i < n; ++i) {
    GenRequest r;
    r.prompt = shared + "Question " + std::to_string(i) + ": " + words[i % 8] + " " + std::to_string(i * 7 % 13);
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    reqs.push_back(r);
  }
  return reqs;
}

class GenerateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = Model::load(test::tiny_model());
  }
  std::shared_ptr<Model> model_;
};

TEST_F(GenerateTest, BatchOf64MatchesOneByOne) {
  auto reqs = greedy_requests(64, 24);
  GeneratorOptions batched;
  batched.n_parallel = 64;
  Generator g64(model_, batched);
  auto many = g64.generate(reqs);

  GeneratorOptions single;
  single.n_parallel = 1;
  Generator g1(model_, single);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto one = g1.generate({reqs[i]});
    ASSERT_EQ(one[0].text, many[i].text) << "prompt " << i;
    EXPECT_EQ(many[i].n_gen_tokens, 24);
    EXPECT_EQ(many[i].finish, FinishReason::kLength);
  }
  EXPECT_EQ(g64.last_stats().n_gen_tokens, 64 * 24);
}

TEST_F(GenerateTest, BackendGreedyPicksWhatHostGreedyPicks) {
  // Greedy inside llama.cpp's graph (backend samplers) and the host argmax give the same text,
  // and a call that needs logits on the host (log-probs) in between still works.
  auto reqs = greedy_requests(16, 20);
  GeneratorOptions on, off;
  on.n_parallel = off.n_parallel = 8;
  on.backend_sampling = true;
  off.backend_sampling = false;
  Generator gon(model_, on), goff(model_, off);
  auto a = gon.generate(reqs);
  auto b = goff.generate(reqs);
  auto lp = reqs;
  for (auto& r : lp) r.n_logprobs = 1;
  auto c = gon.generate(lp);  // host path on the same generator
  auto d = gon.generate(reqs);  // and back to the backend path
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(a[i].text, b[i].text) << i;
    EXPECT_EQ(c[i].text, b[i].text) << i;
    EXPECT_EQ(d[i].text, b[i].text) << i;
    EXPECT_EQ(c[i].logprobs.size(), 20u);
  }
}

TEST_F(GenerateTest, ContinuousBatchingWithFewerSlotsThanRequests) {
  auto reqs = greedy_requests(20, 16);
  for (size_t i = 0; i < reqs.size(); ++i) reqs[i].max_tokens = 4 + int(i % 5) * 5;  // uneven lengths
  GeneratorOptions o;
  o.n_parallel = 3;
  auto a = Generator(model_, o).generate(reqs);
  o.n_parallel = 20;
  auto b = Generator(model_, o).generate(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(a[i].text, b[i].text) << i;
    EXPECT_EQ(a[i].n_gen_tokens, reqs[i].max_tokens);
  }
}

TEST_F(GenerateTest, SharedPrefixIsDecodedOnceAndChangesNothing) {
  std::string shared;
  for (int i = 0; i < 6; ++i) shared += "Question: how many apples? Answer: " + std::to_string(i * 3) + "\n";
  auto reqs = greedy_requests(12, 12, shared);
  GeneratorOptions o;
  o.n_parallel = 4;
  Generator with(model_, o);
  auto a = with.generate(reqs);
  EXPECT_GT(with.last_stats().n_prefix_reused, 12 * 30);
  o.shared_prefix = false;
  Generator without(model_, o);
  auto b = without.generate(reqs);
  EXPECT_EQ(without.last_stats().n_prefix_reused, 0);
  EXPECT_LT(with.last_stats().n_prompt_tokens, without.last_stats().n_prompt_tokens / 3);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(a[i].text, b[i].text) << i;
}

TEST_F(GenerateTest, StopStringEndsGenerationBeforeIt) {
  auto reqs = greedy_requests(1, 40);
  Generator g(model_);
  auto full = g.generate(reqs)[0].text;
  ASSERT_GT(full.size(), 20u);
  std::string stop = full.substr(10, 4);
  reqs[0].stop = {stop};
  auto r = g.generate(reqs)[0];
  EXPECT_EQ(r.finish, FinishReason::kStop);
  EXPECT_EQ(r.text, full.substr(0, full.find(stop)));
}

TEST_F(GenerateTest, StreamedPiecesConcatenateToTheResult) {
  auto reqs = greedy_requests(5, 30);
  reqs[2].stop = {"zzz-never"};
  std::vector<std::string> streamed(reqs.size());
  Generator g(model_);
  auto res = g.generate(reqs, [&](size_t i, const std::string& piece) {
    streamed[i] += piece;
    return true;
  });
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(streamed[i], res[i].text) << i;
}

TEST_F(GenerateTest, StreamCallbackCanStopOneRequest) {
  auto reqs = greedy_requests(3, 30);
  Generator g(model_);
  int calls = 0;
  auto res = g.generate(reqs, [&](size_t i, const std::string&) { return !(i == 1 && ++calls >= 3); });
  EXPECT_EQ(res[1].finish, FinishReason::kCancelled);
  EXPECT_LT(res[1].n_gen_tokens, 30);
  EXPECT_EQ(res[0].n_gen_tokens, 30);
}

TEST_F(GenerateTest, CancelFlagStopsEverything) {
  auto reqs = greedy_requests(6, 200);
  std::atomic<bool> cancel{false};
  Generator g(model_);
  auto res = g.generate(reqs, [&](size_t, const std::string&) {
    cancel = true;
    return true;
  }, &cancel);
  for (auto& r : res) {
    EXPECT_EQ(r.finish, FinishReason::kCancelled);
    EXPECT_LT(r.n_gen_tokens, 200);
  }
}

TEST_F(GenerateTest, LogprobsDescribeTheGreedyChoice) {
  auto reqs = greedy_requests(2, 8);
  reqs[0].n_logprobs = 3;
  Generator g(model_);
  auto r = g.generate(reqs);
  ASSERT_EQ(r[0].logprobs.size(), 8u);
  EXPECT_TRUE(r[1].logprobs.empty());
  std::string joined;
  for (const auto& lp : r[0].logprobs) {
    ASSERT_EQ(lp.top.size(), 3u);
    EXPECT_LE(lp.logprob, 0.0f);
    EXPECT_FLOAT_EQ(lp.top[0].second, lp.logprob);  // greedy picks the most likely token
    EXPECT_GE(lp.top[0].second, lp.top[1].second);
    EXPECT_GE(lp.top[1].second, lp.top[2].second);
    joined += lp.text;
  }
  EXPECT_EQ(joined, r[0].text);
}

TEST_F(GenerateTest, SamplingIsSeededAndTemperatureMatters) {
  auto reqs = greedy_requests(1, 30);
  reqs[0].sampling.temperature = 1.5f;
  reqs[0].sampling.top_k = 0;
  reqs[0].sampling.top_p = 1.0f;
  reqs[0].sampling.min_p = 0.0f;
  Generator g(model_);
  auto a = g.generate(reqs)[0].text;
  auto b = g.generate(reqs)[0].text;
  EXPECT_EQ(a, b);
  reqs[0].sampling.seed = 4242;
  auto c = g.generate(reqs)[0].text;
  EXPECT_NE(a, c);
}

TEST_F(GenerateTest, RepeatPenaltyChangesOutput) {
  auto reqs = greedy_requests(1, 40);
  Generator g(model_);
  auto plain = g.generate(reqs)[0].text;
  reqs[0].sampling.repeat_penalty = 3.0f;
  EXPECT_NE(g.generate(reqs)[0].text, plain);
}

TEST_F(GenerateTest, PromptLongerThanContextIsAPerRequestError) {
  GeneratorOptions o;
  o.n_ctx_per_seq = 64;
  Generator g(model_, o);
  auto reqs = greedy_requests(2, 8);
  for (int i = 0; i < 40; ++i) reqs[1].prompt += " the answer";
  auto r = g.generate(reqs);
  EXPECT_EQ(r[0].finish, FinishReason::kLength);
  EXPECT_EQ(r[1].finish, FinishReason::kError);
  EXPECT_NE(r[1].error.find("context holds 64 per sequence"), std::string::npos) << r[1].error;
}

TEST_F(GenerateTest, OutputStopsAtTheContextEnd) {
  GeneratorOptions o;
  o.n_ctx_per_seq = 48;
  Generator g(model_, o);
  auto r = g.generate(greedy_requests(1, 500))[0];
  EXPECT_EQ(r.finish, FinishReason::kLength);
  EXPECT_LE(r.n_prompt_tokens + r.n_gen_tokens, 48);
}

TEST_F(GenerateTest, AdaptersApplyPerRequestAndMixInOneCall) {
  model_->load_adapter("a", test::tiny_adapter());
  auto reqs = greedy_requests(6, 16);
  Generator g(model_);
  auto base = g.generate(reqs);
  auto with = reqs;
  for (auto& r : with) r.adapter = "a";
  auto adapted = g.generate(with);
  int changed = 0;
  for (size_t i = 0; i < reqs.size(); ++i) changed += adapted[i].text != base[i].text;
  EXPECT_GE(changed, 5);
  // Mixed: even requests with the adapter, odd without, in one call.
  auto mixed = reqs;
  for (size_t i = 0; i < mixed.size(); i += 2) mixed[i].adapter = "a";
  auto m = g.generate(mixed);
  for (size_t i = 0; i < mixed.size(); ++i) EXPECT_EQ(m[i].text, i % 2 == 0 ? adapted[i].text : base[i].text) << i;
  // Scale 0 is the base model.
  for (auto& r : with) r.adapter_scale = 0.0f;
  auto zero = g.generate(with);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_EQ(zero[i].text, base[i].text);
}

TEST_F(GenerateTest, UnknownAdapterThrowsBeforeRunning) {
  auto reqs = greedy_requests(2, 4);
  reqs[1].adapter = "nope";
  Generator g(model_);
  EXPECT_THROW(g.generate(reqs), Error);
}

}  // namespace
}  // namespace cogumi
