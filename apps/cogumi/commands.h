// The cogumi program: each subcommand registers its flags on a CLI11 sub-app and sets a
// callback that calls one library function. Errors propagate as cogumi::Error to main().
#pragma once

#include <CLI/CLI.hpp>

namespace cogumi::cli {

struct Command {
  const char* name;
  const char* help;
  void (*setup)(CLI::App& sub);
};

void setup_info(CLI::App& sub);
void setup_generate(CLI::App& sub);
void setup_model(CLI::App& sub);
void setup_lora(CLI::App& sub);
void setup_eval(CLI::App& sub);
void setup_failures(CLI::App& sub);
void setup_train(CLI::App& sub);
void setup_nano(CLI::App& sub);

// Shared global flags.
struct Globals {
  bool verbose = false;
  bool json = false;
};
Globals& globals();

}  // namespace cogumi::cli
