#include "pipeline/gates.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "core/error.h"

namespace cogumi {

namespace {

const std::set<std::string> kScalars = {"router.accuracy",   "ece",
                                        "size_mb",           "compress.kld",
                                        "compress.kld_p99",  "compress.agreement",
                                        "compress.ppl_ratio", "compress.size_mb",
                                        "compress.packed_mb", "compress.accuracy_delta",
                                        "data.kept", "data.contaminated", "data.duplicates", "data.asked",
                                        "data.agreement"};
const std::set<std::string> kDomainNames = {"base", "own", "best", "routed"};

struct Token {
  enum Kind { kName, kNumber, kOp, kSign } kind;
  std::string text;
  double value = 0;
};

std::vector<Token> lex(const std::string& s) {
  std::vector<Token> out;
  for (size_t i = 0; i < s.size();) {
    const char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_' || s[j] == '.')) ++j;
      out.push_back({Token::kName, s.substr(i, j - i)});
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      size_t used = 0;
      double v = 0;
      try {
        v = std::stod(s.substr(i), &used);
      } catch (const std::exception&) {
        fail("'{}' is not a number", s.substr(i));
      }
      if (!std::isfinite(v)) fail("'{}' is not a finite number", s.substr(i, used));
      out.push_back({Token::kNumber, s.substr(i, used), v});
      i += used;
    } else if (c == '>' || c == '<' || c == '=') {
      const bool two = i + 1 < s.size() && s[i + 1] == '=';
      std::string op = s.substr(i, two ? 2 : 1);
      if (op == "=") fail("'=' is not an operator (use ==)");
      out.push_back({Token::kOp, op});
      i += op.size();
    } else if (c == '+' || c == '-') {
      out.push_back({Token::kSign, std::string(1, c)});
      ++i;
    } else {
      fail("unexpected character '{}'", c);
    }
  }
  return out;
}

bool is_domain(const std::vector<std::string>& domains, const std::string& n) {
  return std::find(domains.begin(), domains.end(), n) != domains.end();
}

}  // namespace

bool gate_reserved_name(const std::string& n) {
  return kScalars.count(n) || kDomainNames.count(n) || n == "every" || n == "other" || n == "domain" || n == "router";
}

Gate parse_gate(const std::string& text, const std::vector<std::string>& domains) {
  const std::vector<Token> t = lex(text);
  Gate g;
  g.text = text;
  size_t i = 0;
  auto name_at = [&](size_t k, const char* want) { return k < t.size() && t[k].kind == Token::kName && t[k].text == want; };
  bool routed = false;
  if (name_at(i, "routed")) routed = true, ++i;
  if (name_at(i, "every") && name_at(i + 1, "domain")) {
    g.subject = routed ? GateSubject::kRoutedEveryDomain : GateSubject::kEveryDomain;
    i += 2;
  } else if (name_at(i, "every") && name_at(i + 1, "other") && name_at(i + 2, "domain")) {
    if (routed) fail("'routed every other domain' means nothing: the routed system has no domain of its own");
    g.subject = GateSubject::kEveryOtherDomain;
    i += 3;
  } else if (i < t.size() && t[i].kind == Token::kName && is_domain(domains, t[i].text)) {
    g.subject = routed ? GateSubject::kRoutedDomain : GateSubject::kDomain;
    g.subject_name = t[i++].text;
  } else if (!routed && i < t.size() && t[i].kind == Token::kName && kScalars.count(t[i].text)) {
    g.subject = GateSubject::kScalar;
    g.subject_name = t[i++].text;
  } else {
    std::string known;
    for (auto& d : domains) known += d + ", ";
    fail("the left side must be a domain ({}), 'every domain', 'every other domain', 'routed DOMAIN', "
         "'routed every domain' or one of router.accuracy, ece, size_mb, compress.kld, compress.kld_p99, "
         "compress.agreement, compress.ppl_ratio, compress.size_mb, compress.packed_mb, compress.accuracy_delta, "
         "data.kept, data.contaminated, data.duplicates, data.asked, data.agreement; got '{}'",
         known.empty() ? "none configured" : known.substr(0, known.size() - 2), i < t.size() ? t[i].text : "");
  }
  if (i >= t.size() || t[i].kind != Token::kOp) fail("expected a comparison (>=, <=, >, <, ==) after the left side");
  g.op = t[i++].text;
  const bool in_domain = g.subject != GateSubject::kScalar;
  double sign = 1;
  bool want_term = true;
  for (; i < t.size(); ++i) {
    if (t[i].kind == Token::kSign) {
      if (want_term && !g.rhs.empty()) fail("two signs in a row");
      sign = t[i].text == "-" ? -1 : 1;
      want_term = true;
      continue;
    }
    if (!want_term) fail("expected + or - before '{}'", t[i].text);
    if (t[i].kind == Token::kOp) fail("a second comparison '{}'", t[i].text);
    GateTerm term;
    term.sign = sign;
    if (t[i].kind == Token::kNumber) {
      term.number = t[i].value;
    } else if (kScalars.count(t[i].text) || (in_domain && kDomainNames.count(t[i].text))) {
      term.name = t[i].text;
    } else {
      fail("unknown name '{}' on the right side ({})", t[i].text,
           in_domain ? "base, own, best, routed, router.accuracy, ece, size_mb, compress.*, data.* or a number"
                     : "router.accuracy, ece, size_mb, compress.*, data.* or a number");
    }
    g.rhs.push_back(term);
    want_term = false;
    sign = 1;
  }
  if (g.rhs.empty() || want_term) fail("the right side is missing or ends in a sign");
  return g;
}

json GateMetrics::to_json() const {
  return {{"base", base}, {"routed", routed}, {"with", with}, {"scalars", scalars}, {"missing", missing_reason}};
}

json GateResult::to_json() const {
  json c = json::array();
  for (auto& k : checks)
    c.push_back({{"what", k.what}, {"value", k.value}, {"threshold", k.threshold}, {"passed", k.passed}});
  json j = {{"gate", text}, {"passed", passed}, {"checks", c}};
  if (!error.empty()) j["error"] = error;
  return j;
}

namespace {

// Thrown inside evaluation when a metric is absent; becomes the gate's error.
struct Missing {
  std::string why;
};

double lookup(const std::map<std::string, double>& m, const std::string& k, const std::string& why) {
  auto it = m.find(k);
  if (it == m.end()) throw Missing{why};
  return it->second;
}

struct Evaluator {
  const GateMetrics& m;
  double scalar(const std::string& n) const {
    auto it = m.scalars.find(n);
    if (it != m.scalars.end()) return it->second;
    auto r = m.missing_reason.find(n);
    throw Missing{fmt::format("{} was not measured{}", n, r == m.missing_reason.end() ? "" : ": " + r->second)};
  }
  double own(const std::string& d) const {
    auto it = m.with.find(d);
    if (it == m.with.end()) throw Missing{fmt::format("domain {} has no modifier", d)};
    return lookup(it->second, d, fmt::format("the {} modifier was not evaluated on {}", d, d));
  }
  double best(const std::string& d) const {
    double b = lookup(m.base, d, fmt::format("the base was not evaluated on {}", d));
    for (auto& [mod, row] : m.with)
      if (auto it = row.find(d); it != row.end()) b = std::max(b, it->second);
    return b;
  }
  double name(const std::string& n, const std::string& d) const {
    if (n == "base") return lookup(m.base, d, fmt::format("the base was not evaluated on {}", d));
    if (n == "own") return own(d);
    if (n == "best") return best(d);
    if (n == "routed") return lookup(m.routed, d, fmt::format("the routed system was not evaluated on {}", d));
    return scalar(n);
  }
  double rhs(const Gate& g, const std::string& d) const {
    double v = 0;
    for (auto& t : g.rhs) v += t.sign * (t.name.empty() ? t.number : name(t.name, d));
    return v;
  }
};

bool compare(double a, const std::string& op, double b) {
  // Accuracies are ratios of counts: compare with a little slack for float noise.
  const double eps = 1e-9 * std::max(1.0, std::max(std::abs(a), std::abs(b)));
  if (op == ">=") return a >= b - eps;
  if (op == "<=") return a <= b + eps;
  if (op == ">") return a > b + eps;
  if (op == "<") return a < b - eps;
  return std::abs(a - b) <= eps;
}

}  // namespace

std::vector<GateResult> evaluate_gates(const std::vector<Gate>& gates, const GateMetrics& m) {
  std::vector<GateResult> out;
  Evaluator ev{m};
  for (const Gate& g : gates) {
    GateResult r;
    r.text = g.text;
    auto check = [&](const std::string& what, double value, double threshold) {
      r.checks.push_back({what, value, threshold, compare(value, g.op, threshold)});
    };
    try {
      switch (g.subject) {
        case GateSubject::kScalar:
          check(g.subject_name, ev.scalar(g.subject_name), ev.rhs(g, ""));
          break;
        case GateSubject::kDomain:
          check(g.subject_name + " with " + g.subject_name, ev.own(g.subject_name), ev.rhs(g, g.subject_name));
          break;
        case GateSubject::kRoutedDomain:
          check("routed " + g.subject_name, ev.name("routed", g.subject_name), ev.rhs(g, g.subject_name));
          break;
        case GateSubject::kEveryDomain:
          if (m.with.empty()) throw Missing{"no modifier was evaluated"};
          for (auto& [mod, row] : m.with) check(mod + " with " + mod, ev.own(mod), ev.rhs(g, mod));
          break;
        case GateSubject::kEveryOtherDomain:
          if (m.with.empty()) throw Missing{"no modifier was evaluated"};
          for (auto& [mod, row] : m.with)
            for (auto& [d, acc] : row)
              if (d != mod) check(d + " with " + mod, acc, ev.rhs(g, d));
          break;
        case GateSubject::kRoutedEveryDomain:
          if (m.routed.empty()) throw Missing{"the routed system was not evaluated"};
          for (auto& [d, acc] : m.routed) check("routed " + d, acc, ev.rhs(g, d));
          break;
      }
      r.passed = std::all_of(r.checks.begin(), r.checks.end(), [](const GateCheck& c) { return c.passed; });
    } catch (const Missing& e) {
      r.error = e.why;
      r.passed = false;
    }
    out.push_back(std::move(r));
  }
  return out;
}

std::string gates_text(const json& gates) {
  std::string t;
  for (const json& g : gates["gates"]) {
    t += fmt::format("{}  {}", g["passed"].get<bool>() ? "PASS" : "FAIL", g["gate"].get<std::string>());
    if (g.contains("error")) t += fmt::format("  ({})", g["error"].get<std::string>());
    t += "\n";
    for (const json& c : g["checks"])
      t += fmt::format("      {:<4} {:<28} {:>9.4g}  vs {:.4g}\n", c["passed"].get<bool>() ? "ok" : "FAIL",
                       c["what"].get<std::string>(), c["value"].get<double>(), c["threshold"].get<double>());
  }
  size_t n = gates["gates"].size(), bad = 0;
  for (const json& g : gates["gates"]) bad += !g["passed"].get<bool>();
  t += fmt::format("{} of {} gates passed\n", n - bad, n);
  return t;
}

bool print_gates(const fs::path& run_dir, std::string& text) {
  const fs::path f = run_dir / "gates.json";
  if (!fs::exists(f))
    fail("'{}' has no gates.json: not a pipeline run directory, or the run stopped before its gates stage",
         run_dir.string());
  json g = json::parse(read_file(f), nullptr, false);
  if (g.is_discarded() || !g.contains("gates") || !g["gates"].is_array())
    fail("{}: not a gates file (expected {{\"gates\": [...]}})", f.string());
  text = gates_text(g);
  bool ok = true;
  for (const json& x : g["gates"]) ok = ok && x.value("passed", false);
  return ok;
}

}  // namespace cogumi
