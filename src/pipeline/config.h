// cogumi/pipeline: the pipeline config (`cogumi run PIPELINE.yaml`). One YAML file says which
// base model, which benchmarks per domain, which modifiers with which training settings, how the
// failures are analysed, how the router is trained, and which gates the result must pass.
//
//   name: nano                       # default: the file's stem; the work dir is runs/NAME
//   work_dir: runs/nano              # default runs/NAME (relative to the current directory)
//   threads: 0                       # 0: all cores
//   jobs: 1                          # stages run at once (1..64), sharing the threads
//   base:
//     gguf: ../models/nano-base.gguf # a GGUF (relative to this file), or
//     train: {steps: 2500, ...}      # "train the nano base" (NanoBaseOptions' fields)
//   curriculum: {seed: 1, n_train: 12000, n_mix: 3000, difficulty: "2,math=1"}  # nano data
//   eval: {test_limit: 0, mine_limit: 600, mine_skip: auto, max_tokens: 96, parallel: 64, exec_cache: true}
//   failures: {cluster: true, k: 0, k_max: 6, embeddings: 0.5,
//              labeler: {url: http://127.0.0.1:8080/v1, model: default, key_env: LABELER_KEY}}
//   training: {rank: 16, steps: 1000, lr: 2e-3, device: auto, ...}  # defaults of every modifier (device: auto = a GPU when there is one, cpu, gpu, gpu:N)
//   replay: PATH                     # general mix replayed against forgetting (nano: mix/train)
//   domains:
//     math:                          # a nano domain: test/mine/sft/val come from the curriculum
//       train: {rank: 32}            # this modifier's settings over `training`
//     code:
//       test: {humaneval: PATH, mbpp: PATH}  # benchmark kind -> file, evaluated
//       mine: {humaneval: PATH}              # the base's failures are mined here
//       sft: [PATH]                          # the domain's own training data
//       val: [PATH]                          # early stopping (else train.val_split)
//       dev: {humaneval: PATH}               # dev split: where each domain's route is chosen (optional)
//       modifier: true                       # false: evaluated, no modifier of its own
//   router: {enabled: true, holdout: 0.2, epochs: 10, lr: 0.5, limit: 0, choose_on_dev: true, dev_limit: 0, route_alpha: 0.05}
//   runtime: {threshold: 0.0, escalation: accurate}
//   data: {tiers: [...], judge: {...}, dedup: {...}}   # teacher-made training data (config_data.h)
//   gates: ["math >= base + 10", "every other domain >= base - 5", "router.accuracy >= 0.97"]
//
// Every key is checked: an unknown key, a wrong type or a value out of range is an Error naming
// FILE:LINE and the key. Domain accuracies in gates are percentage points (0..100); see gates.h.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "core/io.h"
#include "eval/run.h"
#include "pipeline/config_compress.h"
#include "pipeline/config_data.h"
#include "pipeline/gates.h"
#include "pipeline/nano.h"

namespace cogumi {

// One modifier's training settings. Defaults: the nano loop's (NanoLoopOptions).
struct ModifierSettings {
  int rank = 16;             // LoRA rank, 1..4096; alpha = rank
  int steps = 1000;          // max optimizer steps, 1..10^7
  int batch = 16;            // packed rows per step, 1..65536
  int seq_len = 128;         // tokens per row, 8..65536
  int eval_steps = 25;       // validate every N steps, 1..10^7
  int patience = 16;         // validations without improvement before stopping (0: never), 0..10^6
  int warmup = 10;           // 0..10^7
  double lr = 2e-3;          // (0, 1]
  double val_split = 0.0;    // share held out for validation when the domain has no val files, [0, 0.5]
  double failure_weight = 1.0; // weight of the mined failures (2: each twice), [0, 100]
  double domain_share = 1.0; // weight of the domain's own sft data beside its failures, [0, 100]
  double replay = 0.5;       // weight of the replay mix, [0, 100]
  std::string device = "auto";  // auto (the first GPU when the build has one, else the CPU), cpu, gpu, gpu:N
  bool checkpoint_activations = false;  // the trainer's --checkpoint-activations (less memory, same results)
  int checkpoint_blocks = 0;  // the trainer's --checkpoint-blocks (the first N blocks only), 0..65536 or auto (-1)
  json to_json() const;
  void validate(const std::string& where) const;  // throws Error naming where.key
};

struct DomainConfig {
  std::string name;
  std::vector<BenchSpec> test;       // benchmark kind + file: base, modifiers, system evaluated here
  std::vector<BenchSpec> mine;       // the base's failures are mined here (training splits)
  std::vector<fs::path> sft;         // the domain's own training data (SFT JSONL)
  std::vector<fs::path> val;         // validation files for early stopping
  std::vector<BenchSpec> dev;        // dev split (benchmark kind + file): each domain's route is chosen here
  bool modifier = true;
  ModifierSettings train;
  bool from_curriculum = false;      // test/mine/sft/val filled from the nano curriculum at plan time
};

struct CurriculumConfig {
  bool enabled = false;
  uint64_t seed = 1;
  int n_train = 12000, n_dev = 200, n_test = 300, n_mix = 3000;  // each 1..10^7 (n_mix 0..n_train)
  int n_copy = 0;  // copying and lookup items in the general mix (SynthOptions::n_copy; 0..10^6), as the base had them
  int n_choice = 0;  // option-lookup items in the general mix (SynthOptions::n_choice; 0..10^6), as the base had them
  std::string difficulty = "2,math=1";
  json to_json() const;
};

struct PipelineConfig {
  fs::path file;                 // where it was read from
  std::string name = "pipeline";
  fs::path work_dir;             // default runs/NAME
  int threads = 0;               // 0..1024
  int jobs = 1;                  // 1..64: independent stages run side by side (cogumi run --jobs overrides)
  bool cpu_only = false;
  // The base: a GGUF, or trained from nothing (nano_base; its curriculum becomes the data).
  fs::path base_gguf;
  bool base_train = false;
  NanoBaseOptions base_options;  // dir is ignored (the stage's own directory)
  CurriculumConfig curriculum;
  // Eval settings shared by every evaluation.
  size_t test_limit = 0;         // items per test benchmark (0: all)
  size_t mine_limit = 600;       // items per mining benchmark (0: all)
  // Items skipped at the head of each mining benchmark before mine_limit, 0..10^8; -1 (auto): the curriculum's
  // n_mix when every mining domain comes from the curriculum and n_mix < n_train (the base trained on those
  // items: failures mined there would be failures to memorize, not to learn), else 0.
  long mine_skip = -1;
  size_t mine_skip_items() const;  // mine_skip with auto resolved
  int max_tokens = 96;           // 1..32768
  int parallel = 64;             // generator slots, 1..255
  // Code runs kept in WORK_DIR/exec-cache.sqlite and reused by later evaluations (eval/exec_cache.h): the
  // base, each modifier and the routed system mostly write the same programs.
  bool exec_cache = true;
  // Failure analysis.
  bool cluster = true;
  int k = 0;                     // clusters per benchmark (0: chosen by silhouette), 0..100
  int k_max = 6;                 // 1..100
  double embeddings = 0.5;       // weight of the model's embeddings in the features, [0, 10]
  // Cluster labels from an LLM behind an OpenAI-compatible endpoint (empty: c-TF-IDF terms).
  std::string labeler_url, labeler_model = "default", labeler_key_env;  // key_env: variable holding the key
  fs::path replay;               // default: the curriculum's mix/train.jsonl, if any
  std::vector<DomainConfig> domains;
  // Router.
  bool router = true;
  double router_holdout = 0.2;   // [0.05, 0.9]
  int router_epochs = 10;        // 1..1000
  double router_lr = 0.5;        // (0, 100]
  size_t router_limit = 0;       // queries per source (0: all)
  // Each domain routed to the configuration (the base or any modifier) best on its dev split, ties to its
  // default (its own modifier, else the base), among those route_alpha admits; off, or no dev split: the default.
  bool choose_on_dev = true;
  size_t dev_limit = 0;          // dev items per benchmark for that choice (0: all), 0..10^8
  // A modifier takes a domain from the base only where it beats the base on the domain's dev items with an exact
  // McNemar p below this (paired items); 1: no test, the best dev accuracy wins. (0, 1]
  double route_alpha = 0.05;
  // Runtime (the system file's settings).
  double threshold = 0.0;        // [0, 1]
  std::string escalation = "accurate";
  std::vector<Gate> gates;
  DataConfig data;               // teacher-made training data: the `data:` section (config_data.h)
  CompressConfig compress;       // the `compress:` section (config_compress.h)

  // Reads and checks a config; errors name FILE:LINE and the key.
  static PipelineConfig load(const fs::path& path);
  // Cross-field checks (also run by load): domains, kinds, base. Errors name the key.
  void validate() const;
  const DomainConfig& domain(const std::string& name) const;
  std::vector<std::string> domain_names() const;
};

// Training items per domain the base's general mix took (each domain's first n_mix): mining starts past them.
// n_mix when n_mix < n_train; 0 when the mix took every training item (nothing unseen is left to skip to).
size_t items_in_base_mix(long n_mix, long n_train);

}  // namespace cogumi
