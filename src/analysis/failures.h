// cogumi/analysis: a run's failures as training data (the plan's Phase 1B.2). Every failed
// item of an eval run becomes {"instruction","output"} with the benchmark's reference
// solution as the output, plus category, failure type and source id; the plan's
// hard-failure form {"instruction","reference_answer","category"} is written beside it.
#pragma once

#include "core/io.h"

namespace cogumi {

struct FailureExtractStats {
  size_t n_items = 0, n_failures = 0;
  std::map<std::string, size_t> by_type;
};

// kEval (default): each failure asked exactly as the eval asked it (zero-shot), with the ideal
// answer as the target: {"prompt","completion"} for completion-mode runs, {"instruction",
// "output"} for chat runs. Training on this form teaches what the eval measures.
// kQuestion: the plan's form, {"instruction": bare question, "output": reference solution}.
enum class FailureForm { kEval, kQuestion };

// One failed item (a line of items.jsonl) as a training record in `form`, with category,
// benchmark, failure type, source id and the model's output. `source` names the file in errors.
json failure_record(const json& item, FailureForm form, const fs::path& source);

// Reads RUN/items.jsonl; writes `out` (training form) and, if non-empty, `hard_out`.
FailureExtractStats extract_failures(const fs::path& run, const fs::path& out, const fs::path& hard_out,
                                     FailureForm form = FailureForm::kEval);
// The failed items of a run (as stored in items.jsonl).
std::vector<json> load_failures(const fs::path& run);

}  // namespace cogumi
