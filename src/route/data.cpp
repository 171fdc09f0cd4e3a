#include "route/data.h"

#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/hash.h"
#include "core/io.h"

namespace cogumi {

namespace {

int choice_index(RouteData& d, const std::string& name) {
  auto it = std::find(d.choices.begin(), d.choices.end(), name);
  if (it != d.choices.end()) return int(it - d.choices.begin());
  d.choices.push_back(name);
  return int(d.choices.size() - 1);
}

void add(RouteData& d, std::string text, int label, double holdout) {
  const bool held = in_holdout(text, holdout);
  (held ? d.heldout : d.train).push_back({std::move(text), label});
}

// The request text of one JSONL record.
std::string request_text(const json& o, const std::string& at) {
  for (const char* k : {"text", "question", "instruction", "prompt"})
    if (o.contains(k)) return get_string(o, k, at);
  if (o.contains("messages")) {
    const json& m = o["messages"];
    if (!m.is_array()) fail("{}: 'messages' must be an array", at);
    for (auto it = m.rbegin(); it != m.rend(); ++it)
      if (it->is_object() && it->value("role", "") == "user" && (*it)["content"].is_string())
        return (*it)["content"].get<std::string>();
    fail("{}: 'messages' has no user message with string content", at);
  }
  fail("{}: no request text (expected 'text', 'question', 'instruction', 'prompt' or 'messages')",
       at);
}

}  // namespace

RouteSource parse_route_source(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    fail("router data '{}': expected CHOICE=KIND:PATH or CHOICE=PATH", spec);
  RouteSource s;
  s.choice = spec.substr(0, eq);
  std::string rest = spec.substr(eq + 1);
  const size_t colon = rest.find(':');
  const auto& kinds = benchmark_kinds();
  if (colon != std::string::npos &&
      std::find(kinds.begin(), kinds.end(), rest.substr(0, colon)) != kinds.end()) {
    s.kind = rest.substr(0, colon);
    s.path = rest.substr(colon + 1);
  } else {
    s.kind = "requests";
    s.path = rest;
  }
  if (!fs::exists(s.path))
    fail("router data '{}': no such file or directory '{}'", spec, s.path.string());
  return s;
}

std::string query_text(const EvalItem& it) {
  if (it.kind == TaskKind::kCode && !it.code_prompt.empty()) return it.code_prompt;
  std::string t = it.question;
  static const char* kLetters = "ABCDEFGHIJ";
  for (size_t i = 0; i < it.choices.size() && i < 10; ++i)
    t += fmt::format("\n{}. {}", kLetters[i], it.choices[i]);
  return t;
}

std::vector<std::string> load_route_texts(const RouteSource& src, size_t limit) {
  std::vector<std::string> out;
  if (src.kind == "requests") {
    read_jsonl(src.path, [&](const json& o, size_t line) {
      if (limit && out.size() >= limit) return;
      out.push_back(request_text(o, fmt::format("{}:{}", src.path.string(), line)));
    });
    return out;
  }
  LoadOptions lo;
  lo.limit = limit;
  for (const auto& it : load_benchmark(src.kind, src.path, lo)) out.push_back(query_text(it));
  return out;
}

bool in_holdout(std::string_view text, double fraction) {
  if (fraction <= 0) return false;
  return double(fnv1a(text) % 1000000) / 1e6 < fraction;
}

RouteData load_route_data(const std::vector<std::string>& specs, double holdout,
                          size_t limit_per_source) {
  if (!(holdout >= 0 && holdout < 1)) fail("router: --holdout must be in [0, 1), got {}", holdout);
  if (specs.empty()) fail("router: no data (give --data CHOICE=KIND:PATH at least twice)");
  RouteData d;
  for (const auto& spec : specs) {
    RouteSource s = parse_route_source(spec);
    const int label = choice_index(d, s.choice);
    for (auto& t : load_route_texts(s, limit_per_source)) add(d, std::move(t), label, holdout);
  }
  return d;
}

RouteData load_route_runs(const std::vector<std::string>& specs, double holdout) {
  if (!(holdout >= 0 && holdout < 1)) fail("router: --holdout must be in [0, 1), got {}", holdout);
  if (specs.size() < 2)
    fail("router: --runs needs at least two CHOICE=RUN_DIR specs (the base first)");
  RouteData d;
  // item id -> (query text, label so far: -1 until some choice answered it)
  std::map<std::string, std::pair<std::string, int>> items;
  std::vector<std::string> order;
  for (const auto& spec : specs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0) fail("router runs '{}': expected CHOICE=RUN_DIR", spec);
    const int label = choice_index(d, spec.substr(0, eq));
    const fs::path file = fs::path(spec.substr(eq + 1)) / "items.jsonl";
    if (!fs::exists(file)) fail("router runs '{}': no '{}'", spec, file.string());
    read_jsonl(file, [&](const json& o, size_t line) {
      const std::string at = fmt::format("{}:{}", file.string(), line);
      // Multi-sample runs hold one line per sample; the first sample decides.
      if (o.value("sample", 0) != 0) return;
      const std::string id = get_string(o, "benchmark", at) + "/" + get_string(o, "id", at);
      auto [it, fresh] = items.try_emplace(id, get_string(o, "question", at), -1);
      if (fresh) order.push_back(id);
      if (!o.contains("correct") || !o["correct"].is_boolean())
        fail("{}: 'correct' must be true or false", at);
      if (it->second.second < 0 && o["correct"].get<bool>()) it->second.second = label;
    });
  }
  for (const auto& id : order) {
    auto& [text, label] = items[id];
    add(d, text, std::max(label, 0), holdout);
  }
  return d;
}

}  // namespace cogumi
