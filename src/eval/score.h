// cogumi/eval: scoring one output against its item, the failure taxonomy, tool-call
// matching (BFCL), code programs for the sandbox, and the statistics of a run
// (Wilson intervals, pass@k, McNemar).
#pragma once

#include <optional>
#include <string>

#include "data/openai_client.h"
#include "eval/benchmark.h"

namespace cogumi {

// Failure types, in the order they are checked (the first that applies wins).
//   empty_or_refusal, error, truncated, malformed_json, compile_error, timeout,
//   test_failure, no_answer, wrong_answer.  "" means correct.
struct ItemScore {
  std::optional<std::string> strict, flexible;  // extracted answers
  bool correct_strict = false;
  bool correct = false;        // flexible for text/numeric/choice; passed for code; matched for tools
  std::string failure_type;
  std::string detail;          // why (tool-call mismatch, sandbox stderr tail)
};

// Scores a non-code item. finish: "stop", "length", "error", ...
ItemScore score_output(const EvalItem& item, const std::string& output, const std::string& finish);

// The program that tests a code completion (prompt + completion + tests), for the sandbox.
std::string code_program(const EvalItem& item, const std::string& output);
// Scores a code item from its sandbox run. sandbox: "passed", "failed", "timeout", ...
ItemScore score_code(const EvalItem& item, const std::string& output, const std::string& finish,
                     const std::string& sandbox, const std::string& stderr_tail);

// BFCL-style call matching; on mismatch *why says what differed.
bool match_tool_calls(const json& calls, const json& ground_truth, std::string* why);

// Judge-model scoring: asks an OpenAI-compatible endpoint whether `output` answers the item
// as its reference does; the verdict ("yes"/"no") decides. Throws Error if the judge fails.
ItemScore score_with_judge(const EvalItem& item, const std::string& output, const std::string& finish,
                           const OpenAIEndpoint& judge);

double pass_at_k(int n, int c, int k);
// 95% Wilson score interval for k successes of n.
std::pair<double, double> wilson_interval(int k, int n, double z = 1.96);
// Exact two-sided McNemar p-value from the discordant counts b and c.
double mcnemar_p(int b, int c);

}  // namespace cogumi
