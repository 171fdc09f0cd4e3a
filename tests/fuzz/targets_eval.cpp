// Targets for the benchmark loaders (each reads a file, written to scratch space) and BFCL
// tool-call matching. Loaded items are also scored, so fuzzed references (a regex, a number, a
// ground truth) reach the scoring code the way a benchmark file delivers them.
#include <algorithm>

#include "eval/benchmark.h"
#include "eval/extract.h"
#include "eval/sandbox.h"
#include "eval/score.h"
#include "fuzz.h"

namespace cogumi::fuzz {

namespace {

void check_score(const ItemScore& s) {
  FUZZ_CHECK(s.correct == s.failure_type.empty(), "a score is correct exactly when it has no failure type (got '" +
                                                      s.failure_type + "', correct=" + std::to_string(s.correct) + ")");
}

// A call list that answers `gt` exactly, or null when `gt` is not in BFCL's documented shape
// [{"name": {"arg": [accepted scalars or lists of scalars]}}] or an argument accepts nothing.
// Each argument takes its first accepted value; only-"" (optional) arguments are left out.
json perfect_calls(const json& gt) {
  if (!gt.is_array()) return nullptr;
  auto scalar = [](const json& v) { return !v.is_object() && !v.is_array(); };
  json calls = json::array();
  for (const auto& entry : gt) {
    if (!entry.is_object() || entry.size() != 1 || !entry.begin().value().is_object()) return nullptr;
    json args = json::object();
    for (const auto& [k, accepted] : entry.begin().value().items()) {
      if (!accepted.is_array() || accepted.empty()) return nullptr;
      for (const auto& v : accepted)
        if (!scalar(v) && !(v.is_array() && std::all_of(v.begin(), v.end(), scalar))) return nullptr;
      auto it = std::find_if(accepted.begin(), accepted.end(), [](const json& v) { return v != ""; });
      if (it != accepted.end()) args[k] = *it;
    }
    calls.push_back({{"name", entry.begin().key()}, {"arguments", args}});
  }
  return calls;
}

// BFCL matching is order-insensitive: the exact answer matches in its order and reversed, and
// scores as correct when a model writes it.
void check_perfect_calls(const json& gt) {
  json calls = perfect_calls(gt);
  if (calls.is_null()) return;
  std::string why;
  const json none;
  FUZZ_CHECK(match_tool_calls(calls, gt, none, &why),
             "the exact calls " + calls.dump() + " do not match " + gt.dump() + ": " + why);
  std::reverse(calls.begin(), calls.end());
  FUZZ_CHECK(match_tool_calls(calls, gt, none, &why),
             "the exact calls, reversed, " + calls.dump() + " do not match " + gt.dump() + ": " + why);
  EvalItem item;
  item.kind = TaskKind::kToolCall;
  item.benchmark = "bfcl";
  item.ground_truth = gt;
  ItemScore s = score_output(item, "Calls: " + calls.dump(), "stop");
  FUZZ_CHECK(s.correct, "the exact calls written out score as " + s.failure_type + ": " + s.detail);
}

void score_items(const std::vector<EvalItem>& items) {
  for (size_t i = 0; i < std::min<size_t>(items.size(), 8); ++i) {
    const EvalItem& it = items[i];
    FUZZ_CHECK(!it.id.empty() || it.benchmark != "gsm8k", "gsm8k item without an id");
    if (it.kind == TaskKind::kCode) {
      std::string prog = code_program(it, it.question);
      // libFuzzer lifts compared strings into its inputs, so it learns the per-process marker that
      // no model output can know; the property holds for items that do not already quote it.
      std::string texts = it.question + it.code_prompt + it.test + it.test_setup + it.entry_point;
      for (const auto& t : it.test_list) texts += t;
      if (texts.find("COGUMI_TESTS_PASSED_") == std::string::npos)
        FUZZ_CHECK(prog.find(code_pass_marker()) == std::string::npos, "the program text holds the pass marker");
      SandboxResult run;
      run.outcome = SandboxOutcome::kFailed;
      run.stderr_tail = it.solution;
      check_score(score_code(it, it.question, "stop", &run));
      check_score(score_code(it, it.question, "length", nullptr));
      run.outcome = SandboxOutcome::kPassed;
      run.stdout_tail = it.question;  // exited 0 without printing the marker: not a pass
      ItemScore early = score_code(it, it.solution, "stop", &run);
      check_score(early);
      FUZZ_CHECK(!early.correct || it.question.find(code_pass_marker()) != std::string::npos,
                 "a program that never printed the pass marker passed");
      run.stdout_tail = it.question + code_pass_marker() + "\n";
      FUZZ_CHECK(score_code(it, it.solution, "stop", &run).correct, "a program that printed the pass marker failed");
      continue;
    }
    check_score(score_output(it, it.question, "stop"));
    check_score(score_output(it, it.solution, "length"));
    if (it.kind == TaskKind::kToolCall) check_perfect_calls(it.ground_truth);
  }
}

std::vector<EvalItem> load(const std::string& kind, const std::string& file, std::string_view in,
                           const LoadOptions& o = {}) {
  auto items = load_benchmark(kind, write_scratch(file, in), o);
  FUZZ_CHECK(!items.empty(), "load_benchmark returned no items without an error");
  score_items(items);
  return items;
}

bool gzip(std::string_view in) { return in.size() >= 2 && uint8_t(in[0]) == 0x1f && uint8_t(in[1]) == 0x8b; }

}  // namespace

void target_load_gsm8k(std::string_view in) {
  for (const auto& it : load("gsm8k", "test.jsonl", in)) {
    FUZZ_CHECK(it.kind == TaskKind::kNumeric, "gsm8k item not numeric");
    FUZZ_CHECK(it.solution.find("####") != std::string::npos, "gsm8k solution without '####'");
  }
}

void target_load_mmlu(std::string_view in) {
  for (const auto& it : load("mmlu", "subject_test.csv", in)) {
    FUZZ_CHECK(it.choices.size() == 4, "mmlu item without 4 choices");
    FUZZ_CHECK(it.reference.size() == 1 && it.reference[0] >= 'A' && it.reference[0] <= 'D',
               "mmlu reference '" + it.reference + "' is not A-D");
  }
}

void target_load_humaneval(std::string_view in) {
  load("humaneval", gzip(in) ? "HumanEval.jsonl.gz" : "HumanEval.jsonl", in);
}

void target_load_mbpp(std::string_view in) { load("mbpp", "mbpp.jsonl", in); }

void target_load_bbh(std::string_view in) { load("bbh", "task.json", in); }

// Questions before the first NUL byte, answers after it, in the default layout
// (possible_answer/<same name> beside the questions).
void target_load_bfcl(std::string_view in) {
  auto [q, a] = split_nul(in);
  write_scratch("bfcl/possible_answer/simple.jsonl", a);
  load("bfcl", "bfcl/simple.jsonl", q);
}

// The generic JSONL loader; the input's length picks the scoring, so each is reached.
void target_load_jsonl(std::string_view in) {
  static const char* kScorings[] = {"exact", "normalized", "numeric", "regex"};
  LoadOptions o;
  o.scoring = kScorings[in.size() % 4];
  load("jsonl", "data.jsonl", in, o);
}

// Model output (text; JSON found in it as scoring finds it), ground truth (JSON) and, when
// present, the function list (JSON), separated by NUL bytes.
void target_tool_calls(std::string_view in) {
  auto [calls_text, rest] = split_nul(in);
  auto [gt_text, fn_text] = split_nul(rest);
  json calls = json::parse(calls_text, nullptr, false);
  if (calls.is_discarded()) calls = extract_json(calls_text).value_or(json());
  json gt = json::parse(gt_text, nullptr, false);
  if (gt.is_discarded()) gt = nullptr;
  json functions = json::parse(fn_text, nullptr, false);
  if (functions.is_discarded()) functions = nullptr;
  std::string why;
  CallMatch m = check_tool_calls(calls, gt, functions, &why);
  if (m != CallMatch::kMatched) FUZZ_CHECK(!why.empty(), "a mismatch without a reason");
  FUZZ_CHECK(match_tool_calls(calls, gt, functions, nullptr) == (m == CallMatch::kMatched),
             "match_tool_calls and check_tool_calls disagree");
  check_perfect_calls(gt);

  EvalItem item;
  item.kind = TaskKind::kToolCall;
  item.benchmark = "bfcl";
  item.ground_truth = gt;
  item.functions = functions;
  check_score(score_output(item, std::string(calls_text), "stop"));
}

}  // namespace cogumi::fuzz
