// cogumi/pipeline: the `data:` stages (pipeline/config_data.h), between failure clustering and the
// modifiers' training sets. For each data domain D (a domain that trains a modifier on mined
// failures):
//
//   teach.D    D's clustered failures through the teacher cascade (data/cascade.h): tier 1 answers
//              every failure with a failure-aware prompt, each answer checked where a real check
//              exists, what still fails goes to the next tier. Replies land in the stage's
//              teacher.jsonl as they arrive, so an interrupted stage resumes without asking twice.
//   judge.D    (with `data.judge`) the kept examples scored by an LLM judge; a real check decides
//              where one exists and the judge's agreement with it is reported (data/judge.h)
//   curate.D   exact + MinHash near dedup and decontamination against every test set the config
//              names (data/dedup.h), then forward (and reverse) pairs (data/pairs.h): train.jsonl,
//              which trainset.D takes as a source at `data.weight`
//
// Keys cover the endpoints' identity (URL, model, API, template file by sha256, max_tokens,
// temperature; not transport settings such as concurrency or retries), the limits, and the
// upstream stages, so a rerun reuses the teacher's answers and a changed dedup setting redoes
// only curate.D and what follows. Gates see data.kept, data.contaminated, data.duplicates,
// data.asked and data.agreement (pipeline/gates.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pipeline/gates.h"
#include "pipeline/stages_detail.h"

namespace cogumi {

// The report's data section (report.json "data") as Markdown and as HTML: per domain and tier
// asked, kept, tokens and failure rate closed; the judge; what dedup and decontamination removed
// and why.
std::string data_report_markdown(const json& data);
std::string data_report_html(const json& data);

namespace pipeline_detail {

// The data domains: data.domains, or every domain with a modifier and a mining set; empty
// without a `data:` section.
std::vector<std::string> data_domains(const Shared& sh);
// Adds teach.D, judge.D and curate.D for every data domain (needs mine and failures in the plan).
void add_data_stages(Plan& plan, const std::shared_ptr<Shared>& sh);
// The stage trainset.D reads teacher data from ("curate.D"), or "" when D has none.
std::string data_stage_of(const Shared& sh, const std::string& domain);
// Appends D's teacher data to a training set's sources (nothing when curation kept no example).
void add_data_source(const StageContext& ctx, const std::string& domain, json& sources);
// The data stages the gates and the report read.
std::vector<std::string> data_final_deps(const Shared& sh);
// Sets the data.* scalars (or, without data stages, why they are missing).
void data_gate_metrics(const Shared& sh, const StageContext& ctx, GateMetrics& m);
// The report's "data" section; null without data stages.
json data_report(const Shared& sh, const StageContext& ctx);

}  // namespace pipeline_detail
}  // namespace cogumi
