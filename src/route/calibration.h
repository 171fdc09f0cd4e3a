// cogumi/route: confidence and calibration. An answer's confidence is P(the answer is correct),
// estimated from signals the runtime has when it answers: the router's probabilities, the
// answer's own token log-probabilities (mean and min), agreement among samples (accurate mode),
// and a verifier's verdict where one ran. Two fits, both on a dev split of labelled outcomes
// (eval runs that say per item whether the answer was correct):
//  - temperature scaling of the router's softmax (one T minimizing the NLL of the routed domain);
//  - Platt scaling: logistic regression from the signals (standardized, plus one indicator per
//    choice, since modifiers differ in accuracy) to P(correct), one model per mode (fast answers,
//    and accurate mode's votes when the dev outcomes hold them).
// Reports: expected calibration error over equal-width bins (also the largest bin gap and the
// over/under-confident parts), Brier score and NLL, and a reliability diagram as SVG.
// Thresholds: a sweep over candidate thresholds (share escalated, accuracy of the kept answers,
// overall accuracy when escalated answers take the escalation path, cost) and a stated rule
// that picks one. Everything a runtime needs is one JSON file that a system file names
// (`calibration: FILE`).
//
// Thread safety: a loaded Calibrator is immutable; confidence() may be called from many threads.
#pragma once

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cogumi {

// What is known about one answer when it is given.
struct AnswerSignals {
  std::string choice;                    // the choice that answered ("" = unknown)
  std::string mode = "fast";             // fast | accurate
  std::vector<double> router_probs;      // the router's probability per choice (empty: no router)
  std::optional<double> logprob_mean;    // mean token log-probability of the answer
  std::optional<double> logprob_min;     // lowest token log-probability of the answer
  std::optional<double> agreement;       // accurate mode: the winner's share of the votes
  std::optional<bool> verified;          // a verifier's verdict (tests run, schema checked)

  // The router's probability of its pick (1 without a router).
  double router_probability() const;
  // What the runtime reported before calibration: the vote share in accurate mode, else the
  // router's probability.
  double raw_confidence() const;
  nlohmann::json to_json() const;
  // Reads what to_json() writes; throws Error naming `where` and the field.
  static AnswerSignals from_json(const nlohmann::json& j, const std::string& where);
};

// --- calibration error ------------------------------------------------------------------------

struct ReliabilityBin {
  double lo = 0, hi = 0;  // confidence range [lo, hi) (the last bin includes 1)
  size_t n = 0;
  double confidence = 0;  // mean confidence in the bin
  double accuracy = 0;    // share correct in the bin
};

struct CalibrationReport {
  size_t n = 0;
  double ece = 0;        // sum over bins of n_b/n * |accuracy_b - confidence_b|
  double mce = 0;        // the largest |accuracy_b - confidence_b| over non-empty bins
  double over = 0;       // the part of the ECE from bins with confidence > accuracy
  double under = 0;      // the part from bins with confidence < accuracy (over + under = ece)
  double brier = 0;      // mean (confidence - correct)^2
  double nll = 0;        // mean -log P(outcome), confidences clamped to [1e-6, 1 - 1e-6]
  double accuracy = 0, mean_confidence = 0;
  std::vector<ReliabilityBin> bins;
  nlohmann::json to_json() const;
};

// Equal-width bins over [0, 1]; `bins` in 1..100. Throws on a size mismatch or a confidence
// outside [0, 1].
CalibrationReport calibration_report(const std::vector<double>& confidence,
                                     const std::vector<bool>& correct, int bins = 15);

// A reliability diagram, self-contained SVG: one panel per report (accuracy per bin against the
// diagonal, the gap shaded, the bin counts below), ECE in each panel's title.
std::string reliability_svg(const std::vector<std::pair<std::string, CalibrationReport>>& panels,
                            const std::string& title);

// --- temperature scaling ----------------------------------------------------------------------

// softmax(log p / t): the probabilities as a softmax at temperature t would have given them.
std::vector<double> apply_temperature(const std::vector<double>& probs, double t);
// The t in [0.05, 20] that minimizes the mean NLL of `labels` under apply_temperature(probs, t)
// (golden-section search on log t). Throws on empty or mismatched input.
double fit_temperature(const std::vector<std::vector<double>>& probs,
                       const std::vector<int>& labels);

// --- Platt scaling ----------------------------------------------------------------------------

struct LogisticOptions {
  double l2 = 1e-3;    // ridge penalty on the weights (not the bias) per example, [0, 10]
  int max_iter = 100;  // Newton steps, 1..10000

  void validate() const;
};

// P(y = 1 | x) = sigmoid(bias + w . x), fit by Newton's method (IRLS) on the penalized
// log-likelihood. Inputs are used as given (standardize before when scales differ).
struct LogisticModel {
  std::vector<double> w;
  double bias = 0;
  double predict(const std::vector<double>& x) const;
};
LogisticModel fit_logistic(const std::vector<std::vector<double>>& x, const std::vector<bool>& y,
                           const LogisticOptions& opts = {});

// --- the calibrator ---------------------------------------------------------------------------

// One labelled answer from a dev or test run, with what the escalation path did on the same
// item (when a run of it was given).
struct Outcome {
  std::string id;  // benchmark/id
  AnswerSignals signals;
  bool correct = false;
  double tokens = 0, seconds = 0;  // the answer's generated tokens and (estimated) time
  int route_label = -1;            // the router choice that is right for the item (-1: unknown)
  std::optional<bool> escalated_correct;  // the escalation path's answer on the same item
  double escalated_tokens = 0, escalated_seconds = 0;
};

struct ThresholdRow {
  double threshold = 0;
  size_t n = 0, n_escalated = 0;
  double escalated_share = 0;
  double kept_accuracy = 0;      // accuracy of the answers at or above the threshold (0 if none)
  std::optional<double> overall_accuracy;  // escalated items scored by the escalation path
  double tokens_per_item = 0, seconds_per_item = 0;  // the fast answer plus any escalation
  nlohmann::json to_json() const;
};

// One row per threshold: confidence < threshold escalates.
std::vector<ThresholdRow> sweep_thresholds(const std::vector<double>& confidence,
                                           const std::vector<Outcome>& outcomes,
                                           const std::vector<double>& thresholds);
// The plan's 0.75/0.80/0.85 within a grid 0, 0.05, ..., 0.95.
std::vector<double> default_threshold_grid();

// The rule: the lowest threshold (the fewest escalations, the least cost) whose overall accuracy
// is within `tolerance` (a share: 0.005 = half a point) of the best overall accuracy. Throws when
// no row has an overall accuracy (no escalation run).
const ThresholdRow& pick_threshold(const std::vector<ThresholdRow>& rows, double tolerance = 0.005);

struct CalibratorOptions {
  LogisticOptions logistic;
  int min_choice_count = 5;  // a choice gets its own indicator with at least this many dev rows
  bool fit_router_temperature = true;

  void validate() const;
};

class Calibrator {
 public:
  // Fits temperature (when outcomes carry router probabilities and route labels) and the Platt
  // model on `dev`. Throws when dev is empty or has only one class.
  static Calibrator fit(const std::vector<Outcome>& dev, const CalibratorOptions& opts = {});
  // Reads a calibration file; throws Error naming the file and field on anything malformed.
  static Calibrator load(const std::filesystem::path& path);
  // Writes atomically.
  void save(const std::filesystem::path& path) const;
  nlohmann::json to_json() const;
  static Calibrator from_json(const nlohmann::json& j, const std::string& where);

  // P(correct) for an answer with these signals.
  double confidence(const AnswerSignals& s) const;
  std::vector<double> confidences(const std::vector<Outcome>& outcomes) const;
  // The router's probabilities after temperature scaling.
  std::vector<double> router_probs(const std::vector<double>& probs) const;

  double router_temperature() const { return temperature_; }
  // Answers below the threshold take the escalation path (nullopt: none chosen).
  std::optional<double> threshold() const { return threshold_; }
  void set_threshold(double t, const std::string& rule);
  const std::string& threshold_rule() const { return threshold_rule_; }
  // A routed choice's own threshold where the rule picked one for it, else threshold().
  std::optional<double> threshold_for(const std::string& choice) const;
  void set_choice_threshold(const std::string& choice, double t);
  const std::map<std::string, double>& choice_thresholds() const { return choice_thresholds_; }
  // A second Platt step on top (logit(p) -> sigmoid(a * logit(p) + b)), as `router adapt` fits
  // from feedback; identity by default.
  void set_recalibration(double a, double b);
  std::pair<double, double> recalibration() const { return {recal_a_, recal_b_}; }
  // Free-form facts about the fit (splits, sizes, ECE): kept in the file for the reader.
  nlohmann::json& info() { return info_; }
  const nlohmann::json& info() const { return info_; }

 private:
  // One Platt model per mode: the signals mean different things for one greedy answer and for
  // a vote (agreement exists only there, and logprobs are of a sampled answer).
  struct Platt {
    std::vector<std::string> names;  // feature names, in model order
    std::vector<double> mean, scale;
    LogisticModel model;
  };
  static Platt fit_platt(const Calibrator& c, const std::vector<const Outcome*>& rows,
                         const CalibratorOptions& opts);
  static Platt platt_from_json(const nlohmann::json& j, const std::string& where);
  std::vector<double> features(const Platt& m, const AnswerSignals& s) const;
  const Platt& platt_for(const std::string& mode) const;

  double temperature_ = 1.0;
  std::map<std::string, Platt> platt_;  // by mode: "fast" always, "accurate" when fit
  double recal_a_ = 1.0, recal_b_ = 0.0;
  std::optional<double> threshold_;
  std::map<std::string, double> choice_thresholds_;
  std::string threshold_rule_;
  nlohmann::json info_ = nlohmann::json::object();
};

}  // namespace cogumi
