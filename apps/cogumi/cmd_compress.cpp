// cogumi compress: make a model smaller or faster and measure what it costs. Each group of
// subcommands registers itself from its own file (cmd_compress_*.cpp).
#include "commands.h"

namespace cogumi::cli {

void setup_compress(CLI::App& sub) {
  sub.require_subcommand(1);
  setup_compress_quant(sub);  // imatrix, report
  setup_compress_prune(sub);  // prune
  setup_compress_pack(sub);   // pack, unpack, vocab
}

}  // namespace cogumi::cli
