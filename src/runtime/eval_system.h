// cogumi/runtime: `cogumi eval --system FILE`: a routed system as one model in the eval
// harness. Each item is routed by its query text (what a user would send: route/data.h's
// query_text) and asked in its benchmark's own format through the choice's adapter, so every
// table can set the system beside the base and each modifier on the same items.
#pragma once

#include <nlohmann/json.hpp>

#include "eval/run.h"
#include "runtime/system.h"

namespace cogumi {

// `o` carries the benchmarks and eval settings; its model and adapters come from the system.
nlohmann::json eval_system(const SystemConfig& cfg, EvalOptions o);

}  // namespace cogumi
