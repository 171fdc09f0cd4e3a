// cogumi-bench-maml: the MAML few-shot comparison's two steps (bench/maml.sh).
//   tasks --data CURRICULUM --split S [--families A,B] [--exclude A,B] -o OUT.jsonl
//       the nano curriculum's items of one split with their task family (generator template)
//   eval -m BASE --maml A.gguf [--multitask B.gguf] -d TASKS.jsonl -o OUT.jsonl [...]
//       1/3/5-shot episodes on held-out families: maml vs multitask vs retrieval (train/maml.h)
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <sstream>

#include "core/error.h"
#include "train/maml.h"

namespace {
std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace cogumi;
  CLI::App app{"MAML few-shot benchmark steps"};
  app.require_subcommand(1);
  std::string data, split = "test", families, exclude, out;
  auto* tasks = app.add_subcommand("tasks", "nano curriculum items with their task family");
  tasks->add_option("--data", data, "curriculum directory (cogumi nano data)")->required();
  tasks->add_option("--split", split, "train, dev or test")->capture_default_str();
  tasks->add_option("--families", families, "keep only these templates (comma-separated)");
  tasks->add_option("--exclude", exclude, "drop these templates (comma-separated)");
  tasks->add_option("-o,--out", out, "output JSONL")->required();

  FewshotEvalOptions eo;
  std::string shots = "1,3,5", targets = "q,v";
  auto* ev = app.add_subcommand("eval", "few-shot episodes: maml vs multitask vs retrieval");
  ev->add_option("-m,--model", eo.model, "base GGUF")->required();
  ev->add_option("--maml", eo.maml_adapter, "meta-trained adapter")->required();
  ev->add_option("--multitask", eo.multitask_adapter, "multitask adapter (same rank and targets)");
  ev->add_option("-d,--data", eo.data, "held-out task records (tasks output)")->required();
  ev->add_option("-o,--out", eo.out, "per-episode JSONL")->required();
  ev->add_option("--task-field", eo.task_field)->capture_default_str();
  ev->add_option("--lora-rank", eo.lora.rank)->capture_default_str();
  ev->add_option("--lora-alpha", eo.lora.alpha)->capture_default_str();
  ev->add_option("--targets", targets)->capture_default_str();
  ev->add_option("--shots", shots, "k values")->capture_default_str();
  ev->add_option("--episodes", eo.episodes, "episodes per task and k")->capture_default_str();
  ev->add_option("--query", eo.query, "query items per episode")->capture_default_str();
  ev->add_option("--maml-inner-steps", eo.maml_inner.steps)->capture_default_str();
  ev->add_option("--maml-inner-lr", eo.maml_inner.lr)->capture_default_str();
  ev->add_option("--multitask-inner-steps", eo.multitask_inner.steps)->capture_default_str();
  ev->add_option("--multitask-inner-lr", eo.multitask_inner.lr)->capture_default_str();
  ev->add_flag("!--no-retrieval", eo.retrieval, "skip the retrieval baseline");
  ev->add_option("--seq-len", eo.seq_len)->capture_default_str();
  ev->add_option("--seed", eo.seed)->capture_default_str();
  ev->add_option("--threads", eo.n_threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (tasks->parsed()) {
      size_t n = write_nano_family_tasks(data, split, split_list(families), split_list(exclude), out);
      fmt::print("{} {} items -> {}\n", n, split, out);
    } else {
      eo.lora.targets = split_list(targets);
      eo.shots.clear();
      for (auto& k : split_list(shots)) eo.shots.push_back(std::stoi(k));
      size_t n = maml_fewshot_eval(eo);
      fmt::print("{} lines -> {}\n", n, eo.out.string());
    }
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
