#include "eval/score.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include <fmt/format.h>

#include "eval/extract.h"

namespace cogumi {

namespace {

bool is_empty_or_refusal(const std::string& out) {
  if (out.find_first_not_of(" \t\r\n") == std::string::npos) return true;
  static const std::regex refusal(R"(^\s*(I'm sorry|I am sorry|I cannot|I can't|As an AI|I'm unable|I am unable))",
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

bool text_equal(const std::string& got, const EvalItem& item) {
  const std::string& scoring = item.scoring;
  if (scoring == "exact") return got == item.reference;
  if (scoring == "numeric") {
    std::string a = normalize_number(got), b = normalize_number(item.reference);
    return !a.empty() && numbers_equal(a, b);
  }
  if (scoring == "regex") {
    try {
      return std::regex_search(got, std::regex(item.reference));
    } catch (const std::regex_error&) {
      return false;
    }
  }
  return normalize_text(got) == normalize_text(item.reference);
}

// Final failure type for an incorrect answer, given whether anything was extracted.
std::string classify(const std::string& output, const std::string& finish, bool extracted) {
  if (finish == "error") return "error";
  if (is_empty_or_refusal(output)) return "empty_or_refusal";
  if (finish == "length") return "truncated";
  return extracted ? "wrong_answer" : "no_answer";
}

// ---- tool calls ------------------------------------------------------------

std::string std_string(const std::string& s) {
  std::string out;
  for (unsigned char c : s)
    if (!std::isspace(c) && c != ',' && c != '.' && c != '/' && c != '-' && c != '_' && c != '*' && c != '^')
      out += char(std::tolower(c));
  return out;
}

bool value_matches(const json& got, const json& want) {
  if (want.is_number() && got.is_number()) return std::fabs(got.get<double>() - want.get<double>()) < 1e-9;
  if (want.is_string() && got.is_string()) return std_string(got.get<std::string>()) == std_string(want.get<std::string>());
  if (want.is_boolean() && got.is_boolean()) return got == want;
  if (want.is_array() && got.is_array()) {
    if (want.size() != got.size()) return false;
    for (size_t i = 0; i < want.size(); ++i)
      if (!value_matches(got[i], want[i])) return false;
    return true;
  }
  if (want.is_object() && got.is_object()) {
    for (auto& [k, v] : want.items()) {
      if (!got.contains(k)) {
        if (v.is_array() && std::any_of(v.begin(), v.end(), [](const json& x) { return x == ""; })) continue;
        return false;
      }
      // Nested ground truth lists accepted values per key.
      if (v.is_array() && !got[k].is_array()) {
        if (!std::any_of(v.begin(), v.end(), [&](const json& x) { return value_matches(got[k], x); })) return false;
      } else if (!value_matches(got[k], v)) {
        return false;
      }
    }
    return true;
  }
  return got == want;
}

// Model output -> list of {"name", "arguments"} (accepts the common shapes).
std::vector<std::pair<std::string, json>> normalize_calls(const json& j) {
  std::vector<std::pair<std::string, json>> out;
  auto one = [&](const json& c) {
    if (!c.is_object()) return;
    const json* call = c.contains("function") && c["function"].is_object() ? &c["function"] : &c;
    if (call->contains("name")) {
      json args = call->value("arguments", call->value("parameters", json::object()));
      if (args.is_string()) args = json::parse(args.get<std::string>(), nullptr, false);
      out.emplace_back((*call)["name"].get<std::string>(), args);
    } else if (call->size() == 1 && call->begin().value().is_object()) {
      out.emplace_back(call->begin().key(), call->begin().value());
    }
  };
  if (j.is_array()) {
    for (auto& c : j) one(c);
  } else if (j.contains("tool_calls") && j["tool_calls"].is_array()) {
    for (auto& c : j["tool_calls"]) one(c);
  } else {
    one(j);
  }
  return out;
}

bool names_match(const std::string& got, const std::string& want) {
  if (got == want) return true;
  std::string w = want;
  std::replace(w.begin(), w.end(), '.', '_');
  return got == w;
}

bool call_matches(const std::string& name, const json& args, const std::string& gt_name, const json& gt_args,
                  std::string* why) {
  if (!names_match(name, gt_name)) {
    *why = "function '" + name + "' instead of '" + gt_name + "'";
    return false;
  }
  if (!args.is_object()) {
    *why = "arguments of '" + name + "' are not an object";
    return false;
  }
  for (auto& [k, v] : args.items()) {
    if (!gt_args.contains(k)) {
      *why = "unexpected argument '" + k + "'";
      return false;
    }
  }
  for (auto& [k, accepted] : gt_args.items()) {
    if (!args.contains(k)) {
      bool optional = accepted.is_array() && std::any_of(accepted.begin(), accepted.end(), [](const json& x) { return x == ""; });
      if (!optional) {
        *why = "missing argument '" + k + "'";
        return false;
      }
      continue;
    }
    bool ok = accepted.is_array()
                  ? std::any_of(accepted.begin(), accepted.end(), [&](const json& x) { return value_matches(args[k], x); })
                  : value_matches(args[k], accepted);
    if (!ok) {
      *why = "argument '" + k + "' = " + args[k].dump() + " not in " + accepted.dump();
      return false;
    }
  }
  return true;
}

}  // namespace

bool match_tool_calls(const json& calls, const json& ground_truth, std::string* why) {
  std::string dummy;
  if (!why) why = &dummy;
  auto got = normalize_calls(calls);
  if (!ground_truth.is_array()) {
    *why = "ground truth is not a list";
    return false;
  }
  if (got.size() != ground_truth.size()) {
    *why = fmt::format("{} call(s), expected {}", got.size(), ground_truth.size());
    return false;
  }
  // Order-insensitive (parallel calls): each expected call must match a distinct produced call.
  std::vector<bool> used(got.size(), false);
  for (const auto& gt : ground_truth) {
    if (!gt.is_object() || gt.size() != 1) {
      *why = "malformed ground truth entry";
      return false;
    }
    bool found = false;
    std::string last_why;
    for (size_t i = 0; i < got.size() && !found; ++i) {
      if (used[i]) continue;
      if (call_matches(got[i].first, got[i].second, gt.begin().key(), gt.begin().value(), &last_why)) {
        used[i] = found = true;
      }
    }
    if (!found) {
      *why = last_why;
      return false;
    }
  }
  return true;
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
      s.correct = e.flexible && numbers_equal(*e.flexible, ref);
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
      // Flexible: the strict answer, the first line, or (regex scoring) the whole output.
      s.correct = s.correct_strict || (e.flexible && text_equal(*e.flexible, item)) ||
                  (item.scoring == "regex" && text_equal(output, item));
      break;
    }
    case TaskKind::kToolCall: {
      auto j = extract_json(output);
      if (!j) {
        s.failure_type = finish == "length" ? "truncated" : is_empty_or_refusal(output) ? "empty_or_refusal" : "malformed_json";
        return s;
      }
      s.strict = s.flexible = j->dump();
      s.correct = s.correct_strict = match_tool_calls(*j, item.ground_truth, &s.detail);
      if (!s.correct) s.failure_type = "wrong_answer";
      return s;
    }
    case TaskKind::kCode:
      return score_code(item, output, finish, "", "");
  }
  if (!s.correct) s.failure_type = classify(output, finish, s.flexible.has_value());
  return s;
}

std::string code_program(const EvalItem& item, const std::string& output) {
  std::string code = extract_code(output);
  if (item.benchmark == "humaneval" || !item.code_prompt.empty()) {
    // A completion continues the prompt; a whole function (chat answers) replaces it, keeping
    // the prompt's imports.
    std::string body = item.code_prompt + code;
    if (code.find("def " + item.entry_point + "(") != std::string::npos) {
      body.clear();
      std::istringstream in(item.code_prompt);
      for (std::string line; std::getline(in, line);)
        if (line.rfind("import ", 0) == 0 || line.rfind("from ", 0) == 0) body += line + "\n";
      body += code;
    }
    return body + "\n\n" + item.test + "\n\ncheck(" + item.entry_point + ")\n";
  }
  std::string prog = item.test_setup + "\n" + code + "\n\n";
  for (const auto& t : item.test_list) prog += t + "\n";
  return prog;
}

ItemScore score_code(const EvalItem& item, const std::string& output, const std::string& finish,
                     const std::string& sandbox, const std::string& stderr_tail) {
  (void)item;
  ItemScore s;
  s.correct = s.correct_strict = sandbox == "passed";
  if (s.correct) return s;
  s.detail = stderr_tail.size() > 600 ? stderr_tail.substr(stderr_tail.size() - 600) : stderr_tail;
  if (finish == "error") s.failure_type = "error";
  else if (is_empty_or_refusal(output)) s.failure_type = "empty_or_refusal";
  else if (sandbox == "timeout") s.failure_type = "timeout";
  else if (stderr_tail.find("SyntaxError") != std::string::npos ||
           stderr_tail.find("IndentationError") != std::string::npos)
    s.failure_type = finish == "length" ? "truncated" : "compile_error";
  else if (sandbox.empty()) s.failure_type = "no_answer";
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
