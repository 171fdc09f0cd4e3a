// cogumi/data: the text of a training record, in the formats people use and `cogumi train` reads
// (train/sft_data.h): chat {"messages":[{"role","content"}]}, {"instruction","input"?,"output"},
// {"prompt","completion"}, plain {"text"}, and benchmark-style {"question","answer"} (GSM8K) or
// {"prompt","canonical_solution"} (HumanEval).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cogumi {

// Which fields make a record's text: "auto" (the first known format the record has), "messages",
// or field names joined by '+' ("text", "prompt+completion", "instruction+input+output"); a
// field that is missing is an error, except "input". Parts are joined with "\n".
class TextFields {
 public:
  explicit TextFields(const std::string& spec = "auto");  // throws Error on an empty part
  const std::string& spec() const { return spec_; }
  // Throws Error "WHERE: ..." naming the missing or non-string field.
  std::string text(const nlohmann::json& record, const std::string& where) const;

 private:
  std::string spec_;
  std::vector<std::string> fields_;  // empty: auto
};

struct QuestionAnswer {
  std::string question, answer;
};

// The question and the answer of a record: the last user message and the last assistant message,
// instruction (+ input) and output, prompt and completion (or canonical_solution), question and
// answer. Throws Error "WHERE: ..." when the record has none of these.
QuestionAnswer question_answer(const nlohmann::json& record, const std::string& where);

}  // namespace cogumi
