#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/io.h"
#include "eval/compare.h"
#include "eval/run.h"
#include "eval/score.h"
#include "test_util.h"

namespace cogumi {
namespace {

const fs::path kData = fs::path(COGUMI_DATASETS);

fs::path write(const std::string& name, const std::string& text) {
  fs::path p = test::tmp_dir() / name;
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
  return p;
}

EvalOptions responses_run(const std::string& kind, const fs::path& path, const fs::path& responses, const std::string& out) {
  EvalOptions o;
  o.benches = {{kind, path}};
  o.responses = responses;
  o.out_dir = test::tmp_dir() / out;
  o.progress = false;
  return o;
}

TEST(Harness, Gsm8kReferenceAnswersScoreEverything) {
  auto items = load_benchmark("gsm8k", kData / "gsm8k/test.jsonl");
  ASSERT_EQ(items.size(), 1319u);
  EXPECT_EQ(items[0].id, "test.jsonl:0");
  EXPECT_EQ(items[0].reference, "18");
  std::string resp;
  for (auto& it : items) resp += json{{"id", it.id}, {"output", it.solution}}.dump() + "\n";
  json s = run_eval(responses_run("gsm8k", kData / "gsm8k/test.jsonl", write("gsm.jsonl", resp), "gsm"));
  EXPECT_EQ(s["benchmarks"]["gsm8k"]["correct"], 1319);
  EXPECT_DOUBLE_EQ(s["benchmarks"]["gsm8k"]["strict_accuracy"].get<double>(), 1.0);
}

TEST(Harness, MmluGoldLettersScoreEverything) {
  auto items = load_benchmark("mmlu", kData / "mmlu/test");
  ASSERT_EQ(items.size(), 14042u);
  EXPECT_EQ(items[0].id, "abstract_algebra_test.csv:0");
  EXPECT_EQ(items[0].category, "abstract_algebra");
  EXPECT_EQ(items[0].reference, "B");  // answer index 1
  std::string resp;
  for (auto& it : items) resp += json{{"id", it.id}, {"output", " " + it.reference}}.dump() + "\n";
  json s = run_eval(responses_run("mmlu", kData / "mmlu/test", write("mmlu.jsonl", resp), "mmlu"));
  EXPECT_EQ(s["benchmarks"]["mmlu"]["correct"], 14042);
  EXPECT_EQ(s["benchmarks"]["mmlu"]["categories"].size(), 57u);
}

TEST(Harness, MmluHeaderlessOriginalFormat) {
  auto p = write("mmlu_orig/astronomy_test.csv", "\"What is 1+1?\",1,2,3,4,B\nWhich is a planet?,Mars,Sun,Moon,\"Comet, Halley's\",A\n");
  auto items = load_benchmark("mmlu", p);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].category, "astronomy");
  EXPECT_EQ(items[1].choices[3], "Comet, Halley's");
  EXPECT_EQ(items[1].reference, "A");
}

TEST(Harness, HumanEvalCanonicalSolutionsPassInTheSandbox) {
  if (!sandbox_available()) GTEST_SKIP() << "bubblewrap unavailable";
  auto items = load_benchmark("humaneval", kData / "humaneval/HumanEval.jsonl.gz");
  ASSERT_EQ(items.size(), 164u);
  std::string resp;
  for (auto& it : items) resp += json{{"task_id", it.id}, {"completion", it.solution}}.dump() + "\n";
  auto o = responses_run("humaneval", kData / "humaneval/HumanEval.jsonl.gz", write("he.jsonl", resp), "he");
  json s = run_eval(o);
  EXPECT_EQ(s["benchmarks"]["humaneval"]["correct"], 164) << s.dump(2);
  // And an empty completion fails every task.
  std::string bad;
  for (auto& it : items) bad += json{{"task_id", it.id}, {"completion", "    pass\n"}}.dump() + "\n";
  o.responses = write("he_bad.jsonl", bad);
  o.out_dir = test::tmp_dir() / "he_bad";
  o.limit = 20;
  s = run_eval(o);
  EXPECT_EQ(s["benchmarks"]["humaneval"]["correct"], 0);
  EXPECT_GT(s["benchmarks"]["humaneval"]["failures"].value("test_failure", 0), 15);
}

TEST(Harness, MissingResponseNamesTheItem) {
  auto p = write("gsm_small.jsonl", "{\"question\": \"1+1?\", \"answer\": \"2\\n#### 2\"}\n{\"question\": \"2+2?\", \"answer\": \"#### 4\"}\n");
  auto r = write("gsm_small_resp.jsonl", "{\"id\": \"gsm_small.jsonl:0\", \"output\": \"#### 2\"}\n");
  try {
    run_eval(responses_run("gsm8k", p, r, "missing"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gsm_small.jsonl:1"), std::string::npos) << e.what();
  }
}

TEST(Harness, LoaderErrorsNameFileAndField) {
  auto p = write("gsm_bad.jsonl", "{\"question\": \"x\", \"answer\": \"2\"}\n");
  try {
    load_benchmark("gsm8k", p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("gsm_bad.jsonl:1: field 'answer' has no '#### <number>'"), std::string::npos)
        << e.what();
  }
  auto q = write("he_bad.jsonl", "{\"task_id\": \"t\", \"prompt\": \"def f():\"}\n");
  EXPECT_THROW(load_benchmark("humaneval", q), Error);
  EXPECT_THROW(load_benchmark("nope", q), Error);
  EXPECT_THROW(parse_bench_spec("gsm8k"), Error);
}

TEST(Harness, MbppBbhAndGenericFormats) {
  auto m = write("mbpp.jsonl",
                 "{\"task_id\": 2, \"text\": \"Add.\", \"code\": \"def add(a, b):\\n    return a + b\", \"test_list\": "
                 "[\"assert add(1, 2) == 3\"], \"test_setup_code\": \"\", \"challenge_test_list\": []}\n");
  auto items = load_benchmark("mbpp", m);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].id, "mbpp/2");
  auto s = write("sanitized-mbpp.json",
                 "[{\"task_id\": 3, \"prompt\": \"Mul.\", \"code\": \"import math\\ndef mul(a, b):\\n    return a * b\", "
                 "\"test_imports\": [\"import math\"], \"test_list\": [\"assert mul(2, 3) == 6\"]}]");
  auto items2 = load_benchmark("mbpp", s);
  EXPECT_EQ(items2[0].test_setup, "import math\n");
  std::string prog = code_program(items2[0], "```python\n" + items2[0].solution + "\n```");
  EXPECT_NE(prog.find("assert mul(2, 3) == 6"), std::string::npos);
  auto b = write("bbh/boolean_expressions.json", "{\"examples\": [{\"input\": \"not True\", \"target\": \"False\"}]}");
  auto bi = load_benchmark("bbh", b);
  EXPECT_EQ(bi[0].category, "boolean_expressions");
  EXPECT_TRUE(score_output(bi[0], " False\n", "stop").correct);
  EXPECT_TRUE(score_output(bi[0], "Let's think. So the answer is False.", "stop").correct_strict);
  auto g = write("gen.jsonl", "{\"instruction\": \"Capital of France?\", \"output\": \"Paris\"}\n");
  auto gi = load_benchmark("jsonl", g);
  EXPECT_TRUE(score_output(gi[0], "paris.", "stop").correct);
  EXPECT_EQ(score_output(gi[0], "Lyon", "stop").failure_type, "wrong_answer");
  EXPECT_EQ(score_output(gi[0], "", "stop").failure_type, "empty_or_refusal");
  EXPECT_EQ(score_output(gi[0], "I'm sorry, I cannot", "stop").failure_type, "empty_or_refusal");
  EXPECT_EQ(score_output(gi[0], "Lyon is a city in", "length").failure_type, "truncated");
}

TEST(Harness, BfclMatching) {
  auto q = write("bfcl/simple.jsonl",
                 "{\"id\": \"simple_0\", \"question\": [[{\"role\": \"user\", \"content\": \"Area of a triangle with base 10 "
                 "and height 5?\"}]], \"function\": [{\"name\": \"calc.area\", \"description\": \"area\", \"parameters\": "
                 "{\"type\": \"dict\", \"properties\": {\"base\": {\"type\": \"integer\"}, \"height\": {\"type\": "
                 "\"integer\"}, \"unit\": {\"type\": \"string\"}}, \"required\": [\"base\", \"height\"]}}]}\n");
  write("bfcl/possible_answer/simple.jsonl",
        "{\"id\": \"simple_0\", \"ground_truth\": [{\"calc.area\": {\"base\": [10], \"height\": [5], \"unit\": [\"units\", "
        "\"\"]}}]}\n");
  auto items = load_benchmark("bfcl", q);
  ASSERT_EQ(items.size(), 1u);
  EXPECT_NE(items[0].question.find("triangle"), std::string::npos);
  auto sc = [&](const std::string& out) { return score_output(items[0], out, "stop"); };
  EXPECT_TRUE(sc("{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5}}").correct);
  EXPECT_TRUE(sc("{\"name\": \"calc_area\", \"arguments\": {\"base\": 10.0, \"height\": 5, \"unit\": \"Units\"}}").correct);
  EXPECT_TRUE(sc("[{\"calc.area\": {\"base\": 10, \"height\": 5}}]").correct);
  auto wrong = sc("{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 6}}");
  EXPECT_FALSE(wrong.correct);
  EXPECT_NE(wrong.detail.find("height"), std::string::npos) << wrong.detail;
  EXPECT_NE(sc("{\"name\": \"calc.area\", \"arguments\": {\"base\": 10}}").detail.find("missing argument 'height'"),
            std::string::npos);
  EXPECT_NE(sc("{\"name\": \"calc.area\", \"arguments\": {\"base\": 10, \"height\": 5, \"color\": 1}}").detail.find("unexpected"),
            std::string::npos);
  EXPECT_EQ(sc("call calc.area(base=10").failure_type, "malformed_json");
}

TEST(Harness, CompareCountsWinsTiesLosses) {
  auto mk = [](const std::string& name, const std::vector<int>& correct) {
    std::string lines;
    for (size_t i = 0; i < correct.size(); ++i)
      lines += json{{"id", std::to_string(i)}, {"benchmark", "b"}, {"category", i < 5 ? "x" : "y"}, {"sample", 0},
                    {"correct", bool(correct[i])}}.dump() + "\n";
    fs::path dir = test::tmp_dir() / name;
    fs::create_directories(dir);
    std::ofstream(dir / "items.jsonl") << lines;
    return dir;
  };
  auto a = mk("cmp_a", {1, 1, 0, 0, 0, 1, 0, 0, 0, 0});
  auto b = mk("cmp_b", {1, 0, 1, 1, 0, 1, 1, 1, 1, 0});
  json c = compare_runs(a, b);
  EXPECT_EQ(c["total"]["wins"], 5);
  EXPECT_EQ(c["total"]["losses"], 1);
  EXPECT_EQ(c["total"]["ties"], 4);
  EXPECT_NEAR(c["total"]["mcnemar_p"].get<double>(), 0.21875, 1e-9);  // exact binomial, b=5 c=1
  EXPECT_EQ(c["categories"]["b/y"]["wins"], 3);
}

TEST(Harness, Statistics) {
  EXPECT_DOUBLE_EQ(pass_at_k(10, 0, 1), 0.0);
  EXPECT_DOUBLE_EQ(pass_at_k(10, 10, 5), 1.0);
  EXPECT_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-12);
  EXPECT_NEAR(pass_at_k(5, 1, 2), 0.4, 1e-12);
  auto [lo, hi] = wilson_interval(50, 100);
  EXPECT_NEAR(lo, 0.4038, 1e-3);
  EXPECT_NEAR(hi, 0.5962, 1e-3);
  EXPECT_DOUBLE_EQ(mcnemar_p(0, 0), 1.0);
}

TEST(Harness, GenerationRunIsBatchedResumableAndComplete) {
  EvalOptions o;
  o.model = test::tiny_model();
  o.benches = {{"gsm8k", kData / "gsm8k/test.jsonl"}};
  o.limit = 12;
  o.max_tokens = 8;
  o.shots = 2;
  o.out_dir = test::tmp_dir() / "gen_run";
  o.progress = false;
  o.chunk = 5;
  o.gen.n_parallel = 4;
  json s = run_eval(o);
  EXPECT_EQ(s["benchmarks"]["gsm8k"]["n"], 12);
  auto items = load_jsonl(o.out_dir / "items.jsonl");
  ASSERT_EQ(items.size(), 12u);
  EXPECT_NE(items[0]["prompt"].get<std::string>().find("Question:"), std::string::npos);
  EXPECT_EQ(items[0]["prompt"].get<std::string>().find(items[0]["question"].get<std::string>()) !=
                std::string::npos, true);
  for (auto& it : items) {
    if (!it["correct"].get<bool>()) {
      EXPECT_FALSE(it["failure_type"].get<std::string>().empty());
    }
    EXPECT_LE(it["n_gen_tokens"].get<int>(), 8);
  }
  // Resume after losing the last lines: only the missing items are generated.
  std::string kept;
  for (size_t i = 0; i < 7; ++i) kept += items[i].dump() + "\n";
  write_file_atomic(o.out_dir / "items.jsonl", kept);
  o.resume = true;
  json s2 = run_eval(o);
  EXPECT_EQ(s2["run"]["items_this_run"], 5);
  EXPECT_EQ(s2["benchmarks"]["gsm8k"]["n"], 12);
  auto again = load_jsonl(o.out_dir / "items.jsonl");
  EXPECT_EQ(again[11]["output"], items[11]["output"]);  // greedy: same answer when regenerated
}

}  // namespace
}  // namespace cogumi

namespace cogumi {
namespace {

TEST(Harness, JudgeScoringNeedsAReachableJudge) {
  auto g = write("judge.jsonl", "{\"instruction\": \"Capital of France?\", \"output\": \"Paris\"}\n");
  auto r = write("judge_resp.jsonl", "{\"id\": \"judge.jsonl:0\", \"output\": \"It is Paris.\"}\n");
  EvalOptions o = responses_run("jsonl", g, r, "judge_run");
  o.scoring = "judge";
  try {
    run_eval(o);
    FAIL() << "expected an error without --judge";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--judge"), std::string::npos) << e.what();
  }
  o.judge.base_url = "http://127.0.0.1:1/v1";  // nothing listens on port 1
  o.judge.timeout_s = 2;
  try {
    run_eval(o);
    FAIL() << "expected an unreachable judge";
  } catch (const Error& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("judging item 'judge.jsonl:0'"), std::string::npos) << m;
    EXPECT_NE(m.find("127.0.0.1:1"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace cogumi
