// cogumi gates RUN_DIR: each gate with its values; exit status 1 when one failed (for CI).
#include <fmt/format.h>

#include "commands.h"
#include "core/error.h"
#include "pipeline/gates.h"

namespace cogumi::cli {

void setup_gates(CLI::App& sub) {
  static std::string dir;
  sub.add_option("run_dir", dir, "A pipeline work directory (holds gates.json)")->required();
  sub.callback([&] {
    std::string text;
    const bool ok = print_gates(dir, text);
    fmt::print("{}", text);
    if (!ok) fail("gates failed in {}", dir);
  });
}

}  // namespace cogumi::cli
