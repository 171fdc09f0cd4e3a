#include "eval/extract.h"

#include <cctype>
#include <optional>
#include <regex>
#include <algorithm>
#include <sstream>
#include <vector>

namespace cogumi {

// libstdc++'s regex recurses once per character a match consumes: an unbounded quantifier over a
// long output (a 50,000-character line) overflows the stack. Every pattern that runs over
// output text therefore bounds its repeats, and numbers longer than any answer are not numbers.
constexpr size_t kMaxNumberChars = 100;

std::string normalize_number(std::string_view in) {
  if (in.size() > kMaxNumberChars) return "";
  std::string s;
  for (char c : in)
    if (c != ',' && c != '$' && c != ' ' && c != '%') s += c;
  while (!s.empty() && (s.back() == '.')) s.pop_back();
  if (s.empty()) return "";
  static const std::regex num(R"(^[-+]?(\d+\.?\d*|\.\d+)$)");
  if (!std::regex_match(s, num)) return "";
  if (s[0] == '+') s.erase(0, 1);
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
    if (s.empty() || s == "-") s = "0";  // ".0", "-.0": zero, not "" or "-"
  }
  // Leading zeros ("007" -> "7"), then negative zero: "-00" is "0", not "-0".
  size_t neg = s[0] == '-' ? 1 : 0;
  while (s.size() > neg + 1 && s[neg] == '0' && s[neg + 1] != '.') s.erase(neg, 1);
  if (s == "-0") s = "0";
  return s;
}

Extraction extract_numeric(std::string_view output) {
  Extraction e;
  std::string text(output);
  static const std::regex strict1(R"(####\s{0,16}\$?\s{0,16}([-+]?[\d,]{0,40}\.?\d{1,40}))");
  static const std::regex strict2(R"([Tt]he (?:final )?answer is:?\s{0,16}\$?\s{0,16}([-+]?[\d,]{0,40}\.?\d{1,40}))");
  std::smatch m;
  if (std::regex_search(text, m, strict1) || std::regex_search(text, m, strict2)) {
    std::string n = normalize_number(m[1].str());
    if (!n.empty()) e.strict = n;
  }
  static const std::regex any(R"([-+]?\$?\d[\d,]{0,40}\.?\d{0,40})");
  std::string last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), any); it != std::sregex_iterator(); ++it) {
    std::string n = normalize_number(it->str());
    if (!n.empty()) last = n;
  }
  if (!last.empty()) e.flexible = last;
  return e;
}

namespace {

// extract_choice's patterns for n choices (letters A.. the n-th), compiled once per n: compiling
// them on every call made choice extraction (and MMLU scoring) ~100x slower than matching.
struct ChoicePatterns {
  std::regex strict1, lead, standalone;
  explicit ChoicePatterns(int n_choices) {
    std::string letters(size_t(n_choices), 'A');
    for (int i = 0; i < n_choices; ++i) letters[i] = char('A' + i);
    std::string cls = "[" + letters + "]";
    strict1 = std::regex("[Aa]nswer(?: is)?:?\\s{0,16}\\(?(" + cls + ")\\b");
    lead = std::regex("^\\s{0,64}\\(?(" + cls + ")(?:[).:\\s]|$)");
    standalone = std::regex("(?:^|[^A-Za-z])(" + cls + ")(?![A-Za-z])");
  }
};

constexpr int kMaxCachedChoices = 26;  // A..Z

const ChoicePatterns& choice_patterns(int n_choices) {
  // Built once, thread-safe (a function-local static); counts outside 1..26 compile per call below.
  static const std::vector<ChoicePatterns> cache = [] {
    std::vector<ChoicePatterns> v;
    v.reserve(kMaxCachedChoices);
    for (int n = 1; n <= kMaxCachedChoices; ++n) v.emplace_back(n);
    return v;
  }();
  return cache[size_t(n_choices - 1)];
}

}  // namespace

Extraction extract_choice(std::string_view output, int n_choices) {
  Extraction e;
  std::string text(output);
  std::optional<ChoicePatterns> own;
  if (n_choices < 1 || n_choices > kMaxCachedChoices) own.emplace(n_choices);
  const ChoicePatterns& p = own ? *own : choice_patterns(n_choices);
  const std::regex& strict1 = p.strict1;
  const std::regex& lead = p.lead;
  std::smatch m;
  // The last "answer: X" wins: a worked answer may name the option's text first (which can itself
  // hold "answer"), and the letter it settles on comes last.
  for (auto it = std::sregex_iterator(text.begin(), text.end(), strict1); it != std::sregex_iterator(); ++it)
    e.strict = (*it)[1].str();
  if (!e.strict && std::regex_search(text, m, lead)) e.strict = m[1].str();
  // A stated answer is also the flexible one: " Vitamin C\nAnswer: B" answers B, not the C of the
  // option's text. Without one, the first standalone letter.
  if (e.strict) {
    e.flexible = e.strict;
    return e;
  }
  if (std::regex_search(text, m, p.standalone)) e.flexible = m[1].str();
  return e;
}

Extraction extract_text_answer(std::string_view output) {
  Extraction e;
  std::string text(output);
  static const std::regex strict(R"([Tt]he answer is:?\s{0,16}([^\n]{1,1000}?)\.?[ \t\r]{0,16}(?:\n|$))");
  std::smatch m;
  if (std::regex_search(text, m, strict)) e.strict = m[1].str();
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    size_t a = line.find_first_not_of(" \t\r"), b = line.find_last_not_of(" \t\r");
    if (a == std::string::npos) continue;
    e.flexible = line.substr(a, b - a + 1);
    break;
  }
  return e;
}

std::string extract_code(std::string_view output) {
  std::string text(output);
  std::vector<size_t> fences;
  for (size_t at = text.find("```"); at != std::string::npos; at = text.find("```", at + 3)) fences.push_back(at);
  if (fences.empty()) return text;
  const size_t first = fences[0];
  bool tagged = first + 3 < text.size() && std::isalpha(static_cast<unsigned char>(text[first + 3]));
  bool text_before = text.find_first_not_of(" \t\r\n") < first;
  // A bare fence after code with no partner closes a block the prompt opened (a completion that
  // continues "```python\n<prompt>"): the code is what precedes it. Prose that follows with its
  // own blocks keeps the count odd.
  if (!tagged && text_before && fences.size() % 2 == 1) return text.substr(0, first);
  size_t nl = text.find('\n', first);
  if (nl == std::string::npos) return text;
  auto close = std::upper_bound(fences.begin(), fences.end(), nl);
  if (close == fences.end()) return text.substr(nl + 1);  // unclosed (truncated) block
  size_t end = *close;
  // A closing fence on its own line: its indentation is not code.
  size_t line = text.rfind('\n', end - 1);
  if (line != std::string::npos && line >= nl && text.find_first_not_of(" \t", line + 1) == end) end = line + 1;
  return text.substr(nl + 1, end - nl - 1);
}

std::optional<nlohmann::json> extract_json(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '{' && s[i] != '[') continue;
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t j = i; j < s.size(); ++j) {
      char c = s[j];
      if (in_str) {
        if (esc) esc = false;
        else if (c == '\\') esc = true;
        else if (c == '"') in_str = false;
        continue;
      }
      if (c == '"') in_str = true;
      else if (c == '{' || c == '[') ++depth;
      else if (c == '}' || c == ']') {
        if (--depth == 0) {
          auto j2 = nlohmann::json::parse(s.substr(i, j - i + 1), nullptr, false);
          if (!j2.is_discarded()) return j2;
          break;
        }
      }
    }
  }
  return std::nullopt;
}

std::string normalize_text(std::string_view s) {
  std::string lower;
  for (unsigned char c : s) lower += std::ispunct(c) ? ' ' : char(std::tolower(c));
  std::istringstream in(lower);
  std::string out, w;
  while (in >> w) {
    if (w == "a" || w == "an" || w == "the") continue;
    if (!out.empty()) out += ' ';
    out += w;
  }
  return out;
}

}  // namespace cogumi
