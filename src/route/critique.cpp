#include "route/critique.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

namespace {

constexpr const char* kFormat = "cogumi-critique";
constexpr int kVersion = 1;
constexpr size_t kDense = 6;  // has logprobs, mean, min, log length, extracted, empty

// The answer's buckets, re-mixed so an n-gram of the answer and the same n-gram of the question
// get different weights.
uint32_t remix(uint32_t b, size_t dim) {
  uint64_t h = (uint64_t(b) + 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
  h ^= h >> 31;
  return uint32_t(h & (dim - 1));
}

std::vector<float> dense_signals(const CritiqueExample& e) {
  const bool lp = e.logprob_mean.has_value();
  const double mean = lp ? std::clamp(*e.logprob_mean, -10.0, 0.0) : 0.0;
  const double lo = e.logprob_min ? std::clamp(*e.logprob_min, -20.0, 0.0) : 0.0;
  return {lp ? 1.0f : 0.0f,
          float(mean),
          float(lo / 5.0),
          float(std::log1p(double(e.answer.size())) / 5.0),
          e.extracted ? 1.0f : 0.0f,
          e.answer.empty() ? 1.0f : 0.0f};
}

// Sparse features (question, then the re-mixed answer; duplicates summed) and dense signals
// at dim .. dim + kDense.
SparseVec features(const CritiqueExample& e, const FeatureOptions& f) {
  SparseVec x = featurize(e.question, f);
  for (auto [b, v] : featurize(e.answer, f)) x.emplace_back(remix(b, f.dim()), v);
  const auto d = dense_signals(e);
  for (size_t k = 0; k < kDense; ++k)
    if (d[k] != 0) x.emplace_back(uint32_t(f.dim() + k), d[k]);
  return x;
}

double sigmoid(double z) { return 1.0 / (1.0 + std::exp(-z)); }

}  // namespace

void CritiqueTrainOptions::validate() const {
  features.validate();
  if (epochs < 1 || epochs > 1000) fail("critique: epochs must be in 1..1000, got {}", epochs);
  if (!(lr > 0 && lr <= 100)) fail("critique: lr must be in (0, 100], got {}", lr);
  if (!(l2 >= 0 && l2 < 1)) fail("critique: l2 must be in [0, 1), got {}", l2);
  if (min_score < 0 || min_score > 10) fail("critique: min_score must be in 0..10, got {}", min_score);
}

Critique Critique::train(const std::vector<CritiqueExample>& examples, const CritiqueTrainOptions& opts) {
  opts.validate();
  size_t pos = 0;
  for (const auto& e : examples) pos += e.correct;
  if (pos == 0 || pos == examples.size())
    fail("critique train: needs both right and wrong answers ({} of {} right)", pos, examples.size());
  Critique c;
  c.feat_ = opts.features;
  c.min_score_ = opts.min_score;
  c.n_train_ = examples.size();
  const size_t n = examples.size(), dim = c.feat_.dim() + kDense;
  c.w_.assign(dim, 0.0f);
  std::vector<float> g2(dim, 0.0f);
  float gb2 = 0;
  std::vector<SparseVec> xs(n);
  for (size_t i = 0; i < n; ++i) xs[i] = features(examples[i], c.feat_);
  const double w_pos = double(n) / (2.0 * pos), w_neg = double(n) / (2.0 * (n - pos));  // balanced
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::mt19937_64 rng(opts.seed);
  for (int ep = 0; ep < opts.epochs; ++ep) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      double z = c.b_;
      for (auto [b, v] : xs[i]) z += c.w_[b] * v;
      const bool y = examples[i].correct;
      const double g = (sigmoid(z) - (y ? 1.0 : 0.0)) * (y ? w_pos : w_neg);
      for (auto [b, v] : xs[i]) {
        const double gi = g * v + opts.l2 * c.w_[b];
        g2[b] += float(gi * gi);
        c.w_[b] -= float(opts.lr * gi / (std::sqrt(g2[b]) + 1e-8));
      }
      gb2 += float(g * g);
      c.b_ -= float(opts.lr * g / (std::sqrt(gb2) + 1e-8));
    }
  }
  return c;
}

double Critique::probability(const CritiqueExample& e) const {
  double z = b_;
  for (auto [b, v] : features(e, feat_)) z += w_[b] * v;
  return sigmoid(z);
}

int Critique::score(const CritiqueExample& e) const {
  return std::clamp(int(std::lround(10.0 * probability(e))), 0, 10);
}

nlohmann::json Critique::to_json() const {
  nlohmann::json w = nlohmann::json::array();  // [bucket, weight] of the nonzero weights
  for (size_t i = 0; i < w_.size(); ++i)
    if (w_[i] != 0) w.push_back({i, w_[i]});
  return {{"format", kFormat}, {"version", kVersion},  {"model", "logistic"},
          {"features", feat_.to_json()}, {"dense", kDense}, {"min_score", min_score_},
          {"n_train", n_train_}, {"bias", b_}, {"weights", w}};
}

void Critique::save(const std::filesystem::path& path) const {
  write_file_atomic(path, to_json().dump() + "\n");
}

Critique Critique::from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || j.value("format", "") != kFormat)
    fail("{}: not a critique file ('format' is not '{}')", where, kFormat);
  if (j.value("version", 0) != kVersion)
    fail("{}: 'version' {} (this build reads {})", where, j.value("version", 0), kVersion);
  Critique c;
  try {
    c.feat_ = FeatureOptions::from_json(j.at("features"));
    if (j.at("dense").get<size_t>() != kDense) fail("{}: 'dense' must be {}", where, kDense);
    c.min_score_ = j.at("min_score").get<int>();
    if (c.min_score_ < 0 || c.min_score_ > 10) fail("{}: 'min_score' must be in 0..10", where);
    c.n_train_ = j.value("n_train", size_t(0));
    c.b_ = j.at("bias").get<float>();
    c.w_.assign(c.feat_.dim() + kDense, 0.0f);
    for (const auto& p : j.at("weights")) {
      const size_t i = p.at(0).get<size_t>();
      const float v = p.at(1).get<float>();
      if (i >= c.w_.size() || !std::isfinite(v)) fail("{}: 'weights': bad entry {}", where, p.dump());
      c.w_[i] = v;
    }
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed critique file: {}", where, e.what());
  }
  return c;
}

Critique Critique::load(const std::filesystem::path& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a critique file (JSON: {})", path.string(), e.what());
  }
  return from_json(j, path.string());
}

std::vector<CritiqueExample> load_critique_examples(const std::vector<std::filesystem::path>& runs) {
  std::vector<CritiqueExample> out;
  for (const auto& run : runs) {
    const auto p = std::filesystem::is_directory(run) ? run / "items.jsonl" : run;
    if (!std::filesystem::exists(p)) fail("'{}' is not an eval run (no items.jsonl)", run.string());
    read_jsonl(p, [&](const nlohmann::json& j, size_t line) {
      const std::string where = p.string() + ":" + std::to_string(line);
      if (!j.contains("correct") || !j["correct"].is_boolean()) fail("{}: 'correct' missing or not a boolean", where);
      CritiqueExample e;
      e.question = get_string(j, "question", where);
      e.answer = get_string(j, "output", where);
      e.correct = j["correct"].get<bool>();
      e.extracted = j.contains("extracted") && !j["extracted"].is_null();
      if (j.contains("logprob_mean") && j["logprob_mean"].is_number()) e.logprob_mean = j["logprob_mean"].get<double>();
      if (j.contains("logprob_min") && j["logprob_min"].is_number()) e.logprob_min = j["logprob_min"].get<double>();
      out.push_back(std::move(e));
    });
  }
  return out;
}

std::vector<size_t> critique_keep(const std::vector<int>& scores, int min_score) {
  std::vector<size_t> hi, all(scores.size());
  std::iota(all.begin(), all.end(), size_t(0));
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] >= min_score) hi.push_back(i);
  return hi.empty() ? all : hi;
}

double roc_auc(const std::vector<double>& scores, const std::vector<bool>& labels) {
  if (scores.size() != labels.size()) fail("roc_auc: {} scores and {} labels", scores.size(), labels.size());
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), size_t(0));
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  double rank_sum = 0, npos = 0;
  for (size_t i = 0; i < idx.size();) {  // average ranks over ties
    size_t j = i;
    while (j < idx.size() && scores[idx[j]] == scores[idx[i]]) ++j;
    const double r = (double(i) + double(j) + 1) / 2.0;
    for (size_t k = i; k < j; ++k)
      if (labels[idx[k]]) rank_sum += r, npos += 1;
    i = j;
  }
  const double nneg = double(scores.size()) - npos;
  if (npos == 0 || nneg == 0) return 0.5;
  return (rank_sum - npos * (npos + 1) / 2.0) / (npos * nneg);
}

nlohmann::json CritiqueReport::to_json() const {
  return {{"n", n}, {"n_correct", n_correct}, {"auc", auc}, {"accuracy", accuracy},
          {"n_kept", n_kept}, {"kept_accuracy", kept_accuracy}};
}

CritiqueReport evaluate_critique(const Critique& c, const std::vector<CritiqueExample>& examples) {
  CritiqueReport r;
  r.n = examples.size();
  std::vector<double> p;
  std::vector<bool> y;
  size_t right = 0, kept_right = 0;
  for (const auto& e : examples) {
    p.push_back(c.probability(e));
    y.push_back(e.correct);
    r.n_correct += e.correct;
    right += (p.back() >= 0.5) == e.correct;
    if (c.score(e) >= c.min_score()) ++r.n_kept, kept_right += e.correct;
  }
  r.auc = roc_auc(p, y);
  r.accuracy = r.n ? double(right) / double(r.n) : 0;
  r.kept_accuracy = r.n_kept ? double(kept_right) / double(r.n_kept) : 0;
  return r;
}

}  // namespace cogumi
