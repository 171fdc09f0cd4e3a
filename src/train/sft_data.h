// cogumi/train: supervised fine-tuning data. Reads JSONL in the formats people use:
//   {"instruction","input"?,"output"}   (alpaca; the plan's failure files)
//   {"messages":[{"role","content"},...]}  (chat; the last assistant message is the target)
//   {"prompt","completion"}             (plain completion: the text exactly as given)
// For instruction and messages data the model's chat template wraps the prompt when it has
// one; prompt/completion data is never templated (TRL treats it the same way), which is the
// form `cogumi eval` uses without --chat. The target ends with the
// end-of-turn (or end-of-sequence) token so the model learns to stop. By default only target
// tokens carry loss (prompt masking).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/model.h"

namespace cogumi {

struct SftExample {
  std::vector<Token> tokens;
  std::vector<uint8_t> target;  // target[i] = 1: predicting tokens[i] from tokens[0..i) has loss
  std::string source;           // file:line
};

struct SftOptions {
  int max_len = 256;
  bool drop_long = false;        // drop (instead of truncate) examples longer than max_len; an example
                                 // whose prompt alone fills max_len is always dropped (no target left)
  bool train_on_inputs = false;  // loss on prompt tokens too
  bool use_chat_template = true;
};

struct SftStats {
  size_t n_examples = 0, n_truncated = 0, n_dropped = 0, n_target_tokens = 0;
};

// Throws Error "file:line: ..." for malformed lines and missing fields; an empty result is an error.
std::vector<SftExample> load_sft(const std::filesystem::path& path, const Model& tokenizer, const SftOptions& opts,
                                 SftStats* stats = nullptr);

}  // namespace cogumi
