// cogumi/eval: scoring one output against its item, the failure taxonomy, tool-call
// matching (BFCL, in tool_match.cpp), code programs for the sandbox, and the statistics of a
// run (Wilson intervals, pass@k, McNemar). Scoring never throws for anything an output holds:
// a bad output fails its own item with a failure type and a detail.
#pragma once

#include <optional>
#include <string>

#include "data/openai_client.h"
#include "eval/benchmark.h"
#include "eval/sandbox.h"

namespace cogumi {

// Failure types, in the order they are checked (the first that applies wins).
//   empty_or_refusal, error, truncated, malformed_json, compile_error, timeout,
//   test_failure, no_answer, wrong_answer.  "" means correct.
struct ItemScore {
  std::optional<std::string> strict, flexible;  // extracted answers
  bool correct_strict = false;
  // The headline: the strict answer when the output stated one ("#### 7", "The answer is (B)"),
  // else the flexible one; passed for code; matched for tools.
  bool correct = false;
  std::string failure_type;
  std::string detail;          // why (tool-call mismatch, sandbox stderr tail)
};

// Scores a non-code item. finish: "stop", "length", "error", ...
ItemScore score_output(const EvalItem& item, const std::string& output, const std::string& finish);

// Text answers as BBH and generic JSONL items compare them ("normalized" scoring): a reference
// such as "(A)" is a multiple-choice letter and matches "(A)", "A", "A." or "(A) text"; a
// numeric reference compares as a number ("-24" is not "24"); other references compare after
// SQuAD normalization, or, when that leaves nothing ("] ) }"), lowercased with whitespace
// collapsed. An output that normalizes to nothing ("---", "The") never matches.
bool answers_match(const std::string& got, const std::string& reference);

// The program that tests a code completion, for the sandbox. HumanEval: the prompt, the
// completion (or, when the output is a whole function, the prompt's imports and helpers
// followed by it), the tests, check(entry_point). MBPP: the code, test_setup_code (after the
// code, as upstream runs it: setups build objects of classes the solution defines), the
// asserts. The program ends by printing code_pass_marker(), which its text does not contain.
std::string code_program(const EvalItem& item, const std::string& output);
// code_program() without its ending (the same for every program of one process but for the
// marker): what decides the program's outcome, for eval/exec_cache.h's keys.
std::string code_program_body(const EvalItem& item, const std::string& output);
// The ending code_program() puts after the body: prints code_pass_marker() (a new random encoding of it
// each call).
std::string code_program_ending();
// Random per process (OpenSSL RAND_bytes). A program passes only if its stdout shows this
// after its tests returned: exiting 0 early (sys.exit(0), os._exit(0)) is not a pass.
const std::string& code_pass_marker();
// Scores a code item from its sandbox run of code_program(); run is null when no program ran
// (the generation failed).
ItemScore score_code(const EvalItem& item, const std::string& output, const std::string& finish,
                     const SandboxResult* run);

// BFCL's AST checker rules (see tool_match.cpp): `calls` is the JSON the model wrote,
// `functions` the item's function list (declared types and required parameters).
enum class CallMatch { kMatched, kMismatch, kMalformed };
CallMatch check_tool_calls(const json& calls, const json& ground_truth, const json& functions, std::string* why);
// On mismatch *why says what differed.
bool match_tool_calls(const json& calls, const json& ground_truth, const json& functions, std::string* why);
// The call(s) in `calls` against the functions' declarations alone, without a ground truth (the
// runtime's verification of a tool call): each names a listed function, gives its required
// parameters, no undeclared one, each of its declared type. False with *why on the first fault.
bool check_call_schema(const json& calls, const json& functions, std::string* why);

// Judge-model scoring: asks an OpenAI-compatible endpoint whether `output` answers the item
// as its reference does; the verdict ("yes"/"no") decides. A reply without a verdict (null or
// empty content) fails this item as "error". Throws Error if the judge cannot be reached or
// answers with an HTTP error or a reply that is not a chat completion.
ItemScore score_with_judge(const EvalItem& item, const std::string& output, const std::string& finish,
                           const OpenAIEndpoint& judge);

double pass_at_k(int n, int c, int k);
// 95% Wilson score interval for k successes of n.
std::pair<double, double> wilson_interval(int k, int n, double z = 1.96);
// Exact two-sided McNemar p-value from the discordant counts b and c.
double mcnemar_p(int b, int c);

}  // namespace cogumi
