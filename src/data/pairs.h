// cogumi/data: training pairs in the SFT format `cogumi train -d FILE:WEIGHT` reads
// (train/sft_data.h), the plan's Phase 1C and its self-critique records.
//
// Forward and reverse pairs: each record's question and answer (data/record_text.h) become a
// forward pair (question -> answer) and, with `reverse`, a reverse pair (answer -> question: the
// model learns which question an answer belongs to). Written as {"instruction","output"} or
// {"messages"}, with "direction" and "source" (file:line) beside them.
//
// Self-critique records: {"task","bad_output","corrected_output","critique"} plus their training
// view {"instruction": the task and the bad answer under a review prompt, "output": the critique
// then the corrected answer}, so the trainer reads them as instruction data and the four parts
// stay for other uses. Built from an eval run's failures (items.jsonl: the model's wrong output,
// the reference solution, what the scorer found) or from records that already hold the four parts.
#pragma once

#include <filesystem>
#include <string>

namespace cogumi {

struct PairsOptions {
  bool forward = true;
  bool reverse = false;
  std::string format = "instruction";  // instruction | messages
  // The reverse pair's instruction; {answer} is replaced by the answer.
  std::string reverse_template =
      "Here is an answer. Write the question or task it answers.\n\nAnswer:\n{answer}";
  void validate() const;  // throws Error naming the option
};

struct PairsStats {
  size_t n_records = 0, n_forward = 0, n_reverse = 0;
};

// Reads `in` (JSONL in any format record_text knows); writes `out` atomically. Throws Error
// "file:line: ..." on a malformed record, before writing anything.
PairsStats write_pairs(const std::filesystem::path& in, const std::filesystem::path& out, const PairsOptions& opts);

struct CritiqueOptions {
  // The critique record's instruction; {task} and {answer} are replaced.
  std::string prompt_template =
      "Review the answer to the task below. Say what is wrong with it, then give a corrected answer.\n\n"
      "Task:\n{task}\n\nAnswer:\n{answer}";
  std::string format = "instruction";  // instruction | messages
  void validate() const;
};

struct CritiqueStats {
  size_t n_items = 0, n_records = 0, n_skipped = 0;  // skipped: no reference to correct with
};

// `in`: an eval run directory or its items.jsonl (failed items become critique records), or a
// JSONL of {"task"|"instruction","bad_output","corrected_output","critique"} records (given their
// training view). Writes `out` atomically.
CritiqueStats write_critique(const std::filesystem::path& in, const std::filesystem::path& out,
                             const CritiqueOptions& opts);

}  // namespace cogumi
