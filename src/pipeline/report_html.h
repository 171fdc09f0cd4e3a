// cogumi/pipeline: the run report. One self-contained HTML page (no scripts, no external files:
// inline SVG charts and CSS) and a Markdown summary, both from the report stage's report.json:
// the model card (base, modifiers, sizes, settings, training data), per-domain accuracy before and
// after with 95% intervals, wins/ties/losses and McNemar p, every modifier on every domain, the failure taxonomy
// and clusters, training loss curves, router accuracy and confusion matrix, the calibration
// reliability diagram (when calibration ran), the routed system, and the gates.
#pragma once

#include <string>

#include "core/io.h"

namespace cogumi {

std::string report_html(const json& report);
std::string report_markdown(const json& report);
// The per-domain table (Markdown, also printed by `cogumi run`): items, base, own modifier and routed
// system, each with its 95% Wilson interval, own modifier vs base (wins/ties/losses, exact McNemar p).
std::string report_table(const json& report);
// Seconds per stage of the run that made the report (stages reused from an older run keep their time).
std::string report_times(const json& report);

}  // namespace cogumi
