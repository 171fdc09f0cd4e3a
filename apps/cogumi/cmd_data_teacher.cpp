// cogumi data (part): registered by setup_data (cmd_data.cpp).
#include "commands.h"

namespace cogumi::cli {

void setup_data_teacher(CLI::App& /*data*/) {}

}  // namespace cogumi::cli
