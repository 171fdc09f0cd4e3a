// cogumi/runtime: `cogumi router calibrate` and `cogumi router adapt` as library calls.
//
// calibrate: labelled outcomes come from `cogumi eval --system` runs (items.jsonl: correct or
// not, the routed choice, the router's probabilities, the answer's token log-probabilities). A
// run of the escalation path on the same items (the same eval with --samples N --temperature T,
// whose majority vote is what accurate mode answers; or a run of the base) gives what an
// escalated answer would have been, so thresholds can be judged by overall accuracy and cost.
// Fit on dev, report on test, write the calibration file, its report and a reliability SVG.
//
// adapt: labels from session memory. A thumbs up marks an answer correct, a thumbs down wrong;
// a follow-up the escalation detector flagged marks the answer before it wrong (unless a thumb
// says otherwise). The oldest part refits (a Platt step on top of the current calibration, and
// the threshold by the rule stated below), the newest `holdout` share reports before/after.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "route/calibration.h"

namespace cogumi {

class SessionStore;
struct SystemConfig;

// benchmark kind -> the choices asked that way (system.h's ask_as). An item's right route is
// the one of them its router can choose (none or several: unknown).
using RouteLabels = std::map<std::string, std::vector<std::string>>;
RouteLabels route_labels_of(const SystemConfig& cfg);

// Outcomes of one eval run (a run directory or its items.jsonl). `route_labels` give each item's
// right route (for temperature scaling; may be empty).
// `escalated`: optional run of the escalation path on the same items, attached to each outcome
// (items it lacks are an error). Throws Error naming the file and line.
std::vector<Outcome> load_outcomes(const std::filesystem::path& run, const RouteLabels& route_labels,
                                   const std::filesystem::path& escalated = {});

// The escalation path's own answers as outcomes (mode accurate, agreement = vote share) when
// its run voted: several samples per item, or eval --system --mode accurate (votes, samples and
// the verification on each line); empty otherwise.
std::vector<Outcome> load_voted_outcomes(const std::filesystem::path& run,
                                         const RouteLabels& route_labels);

struct CalibrateJob {
  std::filesystem::path system;        // the system file (its choices name the routes)
  std::filesystem::path dev, test;     // eval --system runs: fit on dev, report on test
  std::filesystem::path dev_escalated, test_escalated;  // the escalation path on the same items
  std::filesystem::path out;           // calibration JSON; OUT.report.json beside it
  std::filesystem::path svg;           // reliability diagram ("" = none)
  int bins = 15;                       // ECE bins, 1..100
  double tolerance = 0.005;            // threshold rule: within this share of the best, [0, 0.2]
  std::vector<double> thresholds;      // empty: default_threshold_grid()
  bool include_accurate = true;        // fit on the escalation run's voted answers too
  bool per_choice = false;             // also write a threshold per routed choice (same rule)
  CalibratorOptions options;

  // Throws Error naming the option.
  void validate() const;
};

struct CalibrateResult {
  Calibrator calibrator;
  nlohmann::json report;  // everything below, as written to OUT.report.json
  std::string markdown;   // tables for a reader (ECE before/after, the threshold sweep)
};

CalibrateResult calibrate_job(const CalibrateJob& job);

struct AdaptJob {
  std::filesystem::path system;       // reads its memory and calibration unless given below
  std::filesystem::path memory;       // session store ("" = the system's)
  std::filesystem::path calibration;  // the current calibration ("" = the system's)
  std::filesystem::path out;          // the refit calibration file
  double holdout = 0.25;              // newest share of the labelled answers held out, (0, 0.9]
  size_t min_rows = 20;               // labelled answers needed to refit, >= 4
  int bins = 10;                      // ECE bins, 1..100

  void validate() const;
};

// Labelled answers from a session store, oldest first: signals from each assistant turn's
// decision ("signals"), the label from thumbs or a flagged follow-up.
struct FeedbackOutcome {
  int64_t turn_id = 0;
  Outcome outcome;
  bool escalated = false;   // the answer itself came from the escalation path
  std::string label_from;   // "thumbs" or "escalation"
};
std::vector<FeedbackOutcome> feedback_outcomes(SessionStore& store);

struct AdaptResult {
  Calibrator calibrator;
  nlohmann::json report;
  std::string markdown;
};

AdaptResult adapt_job(const AdaptJob& job);
// The same on an open store and a loaded calibrator (what the command and the tests call).
AdaptResult adapt_calibration(SessionStore& store, const Calibrator& current, const AdaptJob& job);

}  // namespace cogumi
