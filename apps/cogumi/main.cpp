// cogumi: one program, a subcommand per job. This file is only the dispatch table.
#include <fmt/format.h>

#include <cstdio>

#include "commands.h"
#include "core/build_info.h"
#include "core/error.h"
#include "engine/model.h"

namespace cogumi::cli {
Globals& globals() {
  static Globals g;
  return g;
}
}  // namespace cogumi::cli

using cogumi::cli::Command;

static const Command kCommands[] = {
    {"info", "Show a GGUF model's architecture, size, tensor types, vocabulary and chat template",
     cogumi::cli::setup_info},
    {"generate", "Generate text for one or many prompts (batched)", cogumi::cli::setup_generate},
    {"model", "Make models: random-init GGUFs of any shape, quantization", cogumi::cli::setup_model},
    {"lora", "LoRA adapters: init, info, merge", cogumi::cli::setup_lora},
    {"train", "Fine-tune: LoRA or full-parameter SFT with prompt masking", cogumi::cli::setup_train},
    {"nano", "The built-in miniature: synthetic curriculum", cogumi::cli::setup_nano},
    {"eval", "Evaluate on benchmarks in their upstream formats; compare runs", cogumi::cli::setup_eval},
    {"ask", "One request through the modular system: router, modifier, mode; prints the answer and the decision",
     cogumi::cli::setup_ask},
    {"chat", "A terminal chat over the modular system, showing the decision per answer",
     cogumi::cli::setup_chat},
    {"serve", "Serve the system over an OpenAI-compatible HTTP API (chat, completions, embeddings, models)",
     cogumi::cli::setup_serve},
    {"router", "The learned router: train, evaluate, route queries", cogumi::cli::setup_router},
    {"escalation", "Detect dissatisfied follow-ups: train, evaluate, detect", cogumi::cli::setup_escalation},
    {"critique", "Critique classifier, P(answer correct): train and evaluate on eval runs", cogumi::cli::setup_critique},
    {"fewshot", "Few-shot banks: build one from training data and good answers, query it", cogumi::cli::setup_fewshot},
    {"failures", "Turn a run's failures into training data; cluster and label them", cogumi::cli::setup_failures},
    {"run", "Run a pipeline config: base, evals, failures, modifiers, router, gates, report (cached stages)",
     cogumi::cli::setup_run},
    {"gates", "Print a pipeline run's gates; exit 1 when one failed (for CI)", cogumi::cli::setup_gates},
    {"compress", "Make a model smaller or faster: importance matrix, quality report, pruning, packing, vocabulary",
     cogumi::cli::setup_compress},
    {"data", "Training data: teachers, judges, dedup and decontamination, pairs", cogumi::cli::setup_data},
};

int main(int argc, char** argv) {
  CLI::App app{"cogumi: one open LLM made small, fast and modular"};
  app.require_subcommand(1);
  app.set_version_flag("--version", fmt::format("cogumi 0.1.0 ({})", cogumi::engine_id()));
  auto& g = cogumi::cli::globals();
  app.add_flag("-v,--verbose", g.verbose, "Show llama.cpp's log");
  for (const auto& c : kCommands) c.setup(*app.add_subcommand(c.name, c.help));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const cogumi::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
