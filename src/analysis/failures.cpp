#include "analysis/failures.h"

#include "core/error.h"

namespace cogumi {

std::vector<json> load_failures(const fs::path& run) {
  fs::path p = fs::is_directory(run) ? run / "items.jsonl" : run;
  if (!fs::exists(p)) fail("'{}' is not an eval run (no items.jsonl)", run.string());
  std::vector<json> out;
  read_jsonl(p, [&](const json& j, size_t line) {
    if (!j.contains("correct")) fail("{}:{}: missing field 'correct'", p.string(), line);
    if (!j["correct"].get<bool>()) out.push_back(j);
  });
  return out;
}

json failure_record(const json& j, FailureForm form, const fs::path& source) {
  std::string solution = j.value("solution", "");
  if (solution.empty()) solution = j.value("reference", "");
  json row = {{"instruction", j.value("question", "")}, {"output", solution}};
  if (form == FailureForm::kEval) {
    if (!j.contains("sft") || !j["sft"].is_object())
      fail("{}: item '{}' has no 'sft' record (a run from an older cogumi?): use --form question", source.string(),
           j.value("id", ""));
    row = json::object();
    for (const char* k : {"prompt", "completion", "instruction", "output"})
      if (j["sft"].contains(k)) row[k] = j["sft"][k];
  }
  row.update(json{{"category", j.value("category", "")},
                  {"benchmark", j.value("benchmark", "")},
                  {"failure_type", j.value("failure_type", "")},
                  {"source_id", j.value("id", "")},
                  {"model_output", j.value("output", "")}});
  return row;
}

FailureExtractStats extract_failures(const fs::path& run, const fs::path& out, const fs::path& hard_out,
                                     FailureForm form) {
  FailureExtractStats st;
  fs::path p = fs::is_directory(run) ? run / "items.jsonl" : run;
  std::vector<json> all = load_jsonl(p);
  st.n_items = all.size();
  std::string train, hard;
  for (const auto& j : all) {
    if (j.value("correct", true)) continue;
    json row = failure_record(j, form, p);
    train += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    json h = {{"instruction", j.value("question", "")}, {"reference_answer", j.value("reference", "")}, {"category", j.value("category", "")}};
    hard += h.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    st.n_failures++;
    st.by_type[j.value("failure_type", "")]++;
  }
  write_file_atomic(out, train);
  if (!hard_out.empty()) write_file_atomic(hard_out, hard);
  return st;
}

}  // namespace cogumi
