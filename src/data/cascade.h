// cogumi/data: the teacher cascade behind `cogumi data generate`. Tier 1 answers every failure
// of a domain (failure-aware prompts, data/teacher_prompt.h); each answer is checked where a real
// check exists (data/teacher_check.h); what still fails goes to tier 2, then tier 3, and so on.
// Every reply lands in the log (OUT, data/teacher.h) as it arrives; an interrupted run resumes
// from it. The kept examples (the answers that passed, and unchecked answers, which a judge can
// filter later) go to OUT's sibling .kept.jsonl, each with its tier and token cost; the per-tier
// report to .report.json.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/teacher.h"
#include "eval/run.h"
#include "eval/sandbox.h"

namespace cogumi {

struct GenerateOptions {
  std::vector<TeacherEndpoint> tiers;      // in cascade order, at least one
  std::filesystem::path clusters;          // clusters.jsonl of `cogumi failures cluster`, or its directory
  std::filesystem::path run;               // the eval run those failures come from
  std::string domain;                      // math, code, reasoning, automation, or a benchmark name
  std::vector<BenchSpec> benches;          // benchmark files: code tests and tool functions for checks
  std::filesystem::path out;               // the reply log (JSONL)
  int64_t spend_cap_tokens = 0;            // prompt + completion tokens over the whole run, 0 = none
  size_t limit = 0;                        // the first N failures, 0 = all
  SandboxOptions sandbox;
  bool progress = true;
  void validate() const;  // throws Error naming the option
};

struct TierReport {
  std::string name, model;
  size_t asked = 0;        // failures this tier was given
  size_t answered = 0;     // replies received (resumed ones included)
  size_t resumed = 0;      // replies taken from the log of an earlier run
  size_t kept = 0;         // answers that passed their check, or unchecked ones
  size_t kept_unchecked = 0;
  size_t failed = 0;       // answers their check rejected: sent to the next tier
  size_t errors = 0;       // no reply after every retry
  size_t retries = 0;      // HTTP retries (429, 5xx, timeouts)
  int64_t prompt_tokens = 0, completion_tokens = 0;
  double closed = 0;       // kept / the domain's failures: the failure rate this tier closed
};

struct CascadeResult {
  size_t n_failures = 0, n_kept = 0, n_open = 0;  // open: failures no tier closed (or not asked)
  bool capped = false;                            // the spend cap stopped the run
  std::vector<TierReport> tiers;
  nlohmann::json report;                          // what .report.json holds
};

CascadeResult run_cascade(const GenerateOptions& opts);

// The per-tier table (markdown) of a cascade's report.
std::string cascade_table(const CascadeResult& r);

// OUT with its extension replaced: sibling("gen.jsonl", ".kept.jsonl") = "gen.kept.jsonl".
std::filesystem::path sibling_path(const std::filesystem::path& out, const std::string& suffix);

}  // namespace cogumi
