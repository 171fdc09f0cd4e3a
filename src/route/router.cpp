#include "route/router.h"

#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"

namespace cogumi {

namespace {

constexpr const char* kFormat = "cogumi-router";
constexpr int kVersion = 1;

std::string pack_floats(const std::vector<float>& v) {
  const auto* src = reinterpret_cast<const Bytef*>(v.data());
  uLongf zlen = compressBound(uLong(v.size() * sizeof(float)));
  std::string z(zlen, '\0');
  if (compress2(reinterpret_cast<Bytef*>(z.data()), &zlen, src, uLong(v.size() * sizeof(float)),
                6) != Z_OK)
    fail("router: cannot compress weights");
  z.resize(zlen);
  std::string b64(4 * ((z.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(z.data()), int(z.size()));
  b64.resize(size_t(n));
  return b64;
}

std::vector<float> unpack_floats(const std::string& b64, size_t count, const std::string& where) {
  if (b64.size() % 4 != 0) fail("{}: weights: not base64", where);
  std::string z(b64.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(z.data()),
                          reinterpret_cast<const unsigned char*>(b64.data()), int(b64.size()));
  if (n < 0) fail("{}: weights: not base64", where);
  // EVP_DecodeBlock counts '=' padding as zero bytes; zlib stops at its own end marker.
  std::vector<float> v(count);
  uLongf out_len = uLongf(count * sizeof(float));
  if (uncompress(reinterpret_cast<Bytef*>(v.data()), &out_len,
                 reinterpret_cast<const Bytef*>(z.data()), uLong(n)) != Z_OK ||
      out_len != count * sizeof(float))
    fail("{}: weights: corrupt or not {} floats", where, count);
  for (float x : v)
    if (!std::isfinite(x)) fail("{}: weights: non-finite value", where);
  return v;
}

void softmax(std::vector<float>& z) {
  const float m = *std::max_element(z.begin(), z.end());
  double s = 0;
  for (auto& x : z) s += (x = std::exp(x - m));
  for (auto& x : z) x = float(x / s);
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = size_t(std::ceil(p * double(v.size()))) - 1;
  return v[std::min(i, v.size() - 1)];
}

}  // namespace

void RouterTrainOptions::validate() const {
  features.validate();
  if (epochs < 1 || epochs > 1000) fail("router: --epochs must be 1..1000, got {}", epochs);
  if (!(lr > 0 && lr <= 100)) fail("router: --lr must be in (0, 100], got {}", lr);
  if (!(l2 >= 0 && l2 < 1)) fail("router: --l2 must be in [0, 1), got {}", l2);
}

void Router::set_temperature(float t) {
  if (!(t > 0.01f && t < 100.0f)) fail("router: temperature must be in (0.01, 100), got {}", t);
  temperature_ = t;
}

std::vector<float> Router::logits(const SparseVec& x) const {
  const size_t C = choices_.size();
  std::vector<float> z(b_);
  for (auto [i, v] : x) {
    const float* row = &w_[size_t(i) * C];
    for (size_t c = 0; c < C; ++c) z[c] += v * row[c];
  }
  return z;
}

RouteDecision Router::route(const SparseVec& x) const {
  RouteDecision d;
  d.probs = logits(x);
  for (auto& z : d.probs) z /= temperature_;
  softmax(d.probs);
  d.choice = int(std::max_element(d.probs.begin(), d.probs.end()) - d.probs.begin());
  d.probability = d.probs[size_t(d.choice)];
  return d;
}

RouteDecision Router::route(std::string_view text) const {
  return route(featurize(text, feat_));
}

Router Router::train(const std::vector<std::string>& choices,
                     const std::vector<RouterExample>& examples, const RouterTrainOptions& o) {
  o.validate();
  const size_t C = choices.size();
  if (C < 2) fail("router: need at least two choices, got {}", C);
  std::vector<size_t> per_class(C, 0);
  for (auto& e : examples) {
    if (e.label < 0 || size_t(e.label) >= C)
      fail("router: example label {} outside 0..{}", e.label, C - 1);
    ++per_class[size_t(e.label)];
  }
  for (size_t c = 0; c < C; ++c)
    if (!per_class[c]) fail("router: no training examples for choice '{}'", choices[c]);

  Router r;
  r.feat_ = o.features;
  r.choices_ = choices;
  r.w_.assign(o.features.dim() * C, 0.0f);
  r.b_.assign(C, 0.0f);
  std::vector<float> g2w(r.w_.size(), 0.0f), g2b(C, 0.0f);  // AdaGrad accumulators
  std::vector<float> class_w(C, 1.0f);
  if (o.balanced)
    for (size_t c = 0; c < C; ++c)
      class_w[c] = float(double(examples.size()) / double(C * per_class[c]));

  std::vector<SparseVec> xs;
  xs.reserve(examples.size());
  for (auto& e : examples) xs.push_back(featurize(e.text, o.features));
  std::vector<size_t> order(examples.size());
  std::iota(order.begin(), order.end(), 0);
  std::mt19937_64 rng(o.seed);
  constexpr float kEps = 1e-8f;
  const float lr = float(o.lr), l2 = float(o.l2);
  Progress bar("router train", o.epochs, o.progress);
  std::vector<float> g(C);
  for (int epoch = 0; epoch < o.epochs; ++epoch) {
    std::shuffle(order.begin(), order.end(), rng);
    double loss = 0;
    for (size_t k : order) {
      const SparseVec& x = xs[k];
      const size_t y = size_t(examples[k].label);
      std::vector<float> p = r.logits(x);
      softmax(p);
      loss -= class_w[y] * std::log(std::max(p[y], 1e-12f));
      for (size_t c = 0; c < C; ++c) g[c] = class_w[y] * (p[c] - (c == y ? 1.0f : 0.0f));
      for (auto [i, v] : x) {
        float* row = &r.w_[size_t(i) * C];
        float* acc = &g2w[size_t(i) * C];
        for (size_t c = 0; c < C; ++c) {
          const float gi = g[c] * v + l2 * row[c];
          acc[c] += gi * gi;
          row[c] -= lr * gi / (std::sqrt(acc[c]) + kEps);
        }
      }
      for (size_t c = 0; c < C; ++c) {
        g2b[c] += g[c] * g[c];
        r.b_[c] -= lr * g[c] / (std::sqrt(g2b[c]) + kEps);
      }
    }
    bar.update(epoch + 1, fmt::format("loss {:.4f}", loss / double(examples.size())));
  }
  bar.finish();
  return r;
}

void Router::save(const std::filesystem::path& path) const {
  nlohmann::json j = {{"format", kFormat},
                      {"version", kVersion},
                      {"model", "logistic"},
                      {"features", feat_.to_json()},
                      {"choices", choices_},
                      {"temperature", temperature_},
                      {"bias", b_},
                      {"weights",
                       {{"encoding", "f32le-zlib-base64"},
                        {"shape", {feat_.dim(), choices_.size()}},
                        {"data", pack_floats(w_)}}}};
  write_file_atomic(path, j.dump() + "\n");
}

Router Router::load(const std::filesystem::path& path) {
  const std::string where = path.string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: not a router file (JSON: {})", where, e.what());
  }
  if (!j.is_object() || j.value("format", "") != kFormat)
    fail("{}: not a router file (format is not '{}')", where, kFormat);
  if (j.value("version", 0) != kVersion)
    fail("{}: router file version {} (this build reads {})", where, j.value("version", 0),
         kVersion);
  try {
    Router r;
    r.feat_ = FeatureOptions::from_json(j.at("features"));
    r.choices_ = j.at("choices").get<std::vector<std::string>>();
    if (r.choices_.size() < 2) fail("{}: 'choices' needs at least two names", where);
    r.b_ = j.at("bias").get<std::vector<float>>();
    if (r.b_.size() != r.choices_.size())
      fail("{}: 'bias' has {} values for {} choices", where, r.b_.size(), r.choices_.size());
    const auto& w = j.at("weights");
    if (w.at("encoding") != "f32le-zlib-base64") fail("{}: weights: unknown encoding", where);
    r.w_ = unpack_floats(w.at("data").get<std::string>(), r.feat_.dim() * r.choices_.size(), where);
    r.set_temperature(j.value("temperature", 1.0f));
    return r;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed router file: {}", where, e.what());
  }
}

RouterReport evaluate_router(const Router& r, const std::vector<RouterExample>& examples) {
  const size_t C = r.choices().size();
  RouterReport rep;
  rep.n = examples.size();
  rep.confusion.assign(C, std::vector<int>(C, 0));
  std::vector<double> us;
  us.reserve(examples.size());
  size_t right = 0;
  for (auto& e : examples) {
    if (e.label < 0 || size_t(e.label) >= C)
      fail("router eval: example label {} outside 0..{}", e.label, C - 1);
    auto t0 = std::chrono::steady_clock::now();
    RouteDecision d = r.route(e.text);
    us.push_back(
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    ++rep.confusion[size_t(e.label)][size_t(d.choice)];
    right += d.choice == e.label;
  }
  rep.accuracy = rep.n ? double(right) / double(rep.n) : 0;
  rep.recall.assign(C, 0);
  rep.precision.assign(C, 0);
  for (size_t c = 0; c < C; ++c) {
    double row = 0, col = 0;
    for (size_t k = 0; k < C; ++k) row += rep.confusion[c][k], col += rep.confusion[k][c];
    rep.recall[c] = row ? rep.confusion[c][c] / row : 0;
    rep.precision[c] = col ? rep.confusion[c][c] / col : 0;
  }
  rep.latency_p50_us = percentile(us, 0.50);
  rep.latency_p99_us = percentile(us, 0.99);
  return rep;
}

nlohmann::json RouterReport::to_json(const std::vector<std::string>& choices) const {
  return {{"n", n},
          {"accuracy", accuracy},
          {"choices", choices},
          {"confusion", confusion},
          {"recall", recall},
          {"precision", precision},
          {"latency_p50_us", latency_p50_us},
          {"latency_p99_us", latency_p99_us}};
}

std::string RouterReport::table(const std::vector<std::string>& choices) const {
  std::string t = "| true \\ routed |";
  for (auto& c : choices) t += " " + c + " |";
  t += " recall |\n|---|";
  for (size_t i = 0; i <= choices.size(); ++i) t += "---:|";
  t += "\n";
  for (size_t i = 0; i < choices.size(); ++i) {
    t += "| " + choices[i] + " |";
    for (int v : confusion[i]) t += fmt::format(" {} |", v);
    t += fmt::format(" {:.1f}% |\n", 100 * recall[i]);
  }
  return t;
}

}  // namespace cogumi
