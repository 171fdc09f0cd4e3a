// cogumi/eval: answer extraction. Every extractor gives a strict result (the answer in the
// format the prompt asked for: "#### N", "The answer is X") and a flexible one (the last
// number, the first standalone letter, ...), as lm-evaluation-harness does for GSM8K.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace cogumi {

struct Extraction {
  std::optional<std::string> strict;
  std::optional<std::string> flexible;
};

// "1,234.50" -> "1234.5", "$5" -> "5", "-3." -> "-3", "7.000" -> "7". Empty if not a number.
std::string normalize_number(std::string_view s);
// Strict: "#### N" or "The answer is N"; flexible: the last number in the text.
Extraction extract_numeric(std::string_view output);
// Strict: "answer is (X)" / "Answer: X" / an output that starts with the letter; flexible:
// the first standalone letter among the choices. Letters are A.. (n_choices).
Extraction extract_choice(std::string_view output, int n_choices = 4);
// Strict: "the answer is X" (up to the end of the sentence/line); flexible: the first
// non-empty line.
Extraction extract_text_answer(std::string_view output);
// The first fenced block (```python or bare ```), else the text unchanged. A bare fence that
// follows code and has no partner closes a block the prompt opened: the text before it is the
// code ("    return x\n```\nExplanation" gives "    return x\n").
std::string extract_code(std::string_view output);
// The first balanced JSON object or array in the text that parses.
std::optional<nlohmann::json> extract_json(std::string_view output);
// SQuAD-style: lowercase, drop punctuation and articles, collapse whitespace. It can return ""
// ("(A)", "---", "The"): comparing answers goes through answers_match (score.h), not this alone.
std::string normalize_text(std::string_view s);

}  // namespace cogumi
