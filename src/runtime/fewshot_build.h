// cogumi/runtime: writing few-shot banks (see fewshot.h for the format) from what a user has:
//  - a benchmark file, read by the eval's loaders: "math=gsm8k:data/nano/math/train.jsonl";
//    each item becomes the prompt the eval asks and its ideal answer (eval/prompts.h);
//  - a training JSONL, "math=data/nano/mix/math.jsonl": {prompt, completion} or
//    {instruction, output} records (what `cogumi train` reads), taken as they are;
//  - session memory: every assistant answer a user rated thumbs-up, with the user turn before it,
//    filed under the choice that answered and put in that choice's form (the system file says
//    how each choice is asked).
// Then the index is built (FewshotBank::open), so the bank is ready to serve.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/fewshot.h"

namespace cogumi {

struct FewshotBuildOptions {
  std::filesystem::path out;         // the bank JSONL to write
  std::vector<std::string> sources;  // DOMAIN=KIND:PATH or DOMAIN=PATH.jsonl
  std::filesystem::path memory;      // a session store (answers marked good); optional
  std::filesystem::path system;      // the system whose choices say how memory turns are asked
  size_t limit = 0;                  // examples per source, 0 = all
  FewshotOptions fewshot;            // embedding and index settings (bank is set to `out`)
  // Throws Error naming the option.
  void validate() const;
};

struct FewshotBuildResult {
  std::vector<std::pair<std::string, size_t>> per_domain;  // domain -> examples
  size_t from_memory = 0;
  double index_seconds = 0;
};

// Examples of one source spec (DOMAIN=KIND:PATH or DOMAIN=PATH), at most `limit` (0: all).
std::vector<BankEntry> bank_entries_from_source(const std::string& spec, size_t limit = 0);

// The thumbs-up answers of a session store, asked as `system`'s choices ask.
std::vector<BankEntry> bank_entries_from_memory(const std::filesystem::path& memory,
                                                const std::filesystem::path& system);

FewshotBuildResult build_fewshot_bank(FewshotBuildOptions o);

}  // namespace cogumi
