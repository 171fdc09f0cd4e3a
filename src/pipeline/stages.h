// cogumi/pipeline: the plan's stages as library calls. In dependency order:
//
//   base            the GGUF (by sha256), or the nano base trained from nothing (nano_base)
//   data            the nano curriculum (synth_write), when the config has one
//   eval_base       the base on every domain's test sets (run_eval)
//   mine            the base on the domains' training splits (run_eval)
//   failures        the mined failures as training records, one file per domain (failure_record)
//   cluster         the failures clustered and labelled (cluster_failures)
//   teach.D, judge.D, curate.D   with `data:`: teacher examples for D's failures (stages_data.h)
//   trainset.D      domain D's training set: its failures, its own data, the replay mix, weights
//   train.D         D's LoRA modifier (train); early stopping on D's validation data
//   eval.D          base + D's modifier on every test set
//   router          the router over the domains (train_router_job, by domain, held-out report)
//   calibrate       router calibration: skipped, with the reason, until route/calibration lands
//   eval_system     the routed system (system.yaml: base, modifiers, router) on every test set
//   gates           the config's gates on the measured metrics (gates.json)
//   report          report.html (inline SVG charts) and report.md
//
// Stage keys follow runner.h, so changing one modifier's rank reruns train.D, eval.D,
// eval_system, gates and report, and nothing else. After a run, WORK/ holds the latest
// report.html, report.md, gates.json, system.yaml and run.json (stage -> directory).
#pragma once

#include "pipeline/config.h"
#include "pipeline/runner.h"

namespace cogumi {

// The stages' code versions (part of every key): bump one when its outputs change meaning.
constexpr const char* kPipelineVersion = "1";

// Adds the config's stages to `plan` in dependency order.
void plan_pipeline(const PipelineConfig& cfg, Plan& plan);

struct PipelineRun {
  RunSummary summary;
  std::vector<std::string> missing;  // input files that do not exist (dry runs list them)
};

// Plans (in cfg.work_dir) and runs; copies the latest outputs into the work directory.
PipelineRun run_pipeline(const PipelineConfig& cfg, const RunOptions& o);

}  // namespace cogumi
