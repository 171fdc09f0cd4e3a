// cogumi/data: the LLM judge behind `cogumi data judge`. Each example is scored 1-10 by a judge
// endpoint with a rubric prompt (configs/prompts/judge_rubric.txt; placeholders {instruction},
// {response}, {reference}); the judge's raw reply is recorded. An example is kept when its score
// is at least the threshold, except where a real check exists (data/teacher_check.h: the
// reference answer, the code's tests in the sandbox, the tool call's schema): there the check
// decides, and the judge's view is only compared with it (agreement, reported).
// Judge replies go to OUT's sibling .requests.jsonl as they arrive (resumable, data/teacher.h);
// the kept examples to OUT, the report to OUT's sibling .report.json.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/teacher.h"
#include "eval/run.h"
#include "eval/sandbox.h"

namespace cogumi {

struct JudgeOptions {
  TeacherEndpoint endpoint;          // the judge
  std::filesystem::path in, out;     // examples (JSONL) and the kept ones
  double threshold = 7;              // keep a judged example when its score >= this, 1..10
  std::vector<BenchSpec> benches;    // benchmark items for checks (code tests, tool functions)
  bool use_checks = true;            // a real check decides where one exists
  int64_t spend_cap_tokens = 0;      // 0 = none
  SandboxOptions sandbox;
  bool progress = true;
  void validate() const;             // throws Error naming the option
};

struct JudgeReport {
  size_t n = 0, kept = 0;
  size_t judged = 0;          // examples the judge scored (a score was parsed)
  size_t unparsed = 0;        // replies without a score in 1..10 (not kept unless a check passes)
  size_t unanswered = 0;      // no reply (spend cap, or errors after every retry)
  size_t checked = 0;         // examples a real check decided
  size_t both = 0, agree = 0; // checked and judged; of those, where judge and check agree
  int64_t tokens = 0;
  nlohmann::json to_json() const;
};

JudgeReport run_judge(const JudgeOptions& opts);

// The score in a judge's reply: "Score: 8", "Rating: 7/10", "**9**/10", "8.5 out of 10", or a
// reply that is only a number. The last stated score wins; nothing outside 1..10 is a score.
std::optional<double> parse_judge_score(const std::string& reply);

// An example's instruction and response: {instruction, output}, {prompt, completion},
// {question, answer} or {messages} (the last user and assistant turns). Error naming `where`.
std::pair<std::string, std::string> example_text(const nlohmann::json& ex, const std::string& where);

}  // namespace cogumi
