// cogumi/eval: how each benchmark is asked. Plain-completion prompts in the formats the
// benchmarks' own harnesses use (GSM8K "Question:/Answer:", MMLU's header + "Answer:",
// HumanEval's bare prompt, MBPP's [BEGIN]/[DONE], BBH "Q:/A:"), optional n-shot blocks,
// and the stop strings that end each answer. With chat on, the same text becomes the user
// message and the model's chat template wraps it.
#pragma once

#include <string>
#include <vector>

#include "eval/benchmark.h"


namespace cogumi {

struct PromptParts {
  std::string text;                // the prompt (user message content when chatting)
  std::vector<std::string> stops;  // completion-mode stop strings
};

PromptParts build_prompt(const EvalItem& item, const std::vector<const EvalItem*>& shots, bool chat);

// The ideal answer to `item` asked with build_prompt(item, {}, chat): what a model should
// generate. Completion mode: the text that continues the prompt (" 12 - 5 = 7\n#### 7",
// " Paris\nAnswer: B", a HumanEval function body, " {\"name\": ...}"). Chat: the assistant
// message (the worked answer, the right option then its letter, the whole function in a
// ```python block, the JSON call). Multiple choice names the option before its letter.
std::string target_text(const EvalItem& item, bool chat);

// `item` as one SFT record in the form `cogumi train` reads, asked exactly as `cogumi eval`
// asks it: {"prompt","completion"} in completion mode (no chat template is applied to it),
// {"instruction","output"} with chat (the model's template wraps it, as eval does).
// `extra` fields (category, source id) are added to the record.
json training_record(const EvalItem& item, bool chat);

// Picks up to n shots for `item` from `pool` (same category first, never the item itself).
std::vector<const EvalItem*> pick_shots(const EvalItem& item, const std::vector<EvalItem>& pool, int n);

}  // namespace cogumi
