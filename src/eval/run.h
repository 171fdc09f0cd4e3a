// cogumi/eval: one evaluation run. Loads benchmarks, generates every answer through the
// engine in large batches (all items of a chunk in flight at once), runs code in the
// sandbox, scores, and writes a run directory:
//   items.jsonl   one line per item (and sample): prompt, output, extracted answers,
//                 reference, correct, failure type, tokens, latency
//   summary.json  accuracy per benchmark and category with 95% intervals, strict and
//                 flexible, failure types, pass@k, throughput
//   run.json      what the answers depend on: model and adapters (name, bytes, sha256), chat
//                 mode and template, shots, max tokens, sampling, samples, scoring
// Work is done in chunks appended to items.jsonl, so an interrupted run resumes (--resume)
// with the items it already scored. A resume refuses a directory whose run.json differs (or
// is missing), and drops a torn last line of items.jsonl (a kill mid-write) to redo that item.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "engine/generate.h"
#include "data/openai_client.h"
#include "eval/benchmark.h"
#include "eval/exec_cache.h"
#include "eval/sandbox.h"

namespace cogumi {

struct BenchSpec {
  std::string kind;
  fs::path path;
};
// "kind=path" -> BenchSpec; throws Error naming the bad spec.
BenchSpec parse_bench_spec(const std::string& spec);

struct EvalOptions {
  fs::path model;                  // empty with `responses`
  std::vector<BenchSpec> benches;
  fs::path out_dir = "runs/eval";
  size_t skip = 0;                 // items skipped at the head of each benchmark before `limit` (0..10^8)
  size_t limit = 0;                // per benchmark; 0 = all
  int shots = 0;                   // 0..1000
  std::vector<BenchSpec> shots_from;  // pools for n-shot examples (default: a sibling train/dev split)
  bool chat = false;
  std::string system;
  std::string chat_template;
  int max_tokens = 512;            // >= 1
  bool ignore_eos = false;         // fixed-length generation (benchmarks)
  SamplingParams sampling;         // greedy by default
  int samples = 1;                 // per item (pass@k needs samples > 1 and temperature > 0)
  std::vector<int> pass_k = {1};   // each in 1..samples
  std::vector<std::pair<std::string, fs::path>> adapters;  // loaded as NAME=PATH
  std::string adapter;             // applied to every item
  float adapter_scale = 1.0f;
  GeneratorOptions gen;
  int n_gpu_layers = -1;
  fs::path responses;              // score these outputs instead of generating
  SandboxOptions sandbox;
  int workers = 0;                 // sandbox processes; 0 = cores
  std::shared_ptr<ExecCache> exec_cache;  // optional: code runs reused across evaluations (eval/exec_cache.h)
  size_t chunk = 1024;             // items per generate call / append, >= 1
  bool resume = false;
  bool progress = true;
  std::string scoring = "normalized";  // generic JSONL: exact, normalized, numeric, regex, judge
  OpenAIEndpoint judge;            // for scoring = judge
  int judge_concurrency = 8;
  const std::atomic<bool>* cancel = nullptr;
  // A routed system as the model under test: picks each item's adapter ("" = the base alone)
  // and replaces `adapter`. `route_id` names the routing (the system file and its sha256) in
  // run.json, so --resume refuses a run routed differently. Items record their route.
  std::function<std::string(const EvalItem&)> route;
  std::string route_id;
  // Text put before an item's prompt (a routed system's retrieved demonstrations, runtime/fewshot.h);
  // whatever it depends on belongs in route_id.
  std::function<std::string(const EvalItem&, const std::string& prompt)> prompt_prefix;
  // Extra fields a routed system records on each item's line (e.g. the router's probabilities,
  // for calibration); called once per line.
  std::function<json(const EvalItem&)> route_signals;
  // A system that answers items itself instead of the model (eval --system --mode accurate: the
  // runtime's samples, vote and verification): one result per item of a chunk, in order, and
  // in *extra per item the fields its line records (the vote, the verification). Replaces the
  // model; name what it depends on in route_id.
  std::function<std::vector<GenResult>(const std::vector<const EvalItem*>& items, std::vector<json>* extra)> answer;
  // Record each answer's mean and min token log-probability (logprob_mean, logprob_min).
  bool logprobs = false;
  // Throws Error naming the option (its CLI flag) for a value out of range.
  void validate() const;
};

// Runs the evaluation; returns the summary (also written to out_dir/summary.json).
json run_eval(const EvalOptions& opts);
// Rebuilds the summary from a run's items.jsonl.
json summarize_items(const std::vector<json>& items, const std::vector<int>& pass_k);
// Human-readable table of a summary.
std::string summary_table(const json& summary);

}  // namespace cogumi
