// cogumi/eval: benchmarks as they are distributed. Each loader reads an upstream file format
// unchanged and yields EvalItems; ids are the upstream ids where one exists, otherwise
// "<file name>:<0-based line or row index>" (GSM8K "test.jsonl:12", MMLU
// "abstract_algebra_test.csv:3"), which is also the id `--responses` files use.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;
using json = nlohmann::json;

enum class TaskKind { kNumeric, kMultipleChoice, kCode, kToolCall, kText };
const char* task_kind_name(TaskKind k);

struct EvalItem {
  std::string id;
  std::string benchmark;     // gsm8k, mmlu, humaneval, mbpp, bbh, bfcl, jsonl
  std::string category;      // MMLU subject, BBH task, BFCL category, or the benchmark name
  TaskKind kind = TaskKind::kText;
  std::string question;      // the problem as shown to the model (no few-shot block)
  std::string reference;     // final answer: number, letter, target text
  std::string solution;      // full reference solution (worked answer, canonical code): training targets
  std::vector<std::string> choices;  // multiple choice options, in order A, B, C, D
  // Code tasks.
  std::string code_prompt;   // HumanEval: signature + docstring; the completion continues it
  std::string test;          // test program (HumanEval: defines check(candidate))
  std::string entry_point;
  std::vector<std::string> test_list;  // MBPP asserts
  std::string test_setup;
  // Tool calls (BFCL).
  json functions;            // [{"name","description","parameters"}]
  json ground_truth;         // [{"func_name": {"arg": [accepted values]}}]
  // Generic JSONL scoring: exact, normalized, numeric, regex.
  std::string scoring = "normalized";
};

struct LoadOptions {
  size_t limit = 0;          // 0: all items (after skip)
  std::string scoring = "normalized";  // for generic JSONL
  size_t skip = 0;           // items dropped at the head of the file first (0..10^8); last, so {N} stays a limit
};

// kind: gsm8k, mmlu, humaneval, mbpp, bbh, bfcl, jsonl. `path` is a file, or for mmlu/bbh a
// directory of per-subject/per-task files. Throws Error naming the file:line and field.
std::vector<EvalItem> load_benchmark(const std::string& kind, const fs::path& path, const LoadOptions& opts = {});
const std::vector<std::string>& benchmark_kinds();

}  // namespace cogumi
