// Targets for the record readers (JSONL, CSV) and answer extraction.
#include <algorithm>
#include <cctype>

#include "core/io.h"
#include "data/csv.h"
#include "eval/extract.h"
#include "fuzz.h"

namespace cogumi::fuzz {

// JSONL through the file reader; an input in gzip form (magic 1f 8b) is read as a .jsonl.gz file.
void target_jsonl(std::string_view in) {
  const bool gz = in.size() >= 2 && uint8_t(in[0]) == 0x1f && uint8_t(in[1]) == 0x8b;
  auto path = write_scratch(gz ? "in.jsonl.gz" : "in.jsonl", in);
  size_t last_line = 0, n = 0;
  read_jsonl(path, [&](const json& obj, size_t line) {
    FUZZ_CHECK(obj.is_object(), "read_jsonl passed a non-object");
    FUZZ_CHECK(line > last_line, "read_jsonl line numbers must increase");
    last_line = line;
    ++n;
  });
  if (!gz) FUZZ_CHECK(last_line <= size_t(std::count(in.begin(), in.end(), '\n')) + 1, "line number past the end");
  FUZZ_CHECK(load_jsonl(path).size() == n, "load_jsonl and read_jsonl disagree");
}

void target_csv(std::string_view in) {
  std::vector<size_t> lines;
  auto rows = parse_csv(in, "fuzz.csv", &lines);
  FUZZ_CHECK(lines.size() == rows.size(), "parse_csv gave a line for each row");
  for (size_t i = 0; i < lines.size(); ++i)
    FUZZ_CHECK(lines[i] >= 1 && (i == 0 || lines[i] > lines[i - 1]), "row lines must increase from 1");
  if (!lines.empty())
    FUZZ_CHECK(lines.back() <= size_t(std::count(in.begin(), in.end(), '\n') + std::count(in.begin(), in.end(), '\r')) + 1,
               "a row line past the end of the text");
  size_t cells = 0;
  for (const auto& r : rows) {
    FUZZ_CHECK(!r.empty(), "parse_csv returned an empty row");
    for (const auto& c : r) cells += c.size();
  }
  // Every cell byte comes from the input (quotes and separators are dropped, never invented).
  FUZZ_CHECK(cells <= in.size(), "parse_csv produced more cell bytes than it read");
}

namespace {

bool is_normalized_number(const std::string& s) { return !s.empty() && normalize_number(s) == s; }

}  // namespace

// Every extractor on the same text. The checks are what scoring relies on: extracted numbers
// are already normalized (scores compare them as strings first), a choice is one of the offered
// letters, normalization is idempotent (the reference and the answer are normalized alike).
void target_extract(std::string_view in) {
  std::string n = normalize_number(in);
  FUZZ_CHECK(n.empty() || normalize_number(n) == n, "normalize_number is not idempotent: '" + n + "'");

  Extraction num = extract_numeric(in);
  if (num.strict) FUZZ_CHECK(is_normalized_number(*num.strict), "numeric strict answer not normalized: " + *num.strict);
  if (num.flexible)
    FUZZ_CHECK(is_normalized_number(*num.flexible), "numeric flexible answer not normalized: " + *num.flexible);

  const int n_choices = 2 + int(in.size() % 9);
  Extraction ch = extract_choice(in, n_choices);
  for (const auto* v : {&ch.strict, &ch.flexible})
    if (*v) FUZZ_CHECK(v->value().size() == 1 && v->value()[0] >= 'A' && v->value()[0] < 'A' + n_choices,
                       "choice '" + v->value() + "' is not among " + std::to_string(n_choices) + " letters");

  Extraction txt = extract_text_answer(in);
  if (txt.flexible) FUZZ_CHECK(!txt.flexible->empty(), "empty flexible text answer");

  std::string code = extract_code(in);
  FUZZ_CHECK(code.size() <= in.size(), "extract_code grew the text");

  if (auto j = extract_json(in)) FUZZ_CHECK(j->is_object() || j->is_array(), "extract_json returned a scalar");

  std::string t = normalize_text(in);
  FUZZ_CHECK(normalize_text(t) == t, "normalize_text is not idempotent: '" + t + "'");
}

}  // namespace cogumi::fuzz
