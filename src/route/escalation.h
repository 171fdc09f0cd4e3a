// cogumi/route: the escalation detector. Reads a user's follow-up (and, optionally, the
// assistant turn it answers) and says whether the user is dissatisfied ("that's wrong",
// "still doesn't compile", a pasted error, "no, I meant..."), so the runtime can send the next
// answer to accurate mode or the external endpoint and record it in the session.
//
// It is the router (route/router.h) with two choices, "continue" and "escalate": the same
// hashed n-gram logistic regression, trained in well under a second. A detector file is a
// router file with one more object, "escalation" (threshold, input options), so
// `cogumi router route` reads it too. The labelled set and how it was made:
// datasets/escalation/README.md.
//
// Thread safety: a loaded detector is immutable; detect() may be called from many threads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "route/router.h"

namespace cogumi {

// One labelled follow-up, as datasets/escalation/*.jsonl holds it:
// {"text", "label": "escalate"|"continue", "previous"?, "family"?}.
struct EscalationExample {
  std::string text;      // the user's follow-up
  std::string previous;  // the assistant turn before it ("" when unknown)
  bool escalate = false;
  std::string family;  // where the row came from (template family or hand-written group)
};

// Reads a labelled JSONL file; throws Error "file:line: field ..." on a bad row.
std::vector<EscalationExample> load_escalation_examples(const std::filesystem::path& path);

struct EscalationOptions {
  // The classifier's settings; the defaults were chosen on dev (bench/escalation_bench.sh):
  // word 1-2-grams without character n-grams, l2 1e-4 (the router: + characters 3..5, 1e-6).
  // Complaints are told by their words; character n-grams mostly add the slots' noise.
  RouterTrainOptions train = default_train_options();
  // Fires at P(escalate) >= threshold (0, 1). Chosen on dev (bench/escalation_bench.sh).
  double threshold = 0.5;
  // Two input options, off: on dev neither helped (bench/RESULTS.md), and negation hurt. They
  // stay so the ablation can be rerun as the data grows.
  // Context markers from the previous assistant turn: a number the user quotes back from it,
  // and how much of the follow-up's wording it shares.
  bool use_previous = false;
  // Marks the words a negation governs ("not wrong", "didn't fix"): "neg_" + the word, for the
  // 3 words after not/no/never/n't, up to punctuation (Das & Chen's sentiment trick).
  bool negation = false;

  // Throws Error naming the option on a value outside its range.
  void validate() const;
  static RouterTrainOptions default_train_options();
};

struct EscalationVerdict {
  bool escalate = false;
  float probability = 0;  // P(escalate)
};

class EscalationDetector {
 public:
  static EscalationDetector train(const std::vector<EscalationExample>& examples,
                                  const EscalationOptions& opts);
  // Throws Error naming the file and field on anything malformed.
  static EscalationDetector load(const std::filesystem::path& path);
  // Writes atomically.
  void save(const std::filesystem::path& path) const;

  // `previous` (the assistant turn answered) is read only by a detector with use_previous.
  EscalationVerdict detect(std::string_view followup, std::string_view previous = {}) const;

  double threshold() const { return threshold_; }
  void set_threshold(double t);
  bool use_previous() const { return use_previous_; }
  bool negation() const { return negation_; }
  const Router& router() const { return router_; }

 private:
  Router router_;
  double threshold_ = 0.5;
  bool use_previous_ = false;
  bool negation_ = false;
  int escalate_index_ = 1;  // which of the router's choices is "escalate"
};

// The text the classifier sees: the follow-up, plus context markers when `use_previous` and
// negated words when `negation`.
std::string escalation_input(std::string_view followup, std::string_view previous,
                             bool use_previous, bool negation);

struct EscalationReport {
  size_t n = 0;
  size_t tp = 0, fp = 0, tn = 0, fn = 0;  // positive = escalate
  double accuracy = 0, precision = 0, recall = 0, f1 = 0;
  double latency_p50_us = 0, latency_p99_us = 0;  // detect(), one at a time, one thread
  nlohmann::json to_json() const;
  std::string summary() const;  // one line
};

EscalationReport evaluate_escalation(const EscalationDetector& d,
                                     const std::vector<EscalationExample>& examples);

// `cogumi escalation train`: train on one file, report on a dev file, write the detector and
// OUT.report.json beside it.
struct EscalationJob {
  std::filesystem::path train_file, dev_file, out;
  EscalationOptions opts;
  void validate() const;
};

struct EscalationJobResult {
  EscalationDetector detector;
  size_t n_train = 0;
  EscalationReport dev;  // n = 0 without a dev file
};

EscalationJobResult train_escalation_job(const EscalationJob& job);

// `cogumi escalation eval`: a saved detector on the rows of a labelled file whose family starts
// with `family_prefix` ("" = all, "hand:" = the hand-written ones); `threshold` > 0 replaces the
// detector's own (for choosing one on dev).
EscalationReport eval_escalation_job(const std::filesystem::path& detector,
                                     const std::filesystem::path& data,
                                     const std::string& family_prefix = "", double threshold = 0);

}  // namespace cogumi
