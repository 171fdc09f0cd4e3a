// cogumi/pipeline: the `data:` block of a pipeline config. Teacher-made training data for the
// modifiers, made between failure clustering and training (pipeline/stages_data.h):
//
//   data:
//     domains: [math]              # default: every domain with a modifier and a mining set
//     limit: 0                     # failures per domain given to tier 1 (0: all), 0..10^7
//     spend_cap_tokens: 0          # prompt + completion tokens per domain over every tier (0: none)
//     tiers:                       # the cascade, in order: what tier 1 leaves failing goes to tier 2, ...
//       - {name: base, base_url: http://127.0.0.1:8080/v1, model: base, api: completions,
//          template: prompts/teacher_eval_prompt.txt, temperature: 0.8, max_tokens: 96}
//       - {name: strong, base_url: https://api.example.com/v1, model: big, api_key_env: TEACHER_KEY}
//     judge: {base_url: ..., model: reasoning, threshold: 7}   # optional: LLM judge, 1..10
//     dedup: {exact: true, near: true, threshold: 0.75}
//     decontaminate: {ngram: 13, min_words: 8, benches: {gsm8k: extra-test.jsonl}}
//     pairs: {reverse: false,      # forward pairs always; reverse (answer -> question) too when true
//             form: instruction}   # forward pairs as {instruction, output}, or `eval`: {prompt, completion}
//                                  # with the failure's prompt as the eval asked it (the mined failures' form)
//     weight: 1.0                  # the teacher data's weight in each domain's training set, (0, 100]
//
// Endpoint fields are data/teacher.h's (TeacherEndpoint). Decontamination always checks every
// domain's `test:` sets; `benches` adds more. Errors name FILE:LINE and the key.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/teacher.h"
#include "eval/run.h"

namespace YAML {
class Node;
}

namespace cogumi {

struct DataConfig {
  bool enabled = false;               // a `data:` block was given
  std::vector<std::string> domains;   // empty: every modifier domain that mines failures
  size_t limit = 0;                   // failures per domain for tier 1 (0: all)
  int64_t spend_cap_tokens = 0;       // per domain (0: none)
  std::vector<TeacherEndpoint> tiers; // at least one
  bool judge = false;
  TeacherEndpoint judge_endpoint;
  double judge_threshold = 7;         // keep a judged example at this score or above, [1, 10]
  bool exact = true, near = true;     // dedup: normalized hash, MinHash LSH
  double dedup_threshold = 0.75;      // Jaccard, (0, 1)
  int ngram = 13;                     // decontamination n-gram, 1..64
  int min_words = 8;                  // shorter benchmark items are not checked, 1..ngram
  std::vector<BenchSpec> decontam_extra;  // benchmark sets checked beside the domains' test sets
  bool reverse = false;               // reverse pairs beside the forward ones
  std::string form = "instruction";   // forward pairs: instruction | eval
  double weight = 1.0;                // weight in the training set, (0, 100]
  // Throws Error naming `where` and the key. `modifier_domains`: the config's domains that train a
  // modifier and mine failures (where data can be made).
  void validate(const std::string& where, const std::vector<std::string>& modifier_domains) const;
};

// Reads `n` (the `data:` mapping) of `file`; errors say "FILE:LINE: 'data.KEY': what".
DataConfig read_data_config(const YAML::Node& n, const fs::path& file);

}  // namespace cogumi
