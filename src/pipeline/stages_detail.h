// cogumi/pipeline: what the stage files share (internal to src/pipeline).
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "eval/exec_cache.h"
#include "pipeline/config.h"
#include "pipeline/runner.h"

namespace cogumi::pipeline_detail {

// A domain's files, resolved (curriculum domains point into the curriculum directory).
struct DomainFiles {
  std::string name;
  bool modifier = true;
  std::vector<BenchSpec> test, mine;
  std::vector<fs::path> sft, val;
  std::vector<BenchSpec> dev;  // where the domain's route is chosen
};

// What every stage closure holds on to (the plan may outlive the caller's config).
struct Shared {
  PipelineConfig cfg;
  fs::path data;  // the curriculum directory, or empty
  std::vector<DomainFiles> domains;
  std::string data_stage;  // the stage that wrote the curriculum: "data", "base" (a trained base) or ""
  fs::path exec_cache;     // the code-run cache every evaluation shares (empty: none)
  // A connection of its own to that cache (null without one): evaluations running side by side
  // (cogumi run --jobs) share the file through SQLite's locks, never one connection.
  std::shared_ptr<ExecCache> code_runs() const;
  // Dependencies of a stage that reads the curriculum: `first`, then the curriculum's stage.
  std::vector<std::string> data_deps(const char* first = nullptr) const;
};

DomainFiles files_of(const DomainConfig& d, const fs::path& data);
// Per domain {n, correct, accuracy (points)} from an eval summary (pooled over its test kinds, or with
// `dev` its dev kinds).
json domain_accuracy(const json& summary, const std::vector<DomainFiles>& domains, bool dev = false);
// The identity of input files for keys: curriculum files by their place in the (keyed) curriculum
// directory, everything else by sha256; bench_ids: kind -> that identity.
json file_ids(Plan& plan, const Shared& sh, const std::vector<fs::path>& files);
json bench_ids(Plan& plan, const Shared& sh, const std::vector<BenchSpec>& b);
// Adds the trainer's GGML_COGUMI_BACKWARD_WEIGHT_TYPE and COGUMI_LORA_GROUP_FORWARD to a training stage's
// settings when set to something other than the default: they change the trained weights (rounding), so
// they belong in the key.
void add_backward_type_setting(json& settings);
// Runs one evaluation into STAGE_DIR/SUB (resuming its items); result {run, summary, domains} (domains pooled
// over each domain's dev kinds with `dev`, else its test kinds).
json eval_stage(const Shared& sh, const StageContext& ctx, const std::vector<BenchSpec>& benches, size_t limit,
                const std::vector<std::pair<std::string, fs::path>>& adapters, const std::string& sub = "run",
                bool dev = false, size_t skip = 0);

// A domain's route before any choice: its own modifier, else the base.
std::string default_route(const DomainFiles& d);
// Each domain's route from the dev accuracies ({config: {domain: {n, correct, accuracy}}}, config "base" or a
// modifier): the most accurate configuration on the domain's dev split; ties, and domains without a dev split,
// keep default_route. With alpha < 1 (and the base measured there) only the base and the modifiers that beat it on
// the domain's paired dev items (more wins than losses, McNemar p < alpha; dev_vs_base {modifier: {domain: {wins,
// losses, p}}}, a missing entry counts as no win) are candidates, so a domain's own modifier that only ties or
// narrowly beats the base leaves it to the base. Result {domain: config}.
json choose_routes(const std::vector<DomainFiles>& domains, const json& dev_accuracy, const json& dev_vs_base = json::object(),
                   double alpha = 1.0);
// Wins/ties/losses and McNemar p of run B against run A, item by item, per domain, pooled over its test benchmarks
// (dev: its dev benchmarks, and only the domains that have a dev split).
json compare_by_domain(const std::vector<DomainFiles>& domains, const fs::path& a, const fs::path& b, bool dev = false);
// dev_vs_base's entries for one modifier: its dev run against the base's (compare_by_domain on the dev splits).
json dev_against_base(const std::vector<DomainFiles>& domains, const fs::path& base_run, const fs::path& run);
// The modifiers the routed system uses (eval_system's choices; a modifier no domain is routed to is not part of it).
std::set<std::string> modifiers_in_use(const StageContext& ctx);
// routes, router, calibrate, eval_system, gates, report (stages_system.cpp).
void add_system_stages(Plan& plan, const std::shared_ptr<Shared>& sh);
// Copies the latest finished outputs into the work directory (report, gates, system, run.json).
void publish_outputs(const Plan& plan);

}  // namespace cogumi::pipeline_detail
