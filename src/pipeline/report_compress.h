// cogumi/pipeline: the report's compression section (report.json "compress", from compress.eval):
// what was done to the base and the modifiers, one table of size, KLD mean/p99, top-1 agreement,
// PPL ratio, accuracy delta (and the packed size), the accuracy per domain before and after, and
// whether the compressed system was handed over (its gates passed). Empty without a compress section.
#pragma once

#include <string>

#include "core/io.h"

namespace cogumi {

std::string report_compress_markdown(const json& report);
std::string report_compress_html(const json& report);

}  // namespace cogumi
