// cogumi/route: the router. Picks, per query, one of a configured set of choices (the base
// model or a modifier) from the query's text alone.
//
// The model is multinomial logistic regression over hashed word and character n-grams
// (route/features.h), trained in C++ with AdaGrad and class-balanced loss. The plan asks for a
// small feed-forward net; the linear model already routes held-out real benchmark text at
// 99.7% and the nano domains at 100% (bench/RESULTS.md, router section) in microseconds, so
// a hidden layer has nothing left to win there. One file holds everything a router needs: the
// feature settings, the choice names, the weights (float32, zlib, base64 inside JSON) and the
// calibration temperature.
//
// Thread safety: a loaded Router is immutable; route() may be called from many threads.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "route/features.h"

namespace cogumi {

struct RouterExample {
  std::string text;
  int label = 0;  // index into the choices
};

struct RouterTrainOptions {
  FeatureOptions features;
  int epochs = 10;       // passes over the training examples (1..1000)
  double lr = 0.5;       // AdaGrad step size (0, 100]
  double l2 = 1e-6;      // weight decay per update [0, 1)
  bool balanced = true;  // weigh each class by n / (C * n_class), so a small domain is not drowned
  uint64_t seed = 1;     // example order
  bool progress = false;

  // Throws Error naming the option on a value outside its range.
  void validate() const;
};

struct RouteDecision {
  int choice = 0;            // argmax
  float probability = 0;     // of the argmax (after calibration)
  std::vector<float> probs;  // one per choice, summing to 1
};

class Router {
 public:
  // Trains on `examples` (labels index `choices`; every choice needs at least one example).
  static Router train(const std::vector<std::string>& choices,
                      const std::vector<RouterExample>& examples, const RouterTrainOptions& opts);
  // Reads a router file; throws Error naming the file and field on anything malformed.
  static Router load(const std::filesystem::path& path);
  // Writes atomically.
  void save(const std::filesystem::path& path) const;

  RouteDecision route(std::string_view text) const;
  RouteDecision route(const SparseVec& x) const;

  const std::vector<std::string>& choices() const { return choices_; }
  const FeatureOptions& features() const { return feat_; }
  // Softmax temperature (1 = none); set by calibration (temperature scaling on a dev split).
  float temperature() const { return temperature_; }
  void set_temperature(float t);
  // Raw scores (before softmax) for a featurized query.
  std::vector<float> logits(const SparseVec& x) const;

 private:
  FeatureOptions feat_;
  std::vector<std::string> choices_;
  std::vector<float> w_;  // dim x C, one row of C weights per bucket
  std::vector<float> b_;  // C
  float temperature_ = 1.0f;
};

// Held-out quality of a router on labelled examples.
struct RouterReport {
  size_t n = 0;
  double accuracy = 0;
  std::vector<std::vector<int>> confusion;  // [true][predicted]
  std::vector<double> recall, precision;    // per choice
  double latency_p50_us = 0,
         latency_p99_us = 0;  // featurize + classify, one query at a time, one thread
  nlohmann::json to_json(const std::vector<std::string>& choices) const;
  std::string table(const std::vector<std::string>& choices) const;  // markdown
};

RouterReport evaluate_router(const Router& r, const std::vector<RouterExample>& examples);

}  // namespace cogumi
