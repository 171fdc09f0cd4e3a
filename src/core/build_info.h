// cogumi/core: what this build is made of, for records that must change when it does.
#pragma once

#include <string_view>

namespace cogumi {

// The llama.cpp build this binary links: "llama.cpp 0.5.0 patches <sha256 of patches/*.patch>", as
// scripts/deps.sh wrote it into the install prefix. The pipeline's stage keys include it, so a changed
// patch (new kernels, another summation order) reruns the stages instead of reusing numbers it may change.
std::string_view engine_id();

}  // namespace cogumi
