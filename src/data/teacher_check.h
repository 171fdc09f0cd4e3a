// cogumi/data: the real checks a teacher's or a judged example's answer meets, where one exists
// (the eval harness's own): a number or an option compared to the reference (eval/score.h), code
// run against its tests in the sandbox (eval/sandbox.h), tool calls against the ground truth or,
// without one, the functions' schema (check_call_schema). Anything else is unchecked.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "eval/benchmark.h"
#include "eval/run.h"
#include "eval/sandbox.h"

namespace cogumi {

struct CheckResult {
  std::string check;           // "reference", "tests", "schema" or "" (none applies)
  std::optional<bool> passed;  // empty when unchecked (no check, or the sandbox can't run here)
  std::string detail;          // the failure type or why it could not be checked
};

CheckResult check_answer(const EvalItem& item, const std::string& reply, const std::string& finish,
                         const SandboxOptions& sandbox);

// The benchmark items by id, for checks that need more than a run line holds (tests, functions).
std::map<std::string, EvalItem> load_check_items(const std::vector<BenchSpec>& benches);

// An item for checking a record: the benchmark's own item when `items` has its id ("item" or
// "id"), else one built from the record's kind ("numeric", "multiple_choice", ...), question (or
// instruction) and reference. Code and tool records without their benchmark item stay unchecked.
EvalItem check_item_for(const nlohmann::json& record, const std::map<std::string, EvalItem>& items);

}  // namespace cogumi
