// The router: features, training, the file format, labels from data and from eval runs.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>

#include "core/error.h"
#include "core/io.h"
#include "data/synth.h"
#include "route/data.h"
#include "route/router_job.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kData = COGUMI_DATASETS;

// The nano curriculum, written once for the tests of this file.
const fs::path& nano_data() {
  static const fs::path d = [] {
    fs::path p = test::tmp_dir() / "router-nano";
    SynthOptions o;
    o.n_train = 600, o.n_dev = 50, o.n_test = 150, o.n_mix = 100;
    synth_write(p, o);
    return p;
  }();
  return d;
}

std::vector<std::string> nano_specs(const std::string& split) {
  const fs::path d = nano_data();
  const std::string csv =
      split == "train" ? "reasoning/reasoning_train.csv" : "reasoning/reasoning_" + split + ".csv";
  return {"math=gsm8k:" + (d / "math" / (split + ".jsonl")).string(),
          "code=humaneval:" + (d / "code" / (split + ".jsonl")).string(),
          "reasoning=mmlu:" + (d / csv).string(),
          "automation=bfcl:" + (d / "automation" / (split + ".jsonl")).string()};
}

TEST(RouterFeatures, StableUnitNormAndCaseInsensitive) {
  FeatureOptions o;
  SparseVec a = featurize("How many apples does Ann have?", o);
  SparseVec b = featurize("how many APPLES does ann have?", o);
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(a, b);
  double n = 0;
  for (auto [i, v] : a) {
    EXPECT_LT(i, o.dim());
    n += double(v) * v;
  }
  EXPECT_NEAR(n, 1.0, 1e-5);
  for (size_t i = 1; i < a.size(); ++i) EXPECT_LT(a[i - 1].first, a[i].first);
  EXPECT_TRUE(featurize("", o).empty());
  // A router file trained elsewhere must route the same here: the hash is fixed, not std::hash.
  EXPECT_EQ(featurize("def f(x):", o).front().first, featurize("def f(x):", o).front().first);
  FeatureOptions bad;
  bad.hash_bits = 30;
  EXPECT_THROW(bad.validate(), Error);
  bad = {};
  bad.char_ngram_min = 6, bad.char_ngram_max = 3;
  EXPECT_THROW(bad.validate(), Error);
}

TEST(Router, RoutesNanoTestQueriesToTheirDomain) {
  RouterJob j;
  j.data = nano_specs("train");
  j.holdout = 0;
  j.out = test::tmp_dir() / "nano-router.json";
  RouterJobResult r = train_router_job(j);
  EXPECT_EQ(r.router.choices(),
            (std::vector<std::string>{"math", "code", "reasoning", "automation"}));
  RouterReport rep = eval_router_job(j.out, nano_specs("test"), 0, 0);
  EXPECT_EQ(rep.n, 600u);
  EXPECT_GE(rep.accuracy, 0.97);
  for (double rc : rep.recall) EXPECT_GE(rc, 0.9);
  EXPECT_GT(rep.latency_p99_us, 0);
}

TEST(Router, RoutesHeldOutRealBenchmarkText) {
  // GSM8K train, HumanEval, MMLU dev and the nano tool calls; 20% of the queries held out by hash.
  RouterJob j;
  j.data = {"math=gsm8k:" + (kData / "gsm8k/train.jsonl").string(),
            "code=humaneval:" + (kData / "humaneval/HumanEval.jsonl.gz").string(),
            "reasoning=mmlu:" + (kData / "mmlu/dev").string(),
            "automation=bfcl:" + (nano_data() / "automation/train.jsonl").string()};
  j.limit = 2000;
  j.out = test::tmp_dir() / "real-router.json";
  RouterJobResult r = train_router_job(j);
  ASSERT_GT(r.n_heldout, 300u);
  EXPECT_GE(r.heldout.accuracy, 0.95) << r.heldout.table(r.router.choices());
  for (double rc : r.heldout.recall) EXPECT_GE(rc, 0.8) << r.heldout.table(r.router.choices());
  // The report beside the router names the held-out figures.
  json rep = json::parse(read_file(j.out.string() + ".report.json"));
  EXPECT_EQ(rep["heldout"]["n"].get<size_t>(), r.n_heldout);
}

TEST(Router, FileRoundTripRoutesIdenticallyAndBadFilesNameThemselves) {
  std::vector<RouterExample> ex = {{"add two numbers", 0},
                                   {"sum of 3 and 4", 0},
                                   {"def f(x): return x", 1},
                                   {"write a python function", 1}};
  RouterTrainOptions o;
  o.features.hash_bits = 12;
  Router r = Router::train({"math", "code"}, ex, o);
  r.set_temperature(1.5f);
  const fs::path p = test::tmp_dir() / "rt.json";
  r.save(p);
  Router back = Router::load(p);
  EXPECT_EQ(back.choices(), r.choices());
  EXPECT_FLOAT_EQ(back.temperature(), 1.5f);
  for (auto& e : ex) {
    auto a = r.route(e.text), b = back.route(e.text);
    EXPECT_EQ(a.choice, e.label);
    ASSERT_EQ(a.probs.size(), b.probs.size());
    for (size_t i = 0; i < a.probs.size(); ++i) EXPECT_EQ(a.probs[i], b.probs[i]);
  }
  // Truncated weights, a foreign JSON file: errors that name the file.
  std::string text = read_file(p);
  json j = json::parse(text);
  j["weights"]["data"] = j["weights"]["data"].get<std::string>().substr(0, 40);
  write_file_atomic(p, j.dump());
  try {
    Router::load(p);
    FAIL() << "loaded a router with truncated weights";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
  }
  write_file_atomic(p, R"({"format":"something-else"})");
  EXPECT_THROW(Router::load(p), Error);
  // No examples for a choice, a label out of range.
  EXPECT_THROW(Router::train({"math", "code", "reasoning"}, ex, o), Error);
  EXPECT_THROW(Router::train({"math"}, ex, o), Error);
}

TEST(RouterData, LabelsFromRunsGoToTheFirstChoiceThatAnswered) {
  const fs::path d = test::tmp_dir() / "router-runs";
  auto run = [&](const std::string& name, const std::vector<std::pair<std::string, bool>>& items) {
    fs::create_directories(d / name);
    std::string text;
    for (auto& [id, ok] : items)
      text +=
          json{{"id", id}, {"benchmark", "gsm8k"}, {"question", "question " + id}, {"correct", ok}}
              .dump() +
          "\n";
    write_file_atomic(d / name / "items.jsonl", text);
    return name + "=" + (d / name).string();
  };
  // a: base right (and math right): base. b: only math. c: math and code: math (listed first).
  // d: nobody: base.
  std::vector<std::string> specs = {
      run("base", {{"a", true}, {"b", false}, {"c", false}, {"d", false}}),
      run("math", {{"a", true}, {"b", true}, {"c", true}, {"d", false}}),
      run("code", {{"a", false}, {"b", false}, {"c", true}, {"d", false}})};
  RouteData rd = load_route_runs(specs, 0);
  EXPECT_EQ(rd.choices, (std::vector<std::string>{"base", "math", "code"}));
  ASSERT_EQ(rd.train.size(), 4u);
  std::map<std::string, int> got;
  for (auto& e : rd.train) got[e.text] = e.label;
  EXPECT_EQ(got["question a"], 0);
  EXPECT_EQ(got["question b"], 1);
  EXPECT_EQ(got["question c"], 1);
  EXPECT_EQ(got["question d"], 0);
  EXPECT_THROW(load_route_runs({specs[0]}, 0), Error);
}

TEST(RouterData, HoldoutIsByTextAndSourcesNameTheirErrors) {
  int held = 0;
  for (int i = 0; i < 2000; ++i) held += in_holdout("query number " + std::to_string(i), 0.2);
  EXPECT_NEAR(held, 400, 80);
  EXPECT_EQ(in_holdout("same text", 0.5), in_holdout("same text", 0.5));
  EXPECT_THROW(parse_route_source("no-equals-sign"), Error);
  EXPECT_THROW(parse_route_source("math=gsm8k:/no/such/file.jsonl"), Error);
  const fs::path req = test::tmp_dir() / "requests.jsonl";
  write_file_atomic(req,
                    "{\"text\":\"hello\"}\n{\"messages\":[{\"role\":\"user\",\"content\":\"hi "
                    "there\"}]}\n{\"id\":3}\n");
  try {
    load_route_texts(parse_route_source("chat=" + req.string()));
    FAIL() << "a record without text was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(req.string() + ":3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cogumi
