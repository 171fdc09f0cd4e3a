// Failure-aware teacher prompts (data/teacher_prompt.h).
#include "data/teacher_prompt.h"

#include <algorithm>
#include <set>

#include "analysis/failures.h"
#include "core/error.h"
#include "core/io.h"

namespace cogumi {

using json = nlohmann::json;

const char* const kTeacherFailureTemplate =
    R"(You are writing training data for a small {domain} model. It keeps failing on one pattern of problems.

Context from the failure cluster:
- Pattern: {cluster_label}
- Example failures:
{examples}
- Common issues: {common_issues}

Solve the following problem from this cluster. Requirements:
- Handle exactly what the model got wrong in the examples above, including edge cases
- Show the correct handling step by step, briefly
- {answer_format}

Problem:
{question}
)";

const char* const kJudgeRubricTemplate =
    R"(You are grading one training example for a small model. Read the instruction and the response.

Instruction:
{instruction}

Reference answer (may be empty):
{reference}

Response:
{response}

Rubric, 1 to 10: 10 = correct, complete and clearly reasoned; 7 = correct with minor flaws;
4 = partly correct or badly explained; 1 = wrong, off-topic or empty.
Reply with one short sentence of justification, then a last line "Score: N".
)";

std::vector<std::string> domain_benchmarks(const std::string& domain) {
  if (domain == "math") return {"gsm8k"};
  if (domain == "code") return {"humaneval", "mbpp"};
  if (domain == "reasoning") return {"mmlu", "bbh"};
  if (domain == "automation" || domain == "tools") return {"bfcl"};
  return {domain};
}

namespace {

std::string clip(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n) + " ..."; }

std::string text(const json& j, const char* field) {
  auto it = j.find(field);
  if (it == j.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

std::string answer_format(const std::string& kind) {
  if (kind == "numeric") return "End with a last line of the form \"#### N\" where N is the final number";
  if (kind == "multiple_choice") return "End with \"The answer is (X)\" where X is the letter of the right option";
  if (kind == "code") return "Answer with the whole Python function in one ```python block";
  if (kind == "tool_call") return "Answer with one JSON object {\"name\": ..., \"arguments\": {...}} and nothing else";
  return "End with \"The answer is X\"";
}

}  // namespace

FailureSet load_failure_set(const std::filesystem::path& clusters, const std::filesystem::path& run,
                            const std::string& domain, size_t limit) {
  const auto cpath = std::filesystem::is_directory(clusters) ? clusters / "clusters.jsonl" : clusters;
  if (!std::filesystem::exists(cpath))
    fail("'{}' holds no failure clusters (clusters.jsonl of `cogumi failures cluster`)", clusters.string());
  const auto wanted = domain_benchmarks(domain);
  FailureSet set;
  std::set<std::string> groups;
  read_jsonl(cpath, [&](const json& c, size_t line) {
    if (!c.contains("members") || !c["members"].is_array() || !c.contains("group"))
      fail("{}:{}: not a failure cluster (needs 'group' and 'members')", cpath.string(), line);
    const std::string g = text(c, "group");
    groups.insert(g);
    if (g == domain || std::find(wanted.begin(), wanted.end(), g) != wanted.end()) set.clusters.push_back(c);
  });
  if (set.clusters.empty()) {
    std::string have;
    for (auto& g : groups) have += (have.empty() ? "" : ", ") + g;
    fail("{}: no cluster of domain '{}' (groups there: {})", cpath.string(), domain, have.empty() ? "none" : have);
  }
  const std::vector<json> failures = load_failures(run);
  std::map<std::string, size_t> run_index;  // the first sample of each id
  for (size_t i = 0; i < failures.size(); ++i) run_index.emplace(text(failures[i], "id"), i);
  std::map<size_t, size_t> chosen;  // run index -> cluster: the run's order, so --limit spans every cluster
  for (size_t c = 0; c < set.clusters.size(); ++c)
    for (const auto& m : set.clusters[c]["members"]) {
      const std::string id = m.is_string() ? m.get<std::string>() : m.dump();
      auto it = run_index.find(id);
      if (it == run_index.end())
        fail("{}: cluster {} names item '{}', which is not a failure of the run '{}' (clusters of another run?)",
             cpath.string(), text(set.clusters[c], "cluster"), id, run.string());
      chosen.emplace(it->second, c);
    }
  for (auto [i, c] : chosen) {
    if (limit > 0 && set.items.size() >= limit) break;
    set.by_id.emplace(text(failures[i], "id"), set.items.size());
    set.items.push_back(failures[i]);
    set.cluster_of.push_back(c);
  }
  return set;
}

std::map<std::string, std::string> failure_prompt_values(const FailureSet& set, size_t i, const std::string& domain) {
  const json& item = set.items[i];
  const json& cl = set.clusters[set.cluster_of[i]];
  std::string examples;
  int n = 0;
  for (const auto& rep : cl.value("representatives", json::array())) {
    auto it = set.by_id.find(rep.is_string() ? rep.get<std::string>() : rep.dump());
    if (it == set.by_id.end() || n == 3) continue;
    const json& ex = set.items[it->second];
    examples += fmt::format("{}  {}. Question: {}\n     Model's answer: {}\n     Correct answer: {}",
                            n ? "\n" : "", n + 1, clip(text(ex, "question"), 600), clip(text(ex, "output"), 300),
                            clip(text(ex, "reference"), 300));
    ++n;
  }
  std::string issues;
  const json types = cl.value("failure_types", json::object());
  for (auto& [type, count] : types.items())
    issues += fmt::format("{}{} ({})", issues.empty() ? "" : ", ", type, count.dump());
  std::string terms;
  for (const auto& t : cl.value("terms", json::array()))
    if (t.is_array() && !t.empty() && t[0].is_string() && terms.size() < 120)
      terms += (terms.empty() ? "" : ", ") + t[0].get<std::string>();
  if (!terms.empty()) issues += (issues.empty() ? "" : "; ") + std::string("frequent terms: ") + terms;
  return {{"domain", domain},
          {"benchmark", text(item, "benchmark")},
          {"cluster_label", text(cl, "label")},
          {"examples", examples.empty() ? "  (none)" : examples},
          {"common_issues", issues.empty() ? "(none recorded)" : issues},
          {"question", text(item, "question")},
          {"prompt", text(item, "prompt")},
          {"reference", text(item, "reference")},
          {"answer_format", answer_format(text(item, "kind"))}};
}

std::string fill_template(const std::string& tmpl, const std::map<std::string, std::string>& values,
                          const std::string& where) {
  std::string out;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      const size_t end = tmpl.find('}', i);
      const std::string name = end == std::string::npos ? "" : tmpl.substr(i + 1, end - i - 1);
      auto it = values.find(name);
      if (it == values.end()) {
        std::string known;
        for (auto& [k, _] : values) known += (known.empty() ? "{" : ", {") + k + "}";
        fail("{}: unknown placeholder '{{{}' (known: {}; write {{{{ for a literal brace)", where,
             end == std::string::npos ? tmpl.substr(i + 1, 20) : name + "}", known);
      }
      out += it->second;
      i = end;
    } else {
      out += c;
    }
  }
  return out;
}

std::string load_template(const std::filesystem::path& path, const char* fallback) {
  return path.empty() ? std::string(fallback) : read_file(path);
}

}  // namespace cogumi
