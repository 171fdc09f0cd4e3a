// cogumi/pipeline: the nano system end to end (issue "Nano").
//
// nano_base: the base model from nothing: the curriculum (`cogumi nano data`), a llama model
// with a vocabulary fitted to it (`model init --vocab-train`), full-parameter training on the
// mix, then F16. Everything follows from the options and seed; recipe.json records them with
// the sha256 of the result.
//
// nano_loop: the plan's first improvement loop on that base, as a pipeline (`cogumi run`'s stages
// and cache, src/pipeline/stages.h) in the loop's work directory:
//   1. evaluate the base on the four test (or dev) sets;
//   2. evaluate it on each domain's training split and keep every failure (Phase 1B.2);
//   3. train one LoRA modifier per domain on its failures plus a share of the domain's own
//      training data and the general mix, early stopping on the domain's dev split;
//   4. evaluate base + each modifier on all four sets and compare with the base; the router and
//      the routed system follow, as in every pipeline.
// Results: loop.json and table.md (loop-dev.json, table-dev.md for the dev split) in the work
// directory, beside the pipeline's report. Stages whose inputs are unchanged are reused, so the dev
// and test comparisons share the mined failures and the trained modifiers.
#pragma once

#include <atomic>
#include <filesystem>
#include <string>

#include "core/io.h"

namespace cogumi {

struct NanoBaseOptions {
  fs::path dir = "runs/nano";  // data/ and base.gguf go here
  uint64_t seed = 1;
  std::string difficulty = "2,math=1";  // SynthOptions::set_difficulty's spec
  int n_train = 12000, n_dev = 200, n_test = 300;
  int n_mix = 3000;  // training items per domain in the base's mix (0: all n_train)
  int n_copy = 0;    // copying and lookup items added to the mix (SynthOptions::n_copy; 0..10^6)
  int n_choice = 0;  // option-lookup items added to the mix (SynthOptions::n_choice; 0..10^6)
  int vocab_merges = 2000;
  bool vocab_split_punct = false;  // ModelInitOptions::vocab_split_punct (the shipped base: off)
  int n_embd = 256, n_layer = 4, n_head = 4, n_ff = 768;
  // The shipped models/nano-base.gguf: these defaults, on an H100 (about 6.5 minutes).
  int steps = 2500, seq_len = 128, batch = 64, warmup = 100;
  float lr = 3e-3f;
  int n_threads = 0;
  const std::atomic<int>* threads_live = nullptr;  // TrainOptions::threads_live (cogumi run --jobs)
  bool cpu_only = false;       // train on the CPU even when a GPU is present
  bool progress = true;
  void validate() const;       // throws Error naming the option (its CLI flag)
};

// Writes dir/data (the curriculum), dir/base.gguf (F16) and dir/recipe.json. Returns the recipe.
json nano_base(const NanoBaseOptions& o);

struct NanoLoopOptions {
  fs::path dir = "runs/nano";  // work directory (data/ from nano_base or `nano data`)
  fs::path base;               // default: dir/base.gguf
  fs::path data;               // default: dir/data
  // The split the base and the modifiers are compared on: "test" reports, "dev" chooses settings
  // (loop settings are compared on dev, and only the chosen ones are run on test).
  std::string eval_split = "test";
  size_t test_limit = 0;       // items per domain of eval_split (0: all)
  size_t mine_limit = 600;     // training items per domain evaluated for failures
  std::vector<std::string> modifiers;  // domains to train modifiers for (empty: all four)
  double failure_weight = 1.0; // weight of the mined failures (2: each twice)
  double domain_share = 1.0;   // weight of the domain's own training set beside its failures
  double replay = 0.5;         // weight of the general mix (all domains) replayed against forgetting
  int lora_rank = 16;
  int steps = 1000, batch = 16, seq_len = 128, eval_steps = 25, patience = 16;
  float lr = 2e-3f;
  int max_tokens = 96;
  int n_threads = 0;
  // Train modifiers on the CPU even when a GPU is present. Not part of a stage's inputs: a modifier
  // trained on either is reused by the other (same data and settings; the floats differ slightly).
  bool cpu_only = false;
  bool progress = true;
  void validate() const;       // throws Error naming the option (its CLI flag)
};

// Runs the loop (a pipeline run in o.dir); returns loop.json's content ("stages": what ran, what was reused).
json nano_loop(const NanoLoopOptions& o);
// The results table (markdown) from loop.json's content.
std::string nano_table(const json& loop);

// The four domains and the eval kind and test/train/dev files of each, under a curriculum dir.
struct NanoDomain {
  std::string name, kind;
  fs::path test, train, dev_sft, train_sft;
  fs::path dev;  // the dev split in eval form (settings are chosen on it)
};
std::vector<NanoDomain> nano_domains(const fs::path& data);

}  // namespace cogumi
