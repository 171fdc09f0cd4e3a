// cogumi data: training data from teachers, judges, dedup and decontamination, pairs. Each group
// of subcommands registers itself from its own file (cmd_data_*.cpp).
#include "commands.h"

namespace cogumi::cli {

void setup_data(CLI::App& sub) {
  sub.require_subcommand(1);
  setup_data_dedup(sub);    // dedup, decontaminate, pairs
  setup_data_teacher(sub);  // generate, judge
}

}  // namespace cogumi::cli
