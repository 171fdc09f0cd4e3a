// cogumi compress (part): registered by setup_compress (cmd_compress.cpp).
#include "commands.h"

namespace cogumi::cli {

void setup_compress_pack(CLI::App& /*compress*/) {}

}  // namespace cogumi::cli
