// Generator::serve (continuous admission): a request handed over while another decodes joins the
// running batch at the next step, finishes on its own schedule, and gives the tokens it gives
// alone; requests for different adapters share steps through the adapter slots (each sequence
// its own adapter); without the slots another adapter waits for the running ones.
#include <gtest/gtest.h>

#include <map>

#include "engine/generate.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(COGUMI_REPO_DIR) / "models";

class GeneratorServe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    engine_init();
    nano_ = Model::load(kModels / "nano-base.gguf");
    for (const char* m : {"math", "code"}) nano_->load_adapter(m, kModels / (std::string("nano-") + m + ".gguf"));
  }
  static void TearDownTestSuite() { nano_.reset(); }
  static std::shared_ptr<Model> nano_;

  static GenRequest request(const std::string& prompt, const std::string& adapter, int max_tokens) {
    GenRequest r;
    r.prompt = prompt;
    r.adapter = adapter;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;  // lengths fixed: the long one is long whatever the model says
    return r;
  }
  // Each request alone through the batch path (generate()), on a fresh context.
  static std::string alone(const GenRequest& r) {
    Generator g(nano_, {});
    return g.generate({r}).at(0).text;
  }
};
std::shared_ptr<Model> GeneratorServe::nano_;

// What a serve() run saw: the order requests finished in, their results, and how many engine
// steps (polls) passed between handing a request over and its first piece.
struct Trace {
  std::vector<uint64_t> done_order;
  std::map<uint64_t, GenResult> results;
  std::map<uint64_t, int> pieces, given_at_step, first_piece_step;
  int steps = 0;
  std::vector<int64_t> kv_at_done;  // the KV cells in use as each request finished
};

// Serves `first` at once and `later` at engine step `at_step` (request 0 has decoded at_step - 1
// tokens then, unless it is done).
Trace serve_arrivals(Generator& g, const std::vector<GenRequest>& first, const std::vector<GenRequest>& later,
                     int at_step) {
  Trace t;
  bool later_given = false;
  GenFeed feed;
  feed.poll = [&](std::vector<GenJob>& admit, bool idle) {
    ++t.steps;
    if (t.steps == 1)
      for (size_t i = 0; i < first.size(); ++i) admit.push_back({i, first[i], nullptr}), t.given_at_step[i] = 1;
    if (!later_given && (t.steps >= at_step || t.results.count(0))) {
      for (size_t i = 0; i < later.size(); ++i) {
        const uint64_t id = first.size() + i;
        admit.push_back({id, later[i], nullptr});
        t.given_at_step[id] = t.steps;
      }
      later_given = true;
    }
    return !(idle && later_given && admit.empty());
  };
  feed.on_piece = [&](uint64_t id, const std::string&) {
    if (t.pieces[id]++ == 0) t.first_piece_step[id] = t.steps;
    return true;
  };
  feed.on_done = [&](uint64_t id, GenResult r) {
    t.kv_at_done.push_back(g.kv_cells_used());
    t.done_order.push_back(id);
    t.results[id] = std::move(r);
  };
  g.serve(feed);
  return t;
}

TEST_F(GeneratorServe, ANewcomerJoinsTheRunningBatchFinishesFirstAndAnswersAsAlone) {
  const GenRequest longer = request("Tom has 3 apples and buys 5 more. How many", "math", 64);
  const GenRequest shorter = request("def add(a, b):", "code", 6);
  Generator g(nano_, {});
  const Trace t = serve_arrivals(g, {longer}, {shorter}, 10);
  ASSERT_EQ(t.done_order.size(), 2u);
  EXPECT_EQ(t.done_order[0], 1u) << "the short request waited for the long one";
  EXPECT_EQ(t.given_at_step.at(1), 10) << "handed over before the long one ended";
  EXPECT_TRUE(g.last_stats().mixed_adapters);  // math and code tokens in the same steps
  // Its first token came the step after it was handed over (its prompt decoded beside the long
  // request's next token), not after the long request's 64 tokens.
  EXPECT_LE(t.first_piece_step.at(1) - t.given_at_step.at(1), 1);
  EXPECT_EQ(t.results.at(0).n_gen_tokens, 64);
  EXPECT_EQ(t.results.at(1).n_gen_tokens, 6);
  EXPECT_EQ(t.results.at(0).text, alone(longer));
  EXPECT_EQ(t.results.at(1).text, alone(shorter));
  // The short one's cells were freed when it finished (only the long one's held then); none
  // once the long one finished, while serve() still ran.
  ASSERT_EQ(t.kv_at_done.size(), 2u);
  EXPECT_GT(t.kv_at_done[0], 0);
  EXPECT_LT(t.kv_at_done[0], t.results.at(0).n_prompt_tokens + 64);
  EXPECT_EQ(t.kv_at_done[1], 0);
  EXPECT_EQ(g.kv_cells_used(), 0);
}

TEST_F(GeneratorServe, MoreRequestsThanSlotsTakeFreedSlotsAndAnswerAsAlone) {
  GeneratorOptions o;
  o.n_parallel = 2;
  Generator g(nano_, o);
  std::vector<GenRequest> first = {request("What is 12 times 4?", "", 24), request("def add(a, b):", "code", 5)};
  std::vector<GenRequest> later = {request("Tom has 3 apples.", "math", 7), request("Which is a mammal?", "", 9),
                                   request("Write a function that reverses a list", "code", 4)};
  const Trace t = serve_arrivals(g, first, later, 3);
  ASSERT_EQ(t.results.size(), 5u);
  std::vector<GenRequest> all = first;
  all.insert(all.end(), later.begin(), later.end());
  for (uint64_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(t.results.at(i).finish, FinishReason::kLength) << i;
    EXPECT_EQ(t.results.at(i).text, alone(all[i])) << i;
  }
}

TEST_F(GeneratorServe, BadAndCancelledRequestsFinishAloneTheRestGoOn) {
  Generator g(nano_, {});
  std::atomic<bool> stop{false};
  std::map<uint64_t, GenResult> out;
  int polls = 0;
  GenFeed feed;
  feed.poll = [&](std::vector<GenJob>& admit, bool idle) {
    if (++polls == 1) {
      GenRequest outside = request("", "", 4), unknown = request("hi", "no-such-adapter", 4);
      outside.prompt_tokens = {1, nano_->n_vocab() + 5};
      admit.push_back({0, request("What is 12 times 4?", "", 30), nullptr});
      admit.push_back({1, request("def add(a, b):", "", 200), &stop});
      admit.push_back({2, outside, nullptr});
      admit.push_back({3, unknown, nullptr});
    }
    if (polls == 5) stop = true;
    return polls == 1 || !idle;
  };
  feed.on_done = [&](uint64_t id, GenResult r) { out[id] = std::move(r); };
  g.serve(feed);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].finish, FinishReason::kLength);
  EXPECT_EQ(out[0].text, alone(request("What is 12 times 4?", "", 30)));
  EXPECT_EQ(out[1].finish, FinishReason::kCancelled);
  EXPECT_LT(out[1].n_gen_tokens, 200);
  EXPECT_EQ(out[2].finish, FinishReason::kError);
  EXPECT_NE(out[2].error.find("outside the vocabulary"), std::string::npos) << out[2].error;
  EXPECT_EQ(out[3].finish, FinishReason::kError);
  EXPECT_NE(out[3].error.find("no-such-adapter"), std::string::npos) << out[3].error;
}

TEST_F(GeneratorServe, WithoutAdapterSlotsAnotherAdapterWaitsForTheRunningOnes) {
  GeneratorOptions o;
  o.mixed_adapters = false;
  Generator g(nano_, o);
  const GenRequest longer = request("Tom has 3 apples and buys 5 more. How many", "math", 32);
  const GenRequest same = request("What is 12 times 4?", "math", 4), other = request("def add(a, b):", "code", 4);
  const Trace t = serve_arrivals(g, {longer}, {other, same}, 4);
  ASSERT_EQ(t.done_order.size(), 3u);
  // The request for the context's adapter joins (and, shorter, ends first); the other adapter's
  // waits until the context is free to switch.
  EXPECT_EQ(t.done_order, (std::vector<uint64_t>{0, 1, 2})) << "FIFO: the code request waits for the math one, the math one behind it too";
  EXPECT_FALSE(g.last_stats().mixed_adapters);
  EXPECT_EQ(t.results.at(0).text, alone(longer));
  EXPECT_EQ(t.results.at(1).text, alone(other));
  EXPECT_EQ(t.results.at(2).text, alone(same));
}

// A conversation's turns, each sent when the one before has answered (as a chat client does): the
// next turn starts with the whole history, whose KV cache the slot kept, so only the new part is
// decoded; it answers as alone. A turn for another adapter computes its own.
TEST_F(GeneratorServe, ANextTurnReusesTheHistorysCacheAndAnswersAsAlone) {
  GeneratorOptions o;
  o.n_parallel = 3;
  Generator g(nano_, o);
  std::vector<GenRequest> turns = {request("Tom has 3 apples and buys 5 more. How many apples does he have?", "", 16)};
  std::map<uint64_t, GenResult> out;
  GenFeed feed;
  size_t given = 0;
  feed.poll = [&](std::vector<GenJob>& admit, bool idle) {
    if (given == out.size() && given < 4) {
      if (given > 0) {  // the history so far, the answer, and a new question
        GenRequest next = request(turns.back().prompt + out.at(given - 1).text + "\nAnd then he eats 2. How many?",
                                  given == 3 ? "math" : "", 16);
        turns.push_back(next);
      }
      admit.push_back({given, turns[given], nullptr});
      ++given;
    }
    return given < 4 || !idle || out.size() < 4;
  };
  feed.on_done = [&](uint64_t id, GenResult r) { out[id] = std::move(r); };
  g.serve(feed);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out.at(0).n_cached_tokens, 0);
  for (uint64_t i = 1; i < 3; ++i) {
    // Turn i's prompt is turn i-1's prompt and answer plus a question: most of it was cached.
    EXPECT_GT(out.at(i).n_cached_tokens, out.at(i - 1).n_prompt_tokens) << i;
    EXPECT_LT(out.at(i).n_cached_tokens, out.at(i).n_prompt_tokens) << i;
  }
  EXPECT_EQ(out.at(3).n_cached_tokens, 0) << "another adapter's turn reused the base's cache";
  for (uint64_t i = 0; i < 4; ++i) EXPECT_EQ(out.at(i).text, alone(turns[i])) << i;
  EXPECT_GT(g.last_stats().n_prefix_reused, 0);
}

// Two conversations with the same long system prompt, turns sent one after another (A, B, A): B's
// first turn must not take and cut the slot holding A's history while another slot is free (it
// copies the shared part instead), so A's next turn still finds its whole history.
TEST_F(GeneratorServe, ANewConversationDoesNotCutAnotherOnesHistory) {
  GeneratorOptions o;
  o.n_parallel = 2;
  Generator g(nano_, o);
  std::string system;
  for (int i = 0; i < 6; ++i) system += "Rule " + std::to_string(i) + ": answer with the number only. ";
  std::vector<GenRequest> sent;
  std::map<uint64_t, GenResult> out;
  GenFeed feed;
  feed.poll = [&](std::vector<GenJob>& admit, bool idle) {
    if (sent.size() == out.size() && sent.size() < 3) {
      if (sent.empty()) sent.push_back(request(system + "Tom has 3 apples and buys 5 more. How many?", "", 24));
      else if (sent.size() == 1) sent.push_back(request(system + "Mia has 9 pens and loses 4. How many?", "", 24));
      else sent.push_back(request(sent[0].prompt + out.at(0).text + "\nAnd then he eats 2. How many?", "", 8));
      admit.push_back({sent.size() - 1, sent.back(), nullptr});
    }
    return sent.size() < 3 || !idle || out.size() < 3;
  };
  feed.on_done = [&](uint64_t id, GenResult r) { out[id] = std::move(r); };
  g.serve(feed);
  ASSERT_EQ(out.size(), 3u);
  // B reused the system prompt (copied from A's slot), A's next turn all of its first turn.
  EXPECT_GT(out.at(1).n_cached_tokens, 0);
  EXPECT_LT(out.at(1).n_cached_tokens, out.at(0).n_prompt_tokens);
  EXPECT_GT(out.at(2).n_cached_tokens, out.at(0).n_prompt_tokens);
  for (uint64_t i = 0; i < 3; ++i) EXPECT_EQ(out.at(i).text, alone(sent[i])) << i;
}

}  // namespace
}  // namespace cogumi
