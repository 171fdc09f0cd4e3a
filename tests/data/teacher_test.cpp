// Teachers and judges without a server: score parsing, templates (the shipped files are the
// built-in ones), backoff, config errors, the reply log's resume rules, real checks. The same code
// against a real `cogumi serve` (cascade, judge, 429s, kill and resume, HTTPS): teacher_cli_test.sh.
#include <gtest/gtest.h>

#include <fstream>

#include "core/io.h"
#include "data/judge.h"
#include "data/teacher.h"
#include "data/teacher_check.h"
#include "data/teacher_prompt.h"
#include "test_util.h"

namespace cogumi {
namespace {

TEST(TeacherJudge, ScoreIsParsedFromWhatJudgesWrite) {
  EXPECT_EQ(parse_judge_score("Clear and correct.\nScore: 8"), 8.0);
  EXPECT_EQ(parse_judge_score("**Rating:** 7/10"), 7.0);
  EXPECT_EQ(parse_judge_score("I would give it **9**/10."), 9.0);
  EXPECT_EQ(parse_judge_score("8.5 out of 10"), 8.5);
  EXPECT_EQ(parse_judge_score("  6.\n"), 6.0);
  EXPECT_EQ(parse_judge_score("score = 3, then on reflection Score: 5"), 5.0);  // the last one stated
  EXPECT_EQ(parse_judge_score("The answer has 3 steps and 2 errors."), std::nullopt);
  EXPECT_EQ(parse_judge_score("Score: 85"), std::nullopt);  // not on the 1..10 scale
  EXPECT_EQ(parse_judge_score("Score: 0"), std::nullopt);
  EXPECT_EQ(parse_judge_score(""), std::nullopt);
}

TEST(TeacherJudge, ExamplesOfEveryFormatAndAClearErrorForOthers) {
  EXPECT_EQ(example_text(json{{"instruction", "q"}, {"output", "a"}}, "f").second, "a");
  EXPECT_EQ(example_text(json{{"prompt", "q"}, {"completion", "a"}}, "f").first, "q");
  auto m = example_text(json::parse(R"({"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a"}]})"), "f");
  EXPECT_EQ(m, std::make_pair(std::string("q"), std::string("a")));
  EXPECT_NE(test::error_of([] { example_text(json{{"text", "x"}}, "in.jsonl:4"); }).find("in.jsonl:4"), std::string::npos);
}

TEST(TeacherPrompt, TemplatesFillAndNameUnknownPlaceholders) {
  EXPECT_EQ(fill_template("Solve {question} ({{literal}})", {{"question", "2+2"}}, "t.txt"), "Solve 2+2 ({literal})");
  const std::string err = test::error_of([] { fill_template("{questoin}", {{"question", "x"}}, "my.txt"); });
  EXPECT_NE(err.find("my.txt"), std::string::npos) << err;
  EXPECT_NE(err.find("{questoin}"), std::string::npos) << err;
  EXPECT_NE(err.find("{question}"), std::string::npos) << err;  // lists the known ones
}

TEST(TeacherPrompt, ShippedTemplateFilesAreTheBuiltInOnes) {
  const auto dir = std::filesystem::path(COGUMI_REPO_DIR) / "configs" / "prompts";
  EXPECT_EQ(read_file(dir / "teacher_failure.txt"), kTeacherFailureTemplate);
  EXPECT_EQ(read_file(dir / "judge_rubric.txt"), kJudgeRubricTemplate);
}

TEST(TeacherPrompt, FailureAwarePromptCarriesTheClusterAndTheProblem) {
  const auto dir = test::tmp_dir() / "teacher-prompt";
  std::filesystem::create_directories(dir / "run");
  std::ofstream(dir / "run" / "items.jsonl")
      << R"({"id":"a","benchmark":"gsm8k","kind":"numeric","question":"Tom has 9 pens. He loses 4.","output":"#### 6","reference":"5","correct":false})" "\n"
      << R"({"id":"b","benchmark":"gsm8k","kind":"numeric","question":"Ann has 3 cats.","output":"#### 3","reference":"3","correct":true})" "\n"
      << R"({"id":"c","benchmark":"gsm8k","kind":"numeric","question":"Sam has 7 cards. He gives 2 away.","output":"#### 4","reference":"5","correct":false})" "\n";
  std::ofstream(dir / "clusters.jsonl")
      << R"({"cluster":0,"group":"gsm8k","label":"gsm8k: loses / gives","members":["c","a"],"representatives":["c","a"],"failure_types":{"wrong_answer":2},"terms":[["loses",0.5]]})" "\n"
      << R"({"cluster":1,"group":"mmlu","label":"other","members":[],"representatives":[]})" "\n";
  FailureSet set = load_failure_set(dir / "clusters.jsonl", dir / "run", "math");
  ASSERT_EQ(set.items.size(), 2u);
  // --limit takes the run's first failures, not one cluster's.
  EXPECT_EQ(load_failure_set(dir / "clusters.jsonl", dir / "run", "math", 1).items.at(0)["id"], "a");
  auto v = failure_prompt_values(set, 0, "math");
  const std::string p = fill_template(kTeacherFailureTemplate, v, "built-in");
  EXPECT_NE(p.find("gsm8k: loses / gives"), std::string::npos);
  EXPECT_NE(p.find("Sam has 7 cards"), std::string::npos);  // a representative
  EXPECT_NE(p.find("wrong_answer (2)"), std::string::npos);
  EXPECT_NE(p.find("####"), std::string::npos);             // the numeric answer format
  EXPECT_NE(p.find("Problem:\nTom has 9 pens"), std::string::npos);
  EXPECT_NE(test::error_of([&] { load_failure_set(dir / "clusters.jsonl", dir / "run", "code"); }).find("gsm8k, mmlu"),
            std::string::npos);
}

TEST(TeacherPool, BackoffDoublesWithJitterAndHonorsRetryAfter) {
  TeacherEndpoint ep;
  ep.backoff_s = 0.5;
  ep.backoff_max_s = 4;
  EXPECT_DOUBLE_EQ(backoff_delay(ep, 1, -1, 0.999999), 0.5 * 0.999999);
  EXPECT_DOUBLE_EQ(backoff_delay(ep, 3, -1, 0.5), 1.0);   // 0.5 * 2^2 = 2, half of it
  EXPECT_DOUBLE_EQ(backoff_delay(ep, 10, -1, 1.0), 4.0);  // capped
  EXPECT_DOUBLE_EQ(backoff_delay(ep, 1, 7, 0.1), 7.0);    // never sooner than Retry-After
  EXPECT_DOUBLE_EQ(backoff_delay(ep, 1, -1, 0.0), 0.0);   // full jitter reaches 0
}

TEST(TeacherPool, ConfigErrorsNameFileLineAndKey) {
  const auto p = test::tmp_dir() / "teachers-bad.yaml";
  std::ofstream(p) << "tiers:\n  - base_url: http://127.0.0.1:1/v1\n    concurrency: 0\n";
  std::string err = test::error_of([&] { load_teacher_config(p, "tiers", nullptr); });
  EXPECT_NE(err.find("teachers-bad.yaml:2"), std::string::npos) << err;
  EXPECT_NE(err.find("concurrency"), std::string::npos) << err;
  std::ofstream(p) << "tiers:\n  - base_url: ftp://x\n";
  EXPECT_NE(test::error_of([&] { load_teacher_config(p, "tiers", nullptr); }).find("base_url"), std::string::npos);
  std::ofstream(p) << "tiers:\n  - base_url: http://x/v1\n    tempreature: 1\n";
  err = test::error_of([&] { load_teacher_config(p, "tiers", nullptr); });
  EXPECT_NE(err.find("teachers-bad.yaml:3: 'tiers[0].tempreature': unknown key"), std::string::npos) << err;
  std::ofstream(p) << "spend_cap_tokens: 500\ntiers:\n  - {base_url: 'http://x/v1', model: a}\n  - {base_url: 'http://y/v1', model: b, api: completions}\n";
  int64_t cap = 0;
  auto eps = load_teacher_config(p, "tiers", &cap);
  ASSERT_EQ(eps.size(), 2u);
  EXPECT_EQ(cap, 500);
  EXPECT_EQ(eps[0].name, "tier1");
  EXPECT_EQ(eps[1].api, "completions");
  TeacherEndpoint ep = eps[0];
  ep.api_key_env = "COGUMI_TEACHER_TEST_UNSET_KEY";
  EXPECT_NE(test::error_of([&] { (void)ep.api_key(); }).find("COGUMI_TEACHER_TEST_UNSET_KEY"), std::string::npos);
}

TEST(TeacherPool, LogResumesAndDropsATornLastLine) {
  const auto p = test::tmp_dir() / "teacher-log.jsonl";
  TeacherEndpoint a, b;
  b.name = "other";
  EXPECT_NE(request_key(a, "q"), request_key(b, "q"));  // the tier is part of a request's identity
  EXPECT_EQ(request_key(a, "q"), request_key(a, "q"));
  std::ofstream(p) << json{{"key", "k1"}, {"reply", "x"}, {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 4}}}}.dump() << "\n"
                   << json{{"key", "k2"}, {"error", "HTTP 503"}}.dump() << "\n"
                   << R"({"key":"k3","reply":"cut of)";  // killed mid-write
  {
    RequestLog log(p);
    EXPECT_NE(log.find("k1"), nullptr);
    EXPECT_EQ(log.find("k2"), nullptr);  // a failure is asked again
    EXPECT_EQ(log.find("k3"), nullptr);  // the torn line is gone
    EXPECT_EQ(log.tokens(), 7);
    log.append(json{{"key", "k4"}, {"reply", "y"}});
  }
  RequestLog again(p);
  EXPECT_NE(again.find("k4"), nullptr);
  EXPECT_EQ(again.size(), 2u);
}

TEST(TeacherCheck, ReferenceAndSchemaChecksDecide) {
  EvalItem num = check_item_for(json{{"kind", "numeric"}, {"instruction", "q"}, {"reference", "8"}}, {});
  EXPECT_EQ(check_answer(num, "5 + 3 = 8\n#### 8", "stop", {}).passed, true);
  EXPECT_EQ(check_answer(num, "#### 9", "stop", {}).passed, false);
  EvalItem text = check_item_for(json{{"instruction", "q"}}, {});
  EXPECT_FALSE(check_answer(text, "anything", "stop", {}).passed.has_value());
  EvalItem tool;
  tool.kind = TaskKind::kToolCall;
  tool.functions = json::parse(R"([{"name":"get_weather","parameters":{"type":"dict","properties":{"city":{"type":"string"}},"required":["city"]}}])");
  CheckResult ok = check_answer(tool, R"({"name":"get_weather","arguments":{"city":"Oslo"}})", "stop", {});
  EXPECT_EQ(ok.check, "schema");
  EXPECT_EQ(ok.passed, true);
  CheckResult bad = check_answer(tool, R"({"name":"get_weather","arguments":{}})", "stop", {});
  EXPECT_EQ(bad.passed, false);
  EXPECT_FALSE(bad.detail.empty());
}

TEST(TeacherCheck, CodeRunsAgainstItsTestsInTheSandbox) {
  std::string why;
  ASSERT_TRUE(sandbox_available(SandboxOptions{}, &why)) << "the sandbox cannot run here: " << why;
  EvalItem code;
  code.kind = TaskKind::kCode;
  code.benchmark = "humaneval";
  code.code_prompt = "def add(a, b):\n    \"\"\"Sum of a and b.\"\"\"\n";
  code.test = "def check(candidate):\n    assert candidate(2, 3) == 5\n";
  code.entry_point = "add";
  const CheckResult ok = check_answer(code, "    return a + b\n", "stop", {});
  EXPECT_EQ(ok.check, "tests");
  EXPECT_EQ(ok.passed, true) << ok.detail;
  const CheckResult bad = check_answer(code, "    return a - b\n", "stop", {});
  EXPECT_EQ(bad.passed, false);
  EXPECT_EQ(bad.detail, "test_failure");
}

}  // namespace
}  // namespace cogumi
