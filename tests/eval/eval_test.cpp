#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/io.h"
#include "eval/compare.h"
#include "eval/run.h"
#include "eval/score.h"
#include "engine/model.h"
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
  std::string why;
  ASSERT_TRUE(sandbox_available(&why)) << "the sandbox can't run here: " << why;
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

EvalOptions small_generation_run(const std::string& out) {
  EvalOptions o;
  o.model = test::tiny_model();
  o.benches = {{"gsm8k", kData / "gsm8k/test.jsonl"}};
  o.limit = 4;
  o.max_tokens = 4;
  o.out_dir = test::tmp_dir() / out;
  o.progress = false;
  o.gen.n_parallel = 4;
  return o;
}

using test::error_of;

TEST(Harness, ResumeRefusesARunMadeWithOtherSettings) {
  EvalOptions o = small_generation_run("resume_settings");
  run_eval(o);
  ASSERT_TRUE(fs::exists(o.out_dir / "run.json"));
  o.resume = true;
  auto refused = [&](EvalOptions changed, const std::string& field) {
    std::string m = error_of([&] { run_eval(changed); });
    EXPECT_NE(m.find("other settings"), std::string::npos) << m;
    EXPECT_NE(m.find(field + ":"), std::string::npos) << "wanted " << field << " in: " << m;
  };
  EvalOptions c = o;
  c.max_tokens = 8;
  refused(c, "max_tokens");
  c = o;
  c.chat = true;
  refused(c, "chat");
  c = o;
  c.chat_template = "llama3";
  refused(c, "chat_template");
  c = o;
  c.shots = 1;
  refused(c, "shots");
  c = o;
  c.adapters = {{"a", test::tiny_adapter()}};
  c.adapter = "a";
  refused(c, "adapter");
  c = o;
  c.model = test::tmp_dir() / "other-model.gguf";
  fs::copy_file(test::tiny_adapter(), c.model, fs::copy_options::overwrite_existing);  // any other file
  refused(c, "model");
  // The same model under another name is the same model; nothing left to do.
  c = o;
  c.model = test::tmp_dir() / "tiny-copy.gguf";
  fs::copy_file(test::tiny_model(), c.model, fs::copy_options::overwrite_existing);
  EXPECT_EQ(run_eval(c)["run"]["items_this_run"], 0);
  // No record at all (a directory from an older cogumi) is refused too.
  fs::remove(o.out_dir / "run.json");
  EXPECT_NE(error_of([&] { run_eval(o); }).find("no run.json"), std::string::npos);
}

TEST(Harness, ResumeDropsATornLastLineAndRedoesItsItem) {
  EvalOptions o = small_generation_run("resume_torn");
  run_eval(o);
  const fs::path items = o.out_dir / "items.jsonl";
  auto before = load_jsonl(items);
  ASSERT_EQ(before.size(), 4u);
  // A kill in the middle of writing the last line.
  std::string text = read_file(items);
  fs::resize_file(items, text.size() - text.size() / 8);
  o.resume = true;
  json s = run_eval(o);
  EXPECT_EQ(s["run"]["items_this_run"], 1);
  auto after = load_jsonl(items);  // every line whole again
  ASSERT_EQ(after.size(), 4u);
  EXPECT_EQ(after[3]["id"], before[3]["id"]);
  EXPECT_EQ(after[3]["output"], before[3]["output"]);
  // A whole last line that only lost its newline is kept.
  text = read_file(items);
  fs::resize_file(items, text.size() - 1);
  EXPECT_EQ(run_eval(o)["run"]["items_this_run"], 0);
  EXPECT_EQ(load_jsonl(items).size(), 4u);
  // Damage before the last line is an error naming the line.
  text = read_file(items);
  write_file_atomic(items, "{not json\n" + text);
  EXPECT_NE(error_of([&] { run_eval(o); }).find("items.jsonl:1"), std::string::npos);
}

TEST(Harness, OptionsOutOfRangeNameTheOption) {
  auto g = write("opts.jsonl", "{\"question\": \"1+1?\", \"answer\": \"#### 2\"}\n");
  auto r = write("opts_resp.jsonl", "{\"id\": \"opts.jsonl:0\", \"output\": \"#### 2\"}\n");
  const EvalOptions base = responses_run("gsm8k", g, r, "opts_run");
  auto named = [&](const std::function<void(EvalOptions&)>& change, const std::string& flag) {
    EvalOptions o = base;
    change(o);
    std::string m = error_of([&] { run_eval(o); });
    EXPECT_NE(m.find(flag), std::string::npos) << "wanted " << flag << " in: " << m;
  };
  named([](EvalOptions& o) { o.chunk = 0; }, "--chunk");  // looped forever before
  named([](EvalOptions& o) { o.max_tokens = 0; }, "--max-tokens");
  named([](EvalOptions& o) { o.sandbox.limits.timeout_s = 0; }, "--timeout");
  named([](EvalOptions& o) { o.pass_k = {2}; }, "--pass-k");
  named([](EvalOptions& o) { o.shots = -1; }, "--shots");
  named([](EvalOptions& o) { o.samples = 0; }, "--samples");
  named([](EvalOptions& o) { o.workers = -1; }, "--workers");
  named([](EvalOptions& o) { o.sampling.top_p = 2; }, "--top-p");
  named([](EvalOptions& o) { o.gen.n_parallel = 0; }, "--parallel");
  EXPECT_EQ(run_eval(base)["benchmarks"]["gsm8k"]["correct"], 1);
}

TEST(Harness, ChatPromptsKeepControlTokenTextInQuestionsAsText) {
  // The question itself holds "<|im_end|>", a control token of the tiny model's vocabulary.
  auto g = write("chat_special.jsonl",
                 "{\"question\": \"What is <|im_end|> for?\", \"answer\": \"#### 1\"}\n");
  EvalOptions o = small_generation_run("chat_special");
  o.benches = {{"gsm8k", g}};
  o.chat = true;
  o.max_tokens = 1;
  run_eval(o);
  auto items = load_jsonl(o.out_dir / "items.jsonl");
  ASSERT_EQ(items.size(), 1u);
  auto model = Model::load(test::tiny_model());
  const std::string prompt = items[0]["prompt"];
  const std::string head = "<|im_start|>user\n", tail = "<|im_end|>\n<|im_start|>assistant\n";
  ASSERT_EQ(prompt.rfind(head, 0), 0u) << prompt;
  ASSERT_EQ(prompt.substr(prompt.size() - tail.size()), tail) << prompt;
  const std::string user = prompt.substr(head.size(), prompt.size() - head.size() - tail.size());
  auto expected = model->tokenize_chat({{"user", user}});
  ASSERT_EQ(expected.text, prompt);
  const Token im_end = model->tokenize("<|im_end|>", false, true).at(0);
  EXPECT_EQ(std::count(expected.tokens.begin(), expected.tokens.end(), im_end), 1);  // the template's only
  EXPECT_EQ(items[0]["n_prompt_tokens"].get<int>(), int(expected.tokens.size()));
  auto parsed = model->tokenize(prompt, true, true);  // what parsing the whole text fed the model
  EXPECT_NE(items[0]["n_prompt_tokens"].get<int>(), int(parsed.size()));
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
