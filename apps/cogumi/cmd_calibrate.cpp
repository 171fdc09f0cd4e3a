// cogumi router calibrate|adapt: confidence calibration and the escalation threshold
// (runtime/calibration_job.h).
#include <fmt/format.h>

#include "commands.h"
#include "core/io.h"
#include "runtime/calibration_job.h"

namespace cogumi::cli {

void setup_router_calibration(CLI::App& sub) {
  {
    static CalibrateJob j;
    static std::string report_md;
    auto* c = sub.add_subcommand(
        "calibrate",
        "Fit answer confidence (router temperature + Platt on the signals) and the escalation "
        "threshold on dev eval --system runs; ECE before/after on test");
    c->add_option("--system", j.system, "System file (its choices name the routes)")->required();
    c->add_option("--dev", j.dev, "eval --system run (directory or items.jsonl) to fit on")
        ->required();
    c->add_option("--test", j.test, "eval --system run on the test split, to report on")
        ->required();
    c->add_option("--dev-escalated", j.dev_escalated,
                  "Run of the escalation path on the dev items (e.g. eval --system --samples 5 "
                  "--temp 0.7: its majority vote is accurate mode's answer)");
    c->add_option("--test-escalated", j.test_escalated, "The same on the test items");
    c->add_option("-o,--out", j.out, "Calibration file to write (JSON; OUT.report.json beside it)")
        ->required();
    c->add_option("--svg", j.svg, "Reliability diagram to write (SVG)");
    c->add_option("--markdown", report_md, "Also write the report tables to this file");
    c->add_option("--bins", j.bins, "Equal-width ECE bins")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    c->add_option("--tolerance", j.tolerance,
                  "Threshold rule: the lowest threshold within this share of the best dev overall "
                  "accuracy")
        ->check(CLI::Range(0.0, 0.2))
        ->capture_default_str();
    c->add_option("--thresholds", j.thresholds, "Thresholds to sweep (default 0, 0.05, ..., 0.95)")
        ->check(CLI::Range(0.0, 1.0));
    c->add_flag("--per-choice", j.per_choice,
                "Also write a threshold per routed choice, picked by the same rule on its dev answers");
    c->add_option("--l2", j.options.logistic.l2, "Platt ridge penalty")
        ->check(CLI::Range(0.0, 10.0))
        ->capture_default_str();
    c->callback([&] {
      CalibrateResult r = calibrate_job(j);
      fmt::print("{}\nwrote {}{}\n", r.markdown, j.out.string(),
                 j.svg.empty() ? "" : " and " + j.svg.string());
      if (!report_md.empty()) write_file_atomic(report_md, r.markdown);
    });
  }
  {
    static AdaptJob j;
    auto* a = sub.add_subcommand(
        "adapt",
        "Refit the calibration and threshold from session feedback (thumbs, flagged follow-ups); "
        "before/after on the newest feedback");
    a->add_option("--system", j.system, "System file (its memory and calibration)");
    a->add_option("--memory", j.memory, "Session store (default: the system's)");
    a->add_option("--calibration", j.calibration, "Current calibration (default: the system's)");
    a->add_option("-o,--out", j.out, "Refit calibration file to write")->required();
    a->add_option("--holdout", j.holdout, "Newest share of the labelled answers held out")
        ->check(CLI::Range(0.01, 0.9))
        ->capture_default_str();
    a->add_option("--min-rows", j.min_rows, "Labelled answers needed to refit")
        ->check(CLI::Range(4, 100000000))
        ->capture_default_str();
    a->add_option("--bins", j.bins, "Equal-width ECE bins")
        ->check(CLI::Range(1, 100))
        ->capture_default_str();
    a->callback([&] {
      AdaptResult r = adapt_job(j);
      fmt::print("{}\nwrote {}\n", r.markdown, j.out.string());
    });
  }
}

}  // namespace cogumi::cli
