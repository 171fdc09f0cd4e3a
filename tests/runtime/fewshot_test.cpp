// Few-shot retrieval: the vector index (exact and HNSW), the bank and its persisted index, the
// leakage guard, bank building from training data and session memory, and demonstrations in the
// prompts the runtime and `eval --system` build.
#include "runtime/fewshot.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "core/io.h"
#include "data/synth.h"
#include "engine/model.h"
#include "runtime/eval_system.h"
#include "runtime/fewshot_build.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;
const fs::path kBase = fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf";

fs::path dir(const std::string& name) {
  const fs::path p = test::tmp_dir() / "fewshot" / name;
  fs::create_directories(p);
  return p;
}

std::vector<float> random_unit_rows(size_t n, int d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g;
  std::vector<float> v(n * size_t(d));
  for (size_t i = 0; i < n; ++i) {
    double s = 0;
    for (int j = 0; j < d; ++j) s += double(v[i * d + j] = g(rng)) * v[i * d + j];
    for (int j = 0; j < d; ++j) v[i * d + j] /= float(std::sqrt(s));
  }
  return v;
}

TEST(FewshotIndex, ExactSearchReturnsTheTrueNearestInOrder) {
  // Row i points at angle i degrees in a plane: the nearest to a query at 40.2 degrees are rows
  // 40, 41, 39, 42, 38 in that order.
  const int n = 90;
  std::vector<float> rows;
  for (int i = 0; i < n; ++i) {
    const double a = i * M_PI / 180;
    rows.insert(rows.end(), {float(std::cos(a)), float(std::sin(a)), 0.0f});
  }
  VectorIndex ix(3);
  ix.add(rows.data(), n);
  ix.build();
  EXPECT_FALSE(ix.approximate());  // small sets are searched exactly
  const double a = 40.2 * M_PI / 180;
  const float q[3] = {float(std::cos(a)), float(std::sin(a)), 0};
  auto hits = ix.search(q, 5);
  ASSERT_EQ(hits.size(), 5u);
  const uint32_t want[5] = {40, 41, 39, 42, 38};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(hits[i].row, want[i]) << i;
  EXPECT_NEAR(hits[0].score, std::cos(0.2 * M_PI / 180), 1e-5);
  EXPECT_EQ(ix.search(q, 500).size(), size_t(n));  // k above the set: every row once
}

TEST(FewshotIndex, HnswAgreesWithExactSearch) {
  const int d = 32;
  const size_t n = 3000;
  auto rows = random_unit_rows(n, d, 1);
  IndexOptions o;
  o.exact_below = 1000;
  VectorIndex ix(d, o);
  ix.add(rows.data(), n);
  ix.build();
  ASSERT_TRUE(ix.approximate());
  auto queries = random_unit_rows(200, d, 2);
  double recall = 0;
  for (size_t i = 0; i < 200; ++i) {
    const float* q = queries.data() + i * d;
    recall += recall_at_k(ix.search_exact(q, 10), ix.search(q, 10));
  }
  recall /= 200;
  EXPECT_GE(recall, 0.95);
  // A stored row finds itself first.
  EXPECT_EQ(ix.search(ix.row(1234), 1)[0].row, 1234u);

  const fs::path stem = dir("index") / "d0";
  ix.save(stem);
  VectorIndex back = VectorIndex::load(stem, d, n, o);
  EXPECT_TRUE(back.approximate());
  for (size_t i = 0; i < 20; ++i) {
    const float* q = queries.data() + i * d;
    auto a = ix.search(q, 5), b = back.search(q, 5);
    ASSERT_EQ(a.size(), b.size());
    for (size_t j = 0; j < a.size(); ++j) EXPECT_EQ(a[j].row, b[j].row);
  }
  EXPECT_NE(test::error_of([&] { VectorIndex::load(stem, d, n + 1, o); }).find("d0.vec"),
            std::string::npos);
  // A truncated graph file is rebuilt from the vectors, not read.
  fs::resize_file(stem.string() + ".hnsw", 1000);
  VectorIndex rebuilt = VectorIndex::load(stem, d, n, o);
  EXPECT_TRUE(rebuilt.approximate());
  EXPECT_EQ(rebuilt.search(ix.row(77), 1)[0].row, 77u);
}

fs::path write_lines(const fs::path& p, const std::vector<std::string>& lines) {
  std::string s;
  for (auto& l : lines) s += l + "\n";
  write_file_atomic(p, s);
  return p;
}

std::string entry(const std::string& domain, const std::string& prompt,
                  const std::string& completion, const std::string& id) {
  return nlohmann::json{
      {"domain", domain}, {"prompt", prompt}, {"completion", completion}, {"id", id}}
      .dump();
}

std::vector<std::string> ids(const std::vector<Retrieved>& r) {
  std::vector<std::string> out;
  for (auto& x : r) out.push_back(x.entry->id);
  return out;
}

TEST(FewshotBank, PersistsReloadsAndRebuildsWhenTheJsonlChanges) {
  const fs::path bank = write_lines(
      dir("persist") / "bank.jsonl",
      {entry("math", "Question: Ann has 3 apples and buys 4 more apples. How many apples?\nAnswer:",
             " 3 + 4 = 7\n#### 7", "a"),
       entry("math", "Question: A train goes 60 miles per hour for 2 hours. How far?\nAnswer:",
             " 60 * 2 = 120\n#### 120", "b"),
       entry("code", "def add(a, b):\n", "    return a + b\n", "c")});
  FewshotOptions o;
  o.bank = bank;
  o.k = 2;
  {
    FewshotBank b = FewshotBank::open(o);
    EXPECT_TRUE(b.stats().rebuilt);
    EXPECT_TRUE(b.stats().saved);
    EXPECT_EQ(b.size("math"), 2u);
    EXPECT_EQ(b.domains(), (std::vector<std::string>{"code", "math"}));
    auto r = b.retrieve(
        "math", "Question: Bo has 5 apples and buys 2 more apples. How many apples?\nAnswer:", 2);
    EXPECT_EQ(ids(r), (std::vector<std::string>{"a", "b"}));
    EXPECT_TRUE(b.retrieve("poetry", "x", 2).empty());
  }
  EXPECT_TRUE(fs::exists(bank_index_dir(bank) / "meta.json"));
  {
    FewshotBank b = FewshotBank::open(o);
    EXPECT_FALSE(b.stats().rebuilt);  // the saved index is used as it is
    EXPECT_EQ(ids(b.retrieve("math", "Question: Bo has 5 apples and buys 2 more apples?", 1)),
              (std::vector<std::string>{"a"}));
  }
  // An edited bank (a new, nearer example) invalidates the index.
  std::ofstream(bank, std::ios::app)
      << entry("math", "Question: Bo has 5 apples and buys 2 more apples. How many pears?\nAnswer:",
               " 0\n#### 0", "d")
      << "\n";
  {
    FewshotBank b = FewshotBank::open(o);
    EXPECT_TRUE(b.stats().rebuilt);
    EXPECT_EQ(
        ids(b.retrieve(
            "math",
            "Question: Bo has 5 apples and buys 2 more apples. How many apples?\nAnswer:", 1)),
        (std::vector<std::string>{"d"}));
  }
  // So do other embedding settings.
  o.dim = 128;
  EXPECT_TRUE(FewshotBank::open(o).stats().rebuilt);
}

TEST(FewshotBank, NeverReturnsTheQueryItself) {
  const std::string q =
      "Question: Dee has 4 jars of stickers. Each jar holds 3 stickers. How many stickers does Dee "
      "have?\nAnswer:";
  const fs::path bank = write_lines(
      dir("leak") / "bank.jsonl",
      {entry("math", q, " 4 * 3 = 12\n#### 12", "self"),
       // the same text with other spacing and case: still the query
       entry("math",
             "question:  Dee has 4 jars of stickers.\nEach jar holds 3 stickers. How many stickers "
             "does Dee have?  Answer:",
             " 12\n#### 12", "self-respaced"),
       entry("math",
             "Question: Dee has 5 jars of stickers. Each jar holds 3 stickers. How many stickers "
             "does Dee have?\nAnswer:",
             " 5 * 3 = 15\n#### 15", "near"),
       entry("math", "Question: Tom runs 3 miles a day for 7 days. How many miles?\nAnswer:",
             " 21\n#### 21", "far")});
  FewshotOptions o;
  o.bank = bank;
  FewshotBank b = FewshotBank::open(o);
  EXPECT_EQ(ids(b.retrieve("math", q, 3)), (std::vector<std::string>{"near", "far"}));
  // Exact search (no graph) excludes it the same way.
  EXPECT_EQ(ids(b.retrieve("math", q, 1, true)), (std::vector<std::string>{"near"}));
}

TEST(FewshotBank, BadLinesNameTheFileAndLine) {
  const fs::path d = dir("bad");
  FewshotOptions o;
  auto err = [&](const std::vector<std::string>& lines) {
    o.bank = write_lines(d / "bank.jsonl", lines);
    return test::error_of([&] { FewshotBank::open(o); });
  };
  const std::string ok = entry("math", "Question: 1?\nAnswer:", " 1", "x");
  EXPECT_NE(err({ok, R"({"prompt": "p", "completion": "c"})"}).find("bank.jsonl:2"),
            std::string::npos);
  EXPECT_NE(err({ok, ok, R"({"domain": "math", "prompt": "p"})"})
                .find("bank.jsonl:3: missing field 'completion'"),
            std::string::npos)
      << err({ok, ok, R"({"domain": "math", "prompt": "p"})"});
  EXPECT_NE(err({ok, "{not json"}).find("bank.jsonl:2"), std::string::npos);
  EXPECT_NE(err({R"({"domain": "math", "prompt": "  ", "completion": "c"})"})
                .find("bank.jsonl:1: 'prompt' is empty"),
            std::string::npos);
  o.bank = d / "missing.jsonl";
  EXPECT_NE(test::error_of([&] { FewshotBank::open(o); }).find("missing.jsonl"), std::string::npos);
  o.bank = d / "bank.jsonl";
  o.k = 99;
  EXPECT_NE(test::error_of([&] { FewshotBank::open(o); }).find("fewshot.k"), std::string::npos);
}

TEST(FewshotBank, DemonstrationsAreCutToTheSizeCapNearestKept) {
  const fs::path bank = write_lines(
      dir("cap") / "bank.jsonl",
      {entry("math", "Question: Ann has 3 red apples.\nAnswer:", " 3\n#### 3", "near"),
       entry("math", "Question: Ann has 3 green pears and some red apples.\nAnswer:", " 3\n#### 3",
             "far")});
  FewshotOptions o;
  o.bank = bank;
  o.k = 2;
  FewshotBank b = FewshotBank::open(o);
  auto demos = b.demonstrations("math", "Question: Ann has 4 red apples.\nAnswer:");
  ASSERT_EQ(ids(demos), (std::vector<std::string>{"near", "far"}));
  // Completion form: farthest first, the nearest right before the request's own prompt.
  EXPECT_EQ(demonstration_text(demos),
            "Question: Ann has 3 green pears and some red apples.\nAnswer: 3\n#### 3\n\n"
            "Question: Ann has 3 red apples.\nAnswer: 3\n#### 3\n\n");
  o.max_chars = 60;
  EXPECT_EQ(
      ids(FewshotBank::open(o).demonstrations("math", "Question: Ann has 4 red apples.\nAnswer:")),
      (std::vector<std::string>{"near"}));
  o.domains = {"code"};  // math is not a few-shot domain
  EXPECT_TRUE(
      FewshotBank::open(o).demonstrations("math", "Question: Ann has 4 red apples.").empty());
}

TEST(FewshotBank, ChatDemonstrationsAreEarlierTurnsInTheModelsTemplate) {
  const fs::path bank =
      write_lines(dir("chat") / "bank.jsonl",
                  {entry("general", "What is the capital of France?", "Paris.", "fr"),
                   entry("general", "What is the capital of Spain?", "Madrid.", "es")});
  FewshotOptions o;
  o.bank = bank;
  o.k = 1;
  FewshotBank b = FewshotBank::open(o);
  auto demos = b.demonstrations("general", "What is the capital of Italy?");
  ASSERT_EQ(demos.size(), 1u);
  engine_init();
  auto model = Model::load(kBase, {});
  const std::string text =
      model
          ->tokenize_chat(demonstration_messages(demos, {{"user", "hi"}, {"assistant", "hello"}},
                                                 "What is the capital of Italy?"))
          .text;
  const std::string want =
      "<|im_start|>user\n" + demos[0].entry->prompt + "<|im_end|>\n<|im_start|>assistant\n" +
      demos[0].entry->completion +
      "<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
      "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nWhat is the capital of "
      "Italy?<|im_end|>\n<|im_start|>assistant\n";
  EXPECT_EQ(text, want);
}

// A small nano curriculum: banks from its training sets, queries from its test sets.
const fs::path& nano_data() {
  static const fs::path d = [] {
    const fs::path p = dir("nano-data");
    SynthOptions o;
    o.n_train = 300, o.n_dev = 10, o.n_test = 10, o.n_mix = 20;
    synth_write(p, o);
    return p;
  }();
  return d;
}

TEST(FewshotBuild, BanksFromBenchmarkFilesTrainingJsonlAndGoodAnswers) {
  const fs::path d = nano_data();
  auto bench = bank_entries_from_source("math=gsm8k:" + (d / "math/train.jsonl").string(), 5);
  ASSERT_EQ(bench.size(), 5u);
  EXPECT_EQ(bench[0].domain, "math");
  EXPECT_EQ(bench[0].prompt.rfind("Question: ", 0), 0u);
  EXPECT_NE(bench[0].completion.find("#### "), std::string::npos);
  // The training JSONL form gives the same examples (the mix is asked as eval asks).
  auto mix = bank_entries_from_source("math=" + (d / "mix/math.jsonl").string(), 5);
  ASSERT_EQ(mix.size(), 5u);
  EXPECT_EQ(mix[0].prompt, bench[0].prompt);
  EXPECT_EQ(mix[0].completion, bench[0].completion);
  EXPECT_NE(test::error_of([&] {
              bank_entries_from_source("math=" + (d / "nope.jsonl").string());
            }).find("nope.jsonl"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { bank_entries_from_source("nodomain"); }).find("DOMAIN="),
            std::string::npos);

  // Session memory: only the thumbs-up answer becomes an example, asked in its choice's form.
  const fs::path sd = dir("memory");
  const fs::path db = sd / "sessions.db";
  const fs::path sys = write_lines(
      sd / "system.yaml", {"base: " + kBase.string(), "default: math",
                           "choices:", "  math: {ask_as: gsm8k}", "  chat: {ask_as: chat}"});
  {
    SessionStore s = SessionStore::open(db);
    const std::string id = s.create_session();
    auto turn = [&](const std::string& role, const std::string& text, const std::string& choice) {
      Turn t;
      t.role = role, t.content = text, t.choice = choice;
      return s.append_turn(id, t);
    };
    turn("user", "Sam has 3 cards and gets 2 more. How many cards?", "");
    s.record_feedback(turn("assistant", " 3 + 2 = 5\n#### 5", "math"), 1);
    turn("user", "Sam has 9 cards and loses 2. How many cards?", "");
    s.record_feedback(turn("assistant", " 9 + 2 = 11\n#### 11", "math"), -1);
    turn("user", "Say hi", "");
    s.record_feedback(turn("assistant", "Hi!", "chat"), 1);
  }
  auto good = bank_entries_from_memory(db, sys);
  ASSERT_EQ(good.size(), 2u);
  EXPECT_EQ(good[0].domain, "math");
  EXPECT_EQ(good[0].prompt, "Question: Sam has 3 cards and gets 2 more. How many cards?\nAnswer:");
  EXPECT_EQ(good[0].completion, " 3 + 2 = 5\n#### 5");
  EXPECT_EQ(good[0].source, "memory");
  EXPECT_EQ(good[1].prompt, "Say hi");

  FewshotBuildOptions bo;
  bo.out = sd / "bank.jsonl";
  bo.sources = {"math=" + (d / "mix/math.jsonl").string()};
  bo.memory = db;
  bo.system = sys;
  bo.limit = 50;
  FewshotBuildResult r = build_fewshot_bank(bo);
  EXPECT_EQ(r.from_memory, 2u);
  EXPECT_EQ(read_bank(bo.out).size(), 52u);
  EXPECT_TRUE(fs::exists(bank_index_dir(bo.out) / "meta.json"));
  bo.memory.clear();
  bo.sources.clear();
  EXPECT_NE(test::error_of([&] { build_fewshot_bank(bo); }).find("--data"), std::string::npos);
}

fs::path nano_bank() {
  static const fs::path p = [] {
    const fs::path d = nano_data();
    FewshotBuildOptions bo;
    bo.out = dir("nano-bank") / "bank.jsonl";
    bo.sources = {"math=" + (d / "mix/math.jsonl").string(),
                  "reasoning=" + (d / "mix/reasoning.jsonl").string(),
                  // the test items themselves: they must never be shown their own answers
                  "math=gsm8k:" + (d / "math/test.jsonl").string()};
    build_fewshot_bank(bo);
    return bo.out;
  }();
  return p;
}

TEST(FewshotSystem, TheSystemFileReadsFewshotAndRefusesBadSettings) {
  const fs::path sd = dir("system");
  auto load = [&](const std::string& fewshot) {
    const fs::path p = write_lines(sd / "s.yaml", {"base: " + kBase.string(), "default: math",
                                                   "choices:", "  math: {ask_as: gsm8k}", fewshot});
    return p;
  };
  SystemConfig c = SystemConfig::load(
      load("fewshot: {bank: " + nano_bank().string() + ", k: 2, domains: [math], dim: 128}"));
  EXPECT_EQ(c.fewshot.bank, nano_bank());
  EXPECT_EQ(c.fewshot.k, 2);
  EXPECT_EQ(c.fewshot.dim, 128);
  EXPECT_EQ(c.fewshot.domains, (std::vector<std::string>{"math"}));
  auto err = [&](const std::string& f) {
    return test::error_of([&] { SystemConfig::load(load(f)); });
  };
  EXPECT_NE(err("fewshot: {bank: b.jsonl, k: 99}").find("fewshot.k must be 0..32"),
            std::string::npos);
  EXPECT_NE(
      err("fewshot: {bank: b.jsonl, domains: [poetry]}").find("'poetry', which is not a choice"),
      std::string::npos);
  EXPECT_NE(
      err("fewshot: {bank: b.jsonl, shots: 2}").find("s.yaml:5: 'fewshot.shots': unknown key"),
      std::string::npos);
  EXPECT_NE(err("fewshot: {k: 2}").find("fewshot.bank"), std::string::npos);
  EXPECT_NE(err("fewshot: {bank: b.jsonl, embedding: bert}").find("hashed or model"),
            std::string::npos);
}

TEST(FewshotSystem, RuntimeAndEvalPutTheNearestExamplesBeforeTheRequest) {
  const fs::path sd = dir("ask");
  const fs::path sys =
      write_lines(sd / "s.yaml", {"base: " + kBase.string(), "default: math",
                                  "choices:", "  math: {ask_as: gsm8k}",
                                  "generation: {max_tokens: 8, parallel: 4, threads: 0}",
                                  "fewshot: {bank: " + nano_bank().string() + ", k: 2}"});
  const SystemConfig cfg = SystemConfig::load(sys);
  // A test item that also sits in the bank.
  const std::vector<EvalItem> test_items =
      load_benchmark("gsm8k", nano_data() / "math/test.jsonl", {3});
  const std::string own = "Question: " + test_items[0].question + "\nAnswer:";
  {
    Runtime rt(cfg);
    AskRequest q;
    q.text = test_items[0].question;
    auto with = rt.ask({q});
    ASSERT_EQ(with[0].demonstrations.size(), 2u);
    EXPECT_NE(with[0].demonstrations[0], test_items[0].id);  // never its own answer
    EXPECT_NE(with[0].demonstrations[1], test_items[0].id);
    SystemConfig plain = cfg;
    plain.fewshot.k = 0;
    Runtime rt0(plain);
    auto without = rt0.ask({q});
    EXPECT_TRUE(without[0].demonstrations.empty());
    EXPECT_GT(with[0].prompt_tokens, without[0].prompt_tokens + 20);
  }
  // eval --system: each item's prompt holds two solved examples, then the item; never the item
  // twice.
  EvalOptions o;
  o.benches = {{"gsm8k", nano_data() / "math/test.jsonl"}};
  o.limit = 3;
  o.max_tokens = 4;
  o.out_dir = sd / "run";
  o.progress = false;
  o.gen.n_threads = 0;
  eval_system(cfg, o);
  size_t n = 0;
  for (const auto& line : load_jsonl(sd / "run/items.jsonl")) {
    const std::string prompt = line.at("prompt");
    const std::string question = "Question: " + test_items[n].question + "\nAnswer:";
    ++n;
    ASSERT_GE(prompt.size(), question.size());
    EXPECT_EQ(prompt.substr(prompt.size() - question.size()), question);  // the item comes last
    EXPECT_EQ(prompt.find(question), prompt.size() - question.size());    // and only once
    size_t answers = 0;
    for (size_t at = prompt.find("#### "); at != std::string::npos;
         at = prompt.find("#### ", at + 1))
      ++answers;
    EXPECT_EQ(answers, 2u) << prompt;
  }
  EXPECT_EQ(n, 3u);
}

TEST(FewshotSystem, RetrievalUsesTheRequestNotTheSessionsEarlierTurns) {
  const fs::path sd = dir("history");
  const std::string near_request =
      "Question: Kim has 12 apples. She eats 4 of them. How many apples are left?\nAnswer:";
  const std::string near_history =
      "Question: A train travels 60 miles every hour for 5 hours. How many miles does the train "
      "travel in total?\nAnswer:";
  const fs::path bank = write_lines(
      sd / "bank.jsonl", {entry("math", near_request, " 12 - 4 = 8\n#### 8", "apples"),
                          entry("math", near_history, " 60 * 5 = 300\n#### 300", "train")});
  const fs::path sys =
      write_lines(sd / "s.yaml", {"base: " + kBase.string(), "default: math",
                                  "choices:", "  math: {ask_as: gsm8k}",
                                  "generation: {max_tokens: 4, parallel: 2, threads: 0}",
                                  "fewshot: {bank: " + bank.string() + ", k: 1}"});
  Runtime rt(SystemConfig::load(sys));
  AskRequest q;
  q.text = "Kim has 15 apples. She eats 6 of them. How many apples are left?";
  q.history = {{"user",
                "A train travels 70 miles every hour for 3 hours. How many miles does the train "
                "travel in total? "
                "A train travels 70 miles every hour for 3 hours."},
               {"assistant", " 70 * 3 = 210\n#### 210"}};
  auto r = rt.ask({q});
  ASSERT_EQ(r[0].demonstrations, (std::vector<std::string>{"apples"}));
  // The demonstration comes first, then the earlier turn, then the request.
  const std::string& p = r[0].prompt;
  const size_t demo = p.find("Kim has 12 apples"), earlier = p.find("70 miles"),
               request = p.find("Kim has 15 apples");
  ASSERT_NE(demo, std::string::npos);
  ASSERT_NE(earlier, std::string::npos);
  ASSERT_NE(request, std::string::npos);
  EXPECT_LT(demo, earlier);
  EXPECT_LT(earlier, request);
}

}  // namespace
}  // namespace cogumi
