#include "eval/score.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include <fmt/format.h>
#include <openssl/rand.h>
#include <re2/re2.h>

#include "core/error.h"
#include "eval/extract.h"

namespace cogumi {

namespace {

bool is_empty_or_refusal(const std::string& out) {
  if (out.find_first_not_of(" \t\r\n") == std::string::npos) return true;
  static const std::regex refusal(R"(^\s{0,64}(I'm sorry|I am sorry|I cannot|I can't|As an AI|I'm unable|I am unable))",
                                  std::regex::icase);
  return std::regex_search(out, refusal);
}

bool numbers_equal(const std::string& a, const std::string& b) {
  if (a == b) return true;
  try {
    double x = std::stod(a), y = std::stod(b);
    return std::fabs(x - y) <= 1e-6 * std::max(1.0, std::fabs(y));
  } catch (...) {
    return false;
  }
}

std::string trimmed(const std::string& s) {
  size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// "(B)" -> 'B'. BBH writes its multiple-choice targets this way.
std::optional<char> target_letter(const std::string& reference) {
  static const std::regex letter(R"(^\(([A-Za-z])\)$)");
  std::smatch m;
  std::string r = trimmed(reference);
  if (!std::regex_match(r, m, letter)) return std::nullopt;
  return char(std::toupper(static_cast<unsigned char>(m[1].str()[0])));
}

// The option an answer names: "(B)", "(b) text", "B", "B.", "B)". Not the article in "A dog".
std::optional<char> answer_letter(const std::string& got) {
  static const std::regex paren(R"(^\(([A-Za-z])\))"), bare(R"(^([A-Z])(?:[.):]|$))");
  std::smatch m;
  std::string g = trimmed(got);
  if (std::regex_search(g, m, paren) || std::regex_search(g, m, bare))
    return char(std::toupper(static_cast<unsigned char>(m[1].str()[0])));
  return std::nullopt;
}

// Lowercase, whitespace collapsed, one trailing period dropped: for references that SQuAD
// normalization would erase ("] ) }").
std::string squash(const std::string& s) {
  std::istringstream in(s);
  std::string out, w;
  while (in >> w) out += (out.empty() ? "" : " ") + w;
  if (out.size() > 1 && out.back() == '.') out.pop_back();
  for (char& c : out) c = char(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool text_equal(const std::string& got, const EvalItem& item) {
  const std::string& scoring = item.scoring;
  if (scoring == "exact") return got == item.reference;
  if (scoring == "numeric") {
    std::string a = normalize_number(got), b = normalize_number(item.reference);
    return !a.empty() && numbers_equal(a, b);
  }
  if (scoring == "regex") {
    // The reference is a user-supplied pattern: RE2 matches in time linear in the output, where
    // std::regex backtracks exponentially on stacked quantifiers ("(a*)*b" over "aaaa...").
    RE2::Options opt;
    opt.set_log_errors(false);
    RE2 re(item.reference, opt);
    if (!re.ok())
      fail("item '{}': invalid regex reference '{}': {} (RE2 syntax)", item.id, item.reference, re.error());
    return RE2::PartialMatch(got, re);
  }
  return answers_match(got, item.reference);
}

// Final failure type for an incorrect answer, given whether anything was extracted.
std::string classify(const std::string& output, const std::string& finish, bool extracted) {
  if (finish == "error") return "error";
  if (is_empty_or_refusal(output)) return "empty_or_refusal";
  if (finish == "length") return "truncated";
  return extracted ? "wrong_answer" : "no_answer";
}

ItemScore score_tool_call(const EvalItem& item, const std::string& output, const std::string& finish) {
  ItemScore s;
  auto j = extract_json(output);
  if (!j) {
    s.failure_type = finish == "length" ? "truncated" : is_empty_or_refusal(output) ? "empty_or_refusal" : "malformed_json";
    return s;
  }
  s.strict = s.flexible = j->dump();
  CallMatch m = check_tool_calls(*j, item.ground_truth, item.functions, &s.detail);
  s.correct = s.correct_strict = m == CallMatch::kMatched;
  if (m == CallMatch::kMalformed) s.failure_type = finish == "length" ? "truncated" : "malformed_json";
  else if (m == CallMatch::kMismatch) s.failure_type = "wrong_answer";
  return s;
}

}  // namespace

bool answers_match(const std::string& got, const std::string& reference) {
  if (auto want = target_letter(reference)) return answer_letter(got) == want;
  std::string ref_number = normalize_number(trimmed(reference));
  if (!ref_number.empty()) {
    std::string n = normalize_number(trimmed(got));
    return !n.empty() && numbers_equal(n, ref_number);
  }
  std::string ref = normalize_text(reference);
  if (ref.empty()) return !squash(reference).empty() && squash(got) == squash(reference);
  return normalize_text(got) == ref;
}

ItemScore score_output(const EvalItem& item, const std::string& output, const std::string& finish) {
  ItemScore s;
  switch (item.kind) {
    case TaskKind::kNumeric: {
      Extraction e = extract_numeric(output);
      s.strict = e.strict;
      s.flexible = e.flexible;
      std::string ref = normalize_number(item.reference);
      s.correct_strict = e.strict && numbers_equal(*e.strict, ref);
      // A stated answer is the answer: the last number of "#### 7 (checked: 3 + 4)" is not.
      s.correct = e.strict ? s.correct_strict : e.flexible && numbers_equal(*e.flexible, ref);
      break;
    }
    case TaskKind::kMultipleChoice: {
      Extraction e = extract_choice(output, int(std::max<size_t>(2, item.choices.size())));
      s.strict = e.strict;
      s.flexible = e.flexible;
      s.correct_strict = e.strict && *e.strict == item.reference;
      s.correct = e.flexible && *e.flexible == item.reference;
      break;
    }
    case TaskKind::kText: {
      Extraction e = extract_text_answer(output);
      s.strict = e.strict;
      s.flexible = e.flexible;
      s.correct_strict = e.strict && text_equal(*e.strict, item);
      // Flexible: the strict answer when stated, else the first line, or (regex scoring) the
      // whole output.
      if (e.strict) s.correct = s.correct_strict;
      else if (item.scoring == "regex") s.correct = text_equal(output, item);
      else s.correct = e.flexible && text_equal(*e.flexible, item);
      break;
    }
    case TaskKind::kToolCall:
      return score_tool_call(item, output, finish);
    case TaskKind::kCode:
      return score_code(item, output, finish, nullptr);
  }
  if (!s.correct) s.failure_type = classify(output, finish, s.flexible.has_value());
  return s;
}

const std::string& code_pass_marker() {
  static const std::string marker = [] {
    unsigned char b[16];
    if (RAND_bytes(b, sizeof b) != 1) fail("OpenSSL RAND_bytes failed: cannot make the code-test marker");
    std::string m = "COGUMI_TESTS_PASSED_";
    for (unsigned char c : b) m += fmt::format("{:02x}", c);
    return m;
  }();
  return marker;
}

namespace {

// Python that prints the marker without containing it: two random-looking hex numbers whose
// XOR is the marker's bytes (the hex alphabet cannot spell its capitals). Builtins and os come
// from fresh imports, so a solution that shadows `int` or `print` cannot break it.
std::string marker_epilogue() {
  const std::string& m = code_pass_marker();
  std::vector<unsigned char> pad(m.size());
  if (RAND_bytes(pad.data(), int(pad.size())) != 1) fail("OpenSSL RAND_bytes failed: cannot make the code-test marker");
  std::string a, b;
  for (size_t i = 0; i < m.size(); ++i) {
    a += fmt::format("{:02x}", pad[i]);
    b += fmt::format("{:02x}", pad[i] ^ static_cast<unsigned char>(m[i]));
  }
  return fmt::format(
      "\n\nimport builtins as _cogumi_b, os as _cogumi_os\n"
      "_cogumi_os.write(1, b'\\n' + (_cogumi_b.int('{}', 16) ^ _cogumi_b.int('{}', 16)).to_bytes({}, 'big') + b'\\n')\n",
      a, b, m.size());
}

// The prompt up to the entry point's definition: its imports and helper functions
// (HumanEval/10's is_palindrome, /38's encode_cyclic), for a whole-function answer.
std::string prompt_before_entry(const EvalItem& item) {
  std::regex def("(^|\\n)(async\\s+)?def\\s+" + item.entry_point + "\\s*\\(");
  std::smatch m;
  if (std::regex_search(item.code_prompt, m, def)) return item.code_prompt.substr(0, size_t(m.position(0) + m[1].length()));
  std::string out;
  std::istringstream in(item.code_prompt);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("import ", 0) == 0 || line.rfind("from ", 0) == 0) out += line + "\n";
  return out;
}

}  // namespace

std::string code_program_body(const EvalItem& item, const std::string& output) {
  std::string text = output;
  if (item.benchmark == "mbpp") {
    // MBPP asks for [BEGIN] code [DONE]; in chat mode no stop string cuts the answer there.
    if (size_t done = text.find("[DONE]"); done != std::string::npos) text.resize(done);
    if (size_t begin = text.find("[BEGIN]"); begin != std::string::npos) text.erase(0, begin + 7);
  }
  std::string code = extract_code(text);
  if (item.benchmark == "humaneval" || !item.code_prompt.empty()) {
    // A completion continues the prompt; a whole function (chat answers) replaces the prompt's
    // stub and keeps everything before it.
    bool whole = !item.entry_point.empty() && code.find("def " + item.entry_point + "(") != std::string::npos;
    std::string body = whole ? prompt_before_entry(item) + code : item.code_prompt + code;
    return body + "\n\n" + item.test + "\n\ncheck(" + item.entry_point + ")\n";
  }
  // MBPP: upstream runs the setup after the solution (it may build the solution's classes).
  std::string prog = code + "\n\n" + item.test_setup + "\n\n";
  for (const auto& t : item.test_list) prog += t + "\n";
  return prog;
}

std::string code_program_ending() { return marker_epilogue(); }

std::string code_program(const EvalItem& item, const std::string& output) {
  return code_program_body(item, output) + marker_epilogue();
}

ItemScore score_code(const EvalItem& item, const std::string& output, const std::string& finish,
                     const SandboxResult* run) {
  (void)item;
  ItemScore s;
  bool exited_clean = run && run->outcome == SandboxOutcome::kPassed;
  s.correct = s.correct_strict = exited_clean && run->stdout_tail.find(code_pass_marker()) != std::string::npos;
  if (s.correct) return s;
  const std::string err = run ? run->stderr_tail : "";
  s.detail = err.size() > 600 ? err.substr(err.size() - 600) : err;
  if (exited_clean) s.detail = "exited 0 before its tests finished (no pass marker on stdout)";
  if (finish == "error") s.failure_type = "error";
  else if (is_empty_or_refusal(output)) s.failure_type = "empty_or_refusal";
  else if (run && run->outcome == SandboxOutcome::kTimeout) s.failure_type = "timeout";
  else if (err.find("SyntaxError") != std::string::npos || err.find("IndentationError") != std::string::npos)
    s.failure_type = finish == "length" ? "truncated" : "compile_error";
  else if (!run) s.failure_type = "no_answer";
  else s.failure_type = "test_failure";
  return s;
}

ItemScore score_with_judge(const EvalItem& item, const std::string& output, const std::string& finish,
                           const OpenAIEndpoint& judge) {
  ItemScore s;
  s.flexible = output;
  std::string prompt = "You grade answers. Question:\n" + item.question + "\n\nReference answer:\n" + item.reference +
                       "\n\nCandidate answer:\n" + output +
                       "\n\nDoes the candidate answer the question correctly, agreeing with the reference? Reply with "
                       "exactly one word: yes or no.";
  std::string verdict = openai_chat(judge, json::array({{{"role", "user"}, {"content", prompt}}}), 4);
  std::string v = normalize_text(verdict);
  if (v.empty()) {
    // A filtered or empty reply (content null) says nothing about the output: this item fails
    // as an error of the run, the rest are judged.
    s.failure_type = "error";
    s.detail = "judge gave no verdict (empty or null content): " + verdict;
    return s;
  }
  s.strict = v;
  s.detail = "judge: " + verdict;
  s.correct = s.correct_strict = v.rfind("yes", 0) == 0;
  if (!s.correct) s.failure_type = classify(output, finish, true);
  return s;
}

double pass_at_k(int n, int c, int k) {
  if (n - c < k) return 1.0;
  double prod = 1.0;
  for (int i = n - c + 1; i <= n; ++i) prod *= 1.0 - double(k) / i;
  return 1.0 - prod;
}

std::pair<double, double> wilson_interval(int k, int n, double z) {
  if (n == 0) return {0.0, 0.0};
  double p = double(k) / n, z2 = z * z;
  double denom = 1 + z2 / n;
  double centre = (p + z2 / (2 * n)) / denom;
  double half = z * std::sqrt(p * (1 - p) / n + z2 / (4.0 * n * n)) / denom;
  return {std::max(0.0, centre - half), std::min(1.0, centre + half)};
}

double mcnemar_p(int b, int c) {
  int n = b + c;
  if (n == 0) return 1.0;
  int k = std::min(b, c);
  // Two-sided exact binomial test with p = 0.5, in log space for large n.
  double cdf = 0.0;
  for (int i = 0; i <= k; ++i)
    cdf += std::exp(std::lgamma(n + 1) - std::lgamma(i + 1) - std::lgamma(n - i + 1) - n * std::log(2.0));
  return std::min(1.0, 2.0 * cdf);
}

}  // namespace cogumi
