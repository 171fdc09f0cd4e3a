// cogumi/data: failure-aware teacher prompts. A domain's failures come from `cogumi failures
// cluster` (clusters.jsonl: each cluster's label, terms, failure types, representatives and
// members, by item id) and the eval run it clustered (items.jsonl: each item's question, prompt,
// output and reference). Each failure is asked with a template filled from its own cluster: the
// plan's template (domain, the cluster's label, 3 representative failures, common issues), the
// failed problem itself, and the answer format its checker reads. Templates are plain text files
// (configs/prompts/, placeholders documented in configs/prompts/README.md); "{{" and "}}" are
// literal braces.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cogumi {

struct FailureSet {
  std::vector<nlohmann::json> items;     // the failed items' lines of RUN/items.jsonl, in the run's order
  std::vector<size_t> cluster_of;        // index into clusters, per item
  std::vector<nlohmann::json> clusters;  // the domain's lines of clusters.jsonl
  std::map<std::string, size_t> by_id;   // item id -> index into items
};

// The benchmarks a domain name covers: math -> gsm8k, code -> humaneval + mbpp, reasoning ->
// mmlu + bbh, automation (or tools) -> bfcl; any other name is itself (a benchmark name).
std::vector<std::string> domain_benchmarks(const std::string& domain);

// Reads the clusters (a clusters.jsonl or the directory holding it) of `domain` and their
// members' lines from RUN/items.jsonl; `limit` > 0 keeps the run's first that many failures of
// the domain (so a sample spans every cluster). Errors
// name the file and line, the domain's groups when none match, and ids missing from the run.
FailureSet load_failure_set(const std::filesystem::path& clusters, const std::filesystem::path& run,
                            const std::string& domain, size_t limit = 0);

// The placeholder values for failure i: domain, benchmark, cluster_label, examples,
// common_issues, question, prompt, reference, answer_format.
std::map<std::string, std::string> failure_prompt_values(const FailureSet& set, size_t i, const std::string& domain);

// Replaces each {name} of `tmpl` by its value; an unknown {name} throws Error naming `where` and
// the placeholders known.
std::string fill_template(const std::string& tmpl, const std::map<std::string, std::string>& values,
                          const std::string& where);

// The shipped templates, as configs/prompts/teacher_failure.txt and judge_rubric.txt hold them
// (a test keeps the two equal): used when an endpoint names no template file.
extern const char* const kTeacherFailureTemplate;
extern const char* const kJudgeRubricTemplate;

// A template file's text, or `fallback` when `path` is empty.
std::string load_template(const std::filesystem::path& path, const char* fallback);

}  // namespace cogumi
