// cogumi/eval: per-item comparison of two runs (the plan's "6% wins, 70% ties, 24%
// losses"): B against A, overall and per category, with an exact McNemar test.
#pragma once

#include "core/io.h"

namespace cogumi {

// Matches items by (benchmark, id, sample); items in only one run are counted, not compared.
json compare_runs(const fs::path& run_a, const fs::path& run_b);
std::string compare_table(const json& cmp);

}  // namespace cogumi
