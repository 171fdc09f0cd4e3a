// cogumi/route: the critique classifier (plan phase 12). P(answer correct | question, answer)
// from hashed word and character n-grams of the question and of the answer (route/features.h;
// the answer's buckets are re-mixed so the two texts don't share weights) plus cheap signals of
// the answer: mean and minimum token log-probability when known, its length, whether an answer
// could be extracted from it. Binary logistic regression trained with AdaGrad, class-balanced.
// Score 0-10 = round(10 * P).
//
// Trained on eval runs' items.jsonl (question, output, correct, extracted, logprob_mean,
// logprob_min), e.g. `cogumi eval --system S --mode fast --samples 3 --temp 0.7`.
// The runtime uses it in accurate mode (system YAML `critique: FILE`): samples scoring below
// min_score leave the vote when at least one sample scores min_score or more (critique_keep).
//
// Thread safety: a loaded Critique is immutable; score() may be called from many threads.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "route/features.h"

namespace cogumi {

struct CritiqueExample {
  std::string question;
  std::string answer;
  std::optional<double> logprob_mean, logprob_min;  // the answer's tokens, when known
  bool extracted = true;                            // an answer could be extracted
  bool correct = false;                             // the label
};

struct CritiqueTrainOptions {
  FeatureOptions features{.hash_bits = 16};
  int epochs = 10;      // 1..1000
  double lr = 0.2;      // AdaGrad step size (0, 100]
  double l2 = 1e-5;     // weight decay per update [0, 1)
  int min_score = 7;    // samples below this score leave the vote (0..10)
  uint64_t seed = 1;
  void validate() const;  // throws Error naming the option
};

class Critique {
 public:
  static Critique train(const std::vector<CritiqueExample>& examples, const CritiqueTrainOptions& opts);
  // Throws Error naming the file and the field on anything malformed.
  static Critique load(const std::filesystem::path& path);
  static Critique from_json(const nlohmann::json& j, const std::string& where);
  nlohmann::json to_json() const;
  void save(const std::filesystem::path& path) const;  // atomically

  double probability(const CritiqueExample& e) const;  // P(correct); e.correct is ignored
  int score(const CritiqueExample& e) const;           // round(10 * P), 0..10
  int min_score() const { return min_score_; }

 private:
  FeatureOptions feat_;
  int min_score_ = 7;
  std::vector<float> w_;  // dim() sparse buckets, then the dense signals
  float b_ = 0;
  size_t n_train_ = 0;
};

// The examples of eval runs (a run directory or its items.jsonl): one per line with question,
// output and correct. Throws Error naming the file and line of a malformed record.
std::vector<CritiqueExample> load_critique_examples(const std::vector<std::filesystem::path>& runs);

// The samples the vote keeps: those scoring >= min_score when there is at least one, all of
// them otherwise. Indexes into `scores`, ascending.
std::vector<size_t> critique_keep(const std::vector<int>& scores, int min_score);

struct CritiqueReport {
  size_t n = 0, n_correct = 0;
  double auc = 0;            // ranking of right above wrong answers (0.5 = chance)
  double accuracy = 0;       // P >= 0.5 predicts correct
  double kept_accuracy = 0;  // accuracy of the answers scoring >= min_score
  size_t n_kept = 0;
  nlohmann::json to_json() const;
};

CritiqueReport evaluate_critique(const Critique& c, const std::vector<CritiqueExample>& examples);

// Area under the ROC curve of `scores` for `labels` (ties count half); 0.5 with one class only.
double roc_auc(const std::vector<double>& scores, const std::vector<bool>& labels);

}  // namespace cogumi
