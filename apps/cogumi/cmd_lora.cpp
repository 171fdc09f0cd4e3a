// cogumi lora init: LoRA adapters as files (train and merge arrive with the trainer).
#include <fmt/format.h>

#include <sstream>

#include "commands.h"
#include "engine/adapter.h"
#include "engine/model.h"

namespace cogumi::cli {

void setup_lora(CLI::App& sub) {
  sub.require_subcommand(1);
  static std::string base, out, targets = "q,k,v,o";
  static AdapterInitOptions o;
  auto* init = sub.add_subcommand("init", "Write a LoRA adapter GGUF for a model (random A; B zero unless --std-b)");
  init->add_option("base", base, "Base model GGUF")->required();
  init->add_option("out", out, "Output adapter GGUF")->required();
  init->add_option("--rank", o.rank, "LoRA rank")->capture_default_str();
  init->add_option("--alpha", o.alpha, "LoRA alpha")->capture_default_str();
  init->add_option("--targets", targets, "Comma-separated modules: q,k,v,o,gate,up,down")->capture_default_str();
  init->add_option("--seed", o.seed, "Seed")->capture_default_str();
  init->add_option("--std-a", o.std_a, "Standard deviation of A")->capture_default_str();
  init->add_option("--std-b", o.std_b, "Standard deviation of B (0 = no-op adapter)")->capture_default_str();
  init->callback([&] {
    engine_set_verbose(globals().verbose);
    o.targets.clear();
    std::stringstream ss(targets);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) o.targets.push_back(t);
    uint64_t n = adapter_init(base, out, o);
    fmt::print("wrote {}: rank {}, {} parameters\n", out, o.rank, n);
  });
}

}  // namespace cogumi::cli
