#include "runtime/verify.h"

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "eval/extract.h"
#include "eval/score.h"
#include "runtime/runtime.h"

namespace cogumi {

namespace {

std::string trim_left(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  return b == std::string::npos ? "" : s.substr(b);
}

bool ends_docstring(const std::string& t) {
  return t.find("\"\"\"") != std::string::npos || t.find("'''") != std::string::npos;
}

// A Python string literal of `s` (a JSON string is one; invalid UTF-8 becomes U+FFFD).
std::string python_literal(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// `item` with HumanEval's hidden check() replaced by one that runs the prompt's doctests.
EvalItem with_doctest_check(const EvalItem& item, const std::string& doctests) {
  EvalItem v = item;
  v.test =
      "def check(candidate):\n"
      "    import doctest\n"
      "    _t = doctest.DocTestParser().get_doctest(" +
      python_literal(doctests) +
      ", dict(globals()), 'visible tests', None, 0)\n"
      "    _r = doctest.DocTestRunner(verbose=False, optionflags=doctest.NORMALIZE_WHITESPACE)\n"
      "    _r.run(_t, out=lambda s: None)\n"
      "    assert _r.tries > 0 and _r.failures == 0, 'visible tests failed'\n";
  return v;
}

}  // namespace

std::string prompt_doctests(const std::string& code_prompt) {
  std::string out;
  bool in_example = false;
  size_t start = 0;
  while (start < code_prompt.size()) {
    size_t end = code_prompt.find('\n', start);
    if (end == std::string::npos) end = code_prompt.size();
    const std::string t = trim_left(code_prompt.substr(start, end - start));
    start = end + 1;
    if (t.rfind(">>>", 0) == 0) {
      in_example = true;
      out += t + "\n";
    } else if (in_example && !t.empty() && !ends_docstring(t)) {
      out += t + "\n";  // a "... " continuation or an expected output line
    } else {
      in_example = false;  // the next ">>> " starts the next example: no separator needed
    }
  }
  return out;
}

std::string verifier_for(const EvalItem& item) {
  switch (item.kind) {
    case TaskKind::kCode:
      if (item.benchmark == "mbpp") return item.test_list.empty() ? "" : "tests";
      return !item.entry_point.empty() && !prompt_doctests(item.code_prompt).empty() ? "tests" : "";
    case TaskKind::kToolCall:
      return item.functions.is_array() && !item.functions.empty() ? "schema" : "";
    case TaskKind::kNumeric:
    case TaskKind::kMultipleChoice:
      return "agreement";
    case TaskKind::kText:
      break;
  }
  return "";
}

std::string visible_test_program(const EvalItem& item, const std::string& output) {
  if (item.kind != TaskKind::kCode || verifier_for(item) != "tests") return "";
  if (item.benchmark == "mbpp") return code_program(item, output);  // its asserts are in the prompt
  return code_program(with_doctest_check(item, prompt_doctests(item.code_prompt)), output);
}

std::vector<Verdict> verify_outputs(
    const std::vector<std::pair<const EvalItem*, std::string>>& outputs,
    const SandboxOptions& sandbox, int workers) {
  std::vector<Verdict> out(outputs.size(), Verdict::kUnchecked);
  std::vector<size_t> code_idx;
  std::vector<std::string> programs;
  for (size_t i = 0; i < outputs.size(); ++i) {
    const EvalItem& it = *outputs[i].first;
    const std::string& text = outputs[i].second;
    if (it.kind == TaskKind::kToolCall && verifier_for(it) == "schema") {
      const auto calls = extract_json(text);
      out[i] = calls && check_call_schema(*calls, it.functions, nullptr) ? Verdict::kPassed
                                                                         : Verdict::kFailed;
    } else if (std::string p = visible_test_program(it, text); !p.empty()) {
      code_idx.push_back(i);
      programs.push_back(std::move(p));
    }
  }
  if (programs.empty() || !sandbox_available(sandbox, nullptr)) return out;
  const std::vector<SandboxResult> runs = run_python_batch(programs, sandbox, workers);
  for (size_t k = 0; k < code_idx.size(); ++k) {
    const SandboxResult& r = runs[k];
    const bool passed = r.outcome == SandboxOutcome::kPassed &&
                        r.stdout_tail.find(code_pass_marker()) != std::string::npos;
    out[code_idx[k]] = passed ? Verdict::kPassed : Verdict::kFailed;
  }
  return out;
}

VerifiedVote verified_vote(const std::vector<std::string>& keys, const std::vector<double>& lps,
                           const std::vector<Verdict>& verdicts, const std::string& verifier) {
  if (keys.empty() || keys.size() != lps.size() || keys.size() != verdicts.size())
    fail("verified_vote: {} keys, {} log-probabilities, {} verdicts", keys.size(), lps.size(),
         verdicts.size());
  VerifiedVote v;
  std::vector<size_t> pool;
  for (size_t s = 0; s < keys.size(); ++s)
    if (verdicts[s] == Verdict::kPassed) pool.push_back(s);
  v.passed = int(pool.size());
  if (pool.empty())
    for (size_t s = 0; s < keys.size(); ++s) pool.push_back(s);
  std::vector<std::string> k;
  std::vector<double> l;
  for (size_t s : pool) k.push_back(keys[s]), l.push_back(lps[s]);
  v.index = pool[majority_vote(k, l, &v.votes)];
  if (verifier == "agreement")
    v.verified = keys.size() > 1 && !keys[v.index].empty() && 2 * v.votes > int(keys.size());
  else
    v.verified = verdicts[v.index] == Verdict::kPassed;
  return v;
}

}  // namespace cogumi
