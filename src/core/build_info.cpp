#include "core/build_info.h"

#include "core/build_info.inc"

namespace cogumi {

std::string_view engine_id() { return COGUMI_ENGINE_ID; }

}  // namespace cogumi
