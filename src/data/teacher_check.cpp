// Real checks of teacher answers (data/teacher_check.h).
#include "data/teacher_check.h"

#include "eval/extract.h"
#include "eval/score.h"

namespace cogumi {

using json = nlohmann::json;

namespace {

TaskKind kind_named(const std::string& k) {
  if (k == "numeric") return TaskKind::kNumeric;
  if (k == "multiple_choice") return TaskKind::kMultipleChoice;
  if (k == "code") return TaskKind::kCode;
  if (k == "tool_call") return TaskKind::kToolCall;
  return TaskKind::kText;
}

std::string field(const json& j, const char* name) {
  auto it = j.find(name);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

CheckResult check_answer(const EvalItem& item, const std::string& reply, const std::string& finish,
                         const SandboxOptions& sandbox) {
  CheckResult r;
  if (item.kind == TaskKind::kCode) {
    if (item.test.empty() && item.test_list.empty()) return r;
    r.check = "tests";
    std::string why;
    if (!sandbox_available(sandbox, &why)) {
      r.detail = "sandbox unavailable: " + why;
      return r;
    }
    const SandboxResult run = run_python_sandboxed(code_program(item, reply), sandbox);
    const ItemScore s = score_code(item, reply, finish, &run);
    r.passed = s.correct;
    r.detail = s.failure_type;
    return r;
  }
  if (item.kind == TaskKind::kToolCall) {
    if (item.ground_truth.is_array() && !item.ground_truth.empty()) {
      r.check = "reference";
      const ItemScore s = score_output(item, reply, finish);
      r.passed = s.correct;
      r.detail = s.failure_type.empty() ? s.detail : s.failure_type + ": " + s.detail;
    } else if (item.functions.is_array() && !item.functions.empty()) {
      r.check = "schema";
      auto calls = extract_json(reply);
      std::string why = "no JSON call in the answer";
      r.passed = calls && check_call_schema(*calls, item.functions, &why);
      if (!*r.passed) r.detail = why;
    }
    return r;
  }
  if (item.reference.empty()) return r;
  r.check = "reference";
  const ItemScore s = score_output(item, reply, finish);
  r.passed = s.correct;
  r.detail = s.failure_type;
  return r;
}

std::map<std::string, EvalItem> load_check_items(const std::vector<BenchSpec>& benches) {
  std::map<std::string, EvalItem> out;
  for (const auto& b : benches)
    for (auto& it : load_benchmark(b.kind, b.path)) out.emplace(it.id, std::move(it));
  return out;
}

EvalItem check_item_for(const json& record, const std::map<std::string, EvalItem>& items) {
  for (const char* k : {"item", "id"}) {
    auto it = items.find(field(record, k));
    if (it != items.end()) return it->second;
  }
  EvalItem item;
  item.id = field(record, "item");
  item.benchmark = field(record, "benchmark");
  item.kind = kind_named(field(record, "kind"));
  item.question = field(record, "question");
  if (item.question.empty()) item.question = field(record, "instruction");
  item.reference = field(record, "reference");
  if (item.kind == TaskKind::kMultipleChoice) item.choices.assign(4, "");  // letters A-D
  if (item.kind == TaskKind::kCode || item.kind == TaskKind::kToolCall) item.reference.clear();
  return item;
}

}  // namespace cogumi
