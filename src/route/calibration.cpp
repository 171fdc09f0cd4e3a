#include "route/calibration.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

using json = nlohmann::json;

namespace {

constexpr double kEps = 1e-6;

double clamp01(double p) { return std::clamp(p, kEps, 1 - kEps); }
double logit(double p) {
  p = clamp01(p);
  return std::log(p / (1 - p));
}
double sigmoid(double z) {
  return z >= 0 ? 1 / (1 + std::exp(-z)) : std::exp(z) / (1 + std::exp(z));
}

std::optional<double> opt_number(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_number()) fail("{}: '{}' must be a number", where, key);
  const double v = j[key].get<double>();
  if (!std::isfinite(v)) fail("{}: '{}' must be finite", where, key);
  return v;
}

// The candidate features of the Platt model: a name and how to read it off the signals
// (nullopt: not known for this answer; it then counts as the dev mean).
struct Candidate {
  std::string name;
  std::function<std::optional<double>(const AnswerSignals&, double router_p)> get;
};

const std::vector<Candidate>& candidates() {
  static const std::vector<Candidate> c = {
      {"router_logit",
       [](const AnswerSignals& s, double p) -> std::optional<double> {
         if (s.router_probs.empty()) return std::nullopt;
         return logit(p);
       }},
      {"logprob_mean", [](const AnswerSignals& s, double) { return s.logprob_mean; }},
      {"logprob_min", [](const AnswerSignals& s, double) { return s.logprob_min; }},
      {"agreement", [](const AnswerSignals& s, double) { return s.agreement; }},
      {"verified",
       [](const AnswerSignals& s, double) -> std::optional<double> {
         if (!s.verified) return std::nullopt;
         return *s.verified ? 1.0 : -1.0;
       }},
  };
  return c;
}

}  // namespace

// --- signals ----------------------------------------------------------------------------------

double AnswerSignals::router_probability() const {
  if (router_probs.empty()) return 1.0;
  return *std::max_element(router_probs.begin(), router_probs.end());
}

double AnswerSignals::raw_confidence() const {
  if (mode == "accurate" && agreement) return *agreement;
  return router_probability();
}

json AnswerSignals::to_json() const {
  json j = {{"choice", choice}, {"mode", mode}, {"router_probs", router_probs}};
  if (logprob_mean) j["logprob_mean"] = *logprob_mean;
  if (logprob_min) j["logprob_min"] = *logprob_min;
  if (agreement) j["agreement"] = *agreement;
  if (verified) j["verified"] = *verified;
  return j;
}

AnswerSignals AnswerSignals::from_json(const json& j, const std::string& where) {
  if (!j.is_object()) fail("{}: signals must be an object", where);
  AnswerSignals s;
  if (j.contains("choice")) s.choice = get_string(j, "choice", where);
  if (j.contains("mode")) s.mode = get_string(j, "mode", where);
  if (j.contains("router_probs")) {
    if (!j["router_probs"].is_array()) fail("{}: 'router_probs' must be an array", where);
    for (const auto& p : j["router_probs"]) {
      if (!p.is_number() || !(p.get<double>() >= 0 && p.get<double>() <= 1))
        fail("{}: 'router_probs' must hold probabilities in [0, 1]", where);
      s.router_probs.push_back(p.get<double>());
    }
  }
  s.logprob_mean = opt_number(j, "logprob_mean", where);
  s.logprob_min = opt_number(j, "logprob_min", where);
  s.agreement = opt_number(j, "agreement", where);
  if (s.agreement && !(*s.agreement >= 0 && *s.agreement <= 1))
    fail("{}: 'agreement' must be in [0, 1], got {}", where, *s.agreement);
  if (j.contains("verified") && !j["verified"].is_null()) {
    if (!j["verified"].is_boolean()) fail("{}: 'verified' must be true or false", where);
    s.verified = j["verified"].get<bool>();
  }
  return s;
}

// --- calibration error ------------------------------------------------------------------------

json CalibrationReport::to_json() const {
  json b = json::array();
  for (const auto& x : bins)
    b.push_back({{"lo", x.lo}, {"hi", x.hi}, {"n", x.n}, {"confidence", x.confidence},
                 {"accuracy", x.accuracy}});
  return {{"n", n},           {"ece", ece},   {"mce", mce},
          {"over", over},     {"under", under}, {"brier", brier},
          {"nll", nll},       {"accuracy", accuracy}, {"mean_confidence", mean_confidence},
          {"bins", b}};
}

CalibrationReport calibration_report(const std::vector<double>& conf,
                                     const std::vector<bool>& correct, int n_bins) {
  if (conf.size() != correct.size())
    fail("calibration: {} confidences for {} outcomes", conf.size(), correct.size());
  if (n_bins < 1 || n_bins > 100) fail("calibration: bins must be 1..100, got {}", n_bins);
  CalibrationReport r;
  r.n = conf.size();
  r.bins.resize(size_t(n_bins));
  for (int b = 0; b < n_bins; ++b) {
    r.bins[size_t(b)].lo = double(b) / n_bins;
    r.bins[size_t(b)].hi = double(b + 1) / n_bins;
  }
  for (size_t i = 0; i < conf.size(); ++i) {
    const double c = conf[i];
    if (!(c >= 0 && c <= 1)) fail("calibration: confidence {} of answer {} is outside [0, 1]", c, i);
    auto& bin = r.bins[std::min(size_t(n_bins) - 1, size_t(c * n_bins))];
    ++bin.n;
    bin.confidence += c;
    bin.accuracy += correct[i] ? 1 : 0;
    r.brier += (c - (correct[i] ? 1 : 0)) * (c - (correct[i] ? 1 : 0));
    r.nll -= std::log(correct[i] ? clamp01(c) : 1 - clamp01(c));
    r.accuracy += correct[i] ? 1 : 0;
    r.mean_confidence += c;
  }
  if (r.n == 0) return r;
  for (auto& b : r.bins) {
    if (b.n == 0) continue;
    b.confidence /= double(b.n);
    b.accuracy /= double(b.n);
    const double gap = b.confidence - b.accuracy, w = double(b.n) / double(r.n);
    (gap > 0 ? r.over : r.under) += w * std::abs(gap);
    r.mce = std::max(r.mce, std::abs(gap));
  }
  r.ece = r.over + r.under;
  r.brier /= double(r.n);
  r.nll /= double(r.n);
  r.accuracy /= double(r.n);
  r.mean_confidence /= double(r.n);
  return r;
}

// --- temperature scaling ----------------------------------------------------------------------

std::vector<double> apply_temperature(const std::vector<double>& probs, double t) {
  if (!(t > 0)) fail("calibration: temperature must be > 0, got {}", t);
  std::vector<double> z(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) z[i] = std::log(std::max(probs[i], 1e-300)) / t;
  const double m = z.empty() ? 0 : *std::max_element(z.begin(), z.end());
  double sum = 0;
  for (auto& v : z) sum += (v = std::exp(v - m));
  for (auto& v : z) v /= sum;
  return z;
}

double fit_temperature(const std::vector<std::vector<double>>& probs,
                       const std::vector<int>& labels) {
  if (probs.empty() || probs.size() != labels.size())
    fail("temperature scaling: {} probability rows for {} labels", probs.size(), labels.size());
  for (size_t i = 0; i < probs.size(); ++i)
    if (labels[i] < 0 || size_t(labels[i]) >= probs[i].size())
      fail("temperature scaling: label {} of row {} is not one of its {} choices", labels[i], i,
           probs[i].size());
  auto nll = [&](double log_t) {
    double s = 0;
    for (size_t i = 0; i < probs.size(); ++i) {
      auto p = apply_temperature(probs[i], std::exp(log_t));
      s -= std::log(std::max(p[size_t(labels[i])], 1e-300));
    }
    return s / double(probs.size());
  };
  // The NLL is convex in 1/t; golden-section on log t over [log 0.05, log 20] finds the minimum.
  double a = std::log(0.05), b = std::log(20.0);
  const double g = (std::sqrt(5.0) - 1) / 2;
  double c = b - g * (b - a), d = a + g * (b - a), fc = nll(c), fd = nll(d);
  for (int it = 0; it < 80 && b - a > 1e-6; ++it) {
    if (fc < fd) {
      b = d, d = c, fd = fc, c = b - g * (b - a), fc = nll(c);
    } else {
      a = c, c = d, fc = fd, d = a + g * (b - a), fd = nll(d);
    }
  }
  return std::exp((a + b) / 2);
}

// --- logistic regression ----------------------------------------------------------------------

void LogisticOptions::validate() const {
  if (!(l2 >= 0 && l2 <= 10)) fail("calibration: l2 must be in [0, 10], got {}", l2);
  if (max_iter < 1 || max_iter > 10000)
    fail("calibration: max_iter must be 1..10000, got {}", max_iter);
}

double LogisticModel::predict(const std::vector<double>& x) const {
  double z = bias;
  for (size_t k = 0; k < w.size() && k < x.size(); ++k) z += w[k] * x[k];
  return sigmoid(z);
}

namespace {

// Solves A x = b (A symmetric positive definite, small) by Gaussian elimination with pivoting.
std::vector<double> solve(std::vector<std::vector<double>> a, std::vector<double> b) {
  const size_t n = b.size();
  for (size_t col = 0; col < n; ++col) {
    size_t piv = col;
    for (size_t r = col + 1; r < n; ++r)
      if (std::abs(a[r][col]) > std::abs(a[piv][col])) piv = r;
    std::swap(a[col], a[piv]);
    std::swap(b[col], b[piv]);
    if (std::abs(a[col][col]) < 1e-12) a[col][col] = 1e-12;
    for (size_t r = col + 1; r < n; ++r) {
      const double f = a[r][col] / a[col][col];
      for (size_t k = col; k < n; ++k) a[r][k] -= f * a[col][k];
      b[r] -= f * b[col];
    }
  }
  std::vector<double> x(n);
  for (size_t i = n; i-- > 0;) {
    double s = b[i];
    for (size_t k = i + 1; k < n; ++k) s -= a[i][k] * x[k];
    x[i] = s / a[i][i];
  }
  return x;
}

}  // namespace

LogisticModel fit_logistic(const std::vector<std::vector<double>>& x, const std::vector<bool>& y,
                           const LogisticOptions& opts) {
  opts.validate();
  if (x.empty() || x.size() != y.size())
    fail("logistic fit: {} rows for {} labels", x.size(), y.size());
  const size_t d = x[0].size(), p = d + 1, n = x.size();
  for (const auto& row : x)
    if (row.size() != d) fail("logistic fit: rows of {} and {} features", d, row.size());
  std::vector<double> beta(p, 0.0);  // [bias, w...]
  const double pos = double(std::count(y.begin(), y.end(), true));
  beta[0] = logit((pos + 0.5) / (double(n) + 1));
  for (int it = 0; it < opts.max_iter; ++it) {
    std::vector<std::vector<double>> h(p, std::vector<double>(p, 0.0));
    std::vector<double> g(p, 0.0);
    for (size_t i = 0; i < n; ++i) {
      double z = beta[0];
      for (size_t k = 0; k < d; ++k) z += beta[k + 1] * x[i][k];
      const double q = sigmoid(z), r = q - (y[i] ? 1 : 0), wgt = std::max(q * (1 - q), 1e-10);
      for (size_t a = 0; a < p; ++a) {
        const double xa = a ? x[i][a - 1] : 1.0;
        g[a] += r * xa;
        for (size_t b = 0; b <= a; ++b) h[a][b] += wgt * xa * (b ? x[i][b - 1] : 1.0);
      }
    }
    for (size_t a = 0; a < p; ++a) {
      for (size_t b = a + 1; b < p; ++b) h[a][b] = h[b][a];
      if (a) g[a] += opts.l2 * double(n) * beta[a], h[a][a] += opts.l2 * double(n);
    }
    const auto step = solve(h, g);
    double change = 0;
    for (size_t a = 0; a < p; ++a) beta[a] -= step[a], change = std::max(change, std::abs(step[a]));
    if (change < 1e-9) break;
  }
  LogisticModel m;
  m.bias = beta[0];
  m.w.assign(beta.begin() + 1, beta.end());
  return m;
}

// --- thresholds -------------------------------------------------------------------------------

json ThresholdRow::to_json() const {
  return {{"threshold", threshold},
          {"n", n},
          {"escalated", n_escalated},
          {"escalated_share", escalated_share},
          {"kept_accuracy", kept_accuracy},
          {"overall_accuracy", overall_accuracy ? json(*overall_accuracy) : json(nullptr)},
          {"tokens_per_item", tokens_per_item},
          {"seconds_per_item", seconds_per_item}};
}

std::vector<double> default_threshold_grid() {
  std::vector<double> g;
  for (int i = 0; i <= 19; ++i) g.push_back(i * 0.05);
  return g;
}

std::vector<ThresholdRow> sweep_thresholds(const std::vector<double>& conf,
                                           const std::vector<Outcome>& outcomes,
                                           const std::vector<double>& thresholds) {
  if (conf.size() != outcomes.size())
    fail("threshold sweep: {} confidences for {} outcomes", conf.size(), outcomes.size());
  const bool have_esc =
      !outcomes.empty() && std::all_of(outcomes.begin(), outcomes.end(),
                                       [](const Outcome& o) { return o.escalated_correct; });
  std::vector<ThresholdRow> rows;
  for (double t : thresholds) {
    if (!(t >= 0 && t <= 1)) fail("threshold sweep: threshold {} is outside [0, 1]", t);
    ThresholdRow r;
    r.threshold = t;
    r.n = outcomes.size();
    size_t kept_ok = 0, overall_ok = 0;
    double tokens = 0, secs = 0;
    for (size_t i = 0; i < outcomes.size(); ++i) {
      const Outcome& o = outcomes[i];
      tokens += o.tokens, secs += o.seconds;
      if (conf[i] < t) {
        ++r.n_escalated;
        tokens += o.escalated_tokens, secs += o.escalated_seconds;
        if (have_esc && *o.escalated_correct) ++overall_ok;
      } else if (o.correct) {
        ++kept_ok, ++overall_ok;
      }
    }
    if (r.n) {
      r.escalated_share = double(r.n_escalated) / double(r.n);
      r.tokens_per_item = tokens / double(r.n);
      r.seconds_per_item = secs / double(r.n);
      if (have_esc) r.overall_accuracy = double(overall_ok) / double(r.n);
    }
    const size_t kept = r.n - r.n_escalated;
    r.kept_accuracy = kept ? double(kept_ok) / double(kept) : 0;
    rows.push_back(r);
  }
  return rows;
}

const ThresholdRow& pick_threshold(const std::vector<ThresholdRow>& rows, double tolerance) {
  if (!(tolerance >= 0 && tolerance <= 1))
    fail("threshold rule: tolerance must be in [0, 1], got {}", tolerance);
  double best = -1;
  for (const auto& r : rows)
    if (r.overall_accuracy) best = std::max(best, *r.overall_accuracy);
  if (best < 0)
    fail(
        "threshold rule: no overall accuracy to compare (give a run of the escalation path on the "
        "same items)");
  const ThresholdRow* pick = nullptr;
  for (const auto& r : rows)
    if (r.overall_accuracy && *r.overall_accuracy >= best - tolerance - 1e-12 &&
        (!pick || r.threshold < pick->threshold))
      pick = &r;
  return *pick;
}

// --- the calibrator ---------------------------------------------------------------------------

void CalibratorOptions::validate() const {
  logistic.validate();
  if (min_choice_count < 1 || min_choice_count > 1000000)
    fail("calibration: min_choice_count must be 1..1000000, got {}", min_choice_count);
}

std::vector<double> Calibrator::router_probs(const std::vector<double>& probs) const {
  if (probs.empty() || temperature_ == 1.0) return probs;
  return apply_temperature(probs, temperature_);
}

std::vector<double> Calibrator::features(const Platt& m, const AnswerSignals& s) const {
  const auto rp = router_probs(s.router_probs);
  const double p = rp.empty() ? 1.0 : *std::max_element(rp.begin(), rp.end());
  std::vector<double> x(m.names.size(), 0.0);
  for (size_t k = 0; k < m.names.size(); ++k) {
    std::optional<double> v;
    if (m.names[k].rfind("choice=", 0) == 0) {
      v = s.choice == m.names[k].substr(7) ? 1.0 : 0.0;
    } else {
      for (const auto& c : candidates())
        if (c.name == m.names[k]) v = c.get(s, p);
    }
    x[k] = v ? (*v - m.mean[k]) / m.scale[k] : 0.0;  // unknown: the dev mean
  }
  return x;
}

const Calibrator::Platt& Calibrator::platt_for(const std::string& mode) const {
  auto it = platt_.find(mode);
  if (it == platt_.end()) it = platt_.find("fast");
  if (it == platt_.end()) it = platt_.begin();
  return it->second;
}

double Calibrator::confidence(const AnswerSignals& s) const {
  if (platt_.empty()) fail("calibration: no Platt model (an empty calibrator)");
  const Platt& m = platt_for(s.mode);
  const double p = m.model.predict(features(m, s));
  if (recal_a_ == 1.0 && recal_b_ == 0.0) return p;
  return sigmoid(recal_a_ * logit(p) + recal_b_);
}

std::vector<double> Calibrator::confidences(const std::vector<Outcome>& outcomes) const {
  std::vector<double> c;
  c.reserve(outcomes.size());
  for (const auto& o : outcomes) c.push_back(confidence(o.signals));
  return c;
}

void Calibrator::set_threshold(double t, const std::string& rule) {
  if (!(t >= 0 && t <= 1)) fail("calibration: threshold must be in [0, 1], got {}", t);
  threshold_ = t;
  threshold_rule_ = rule;
}

std::optional<double> Calibrator::threshold_for(const std::string& choice) const {
  const auto it = choice_thresholds_.find(choice);
  return it != choice_thresholds_.end() ? std::optional<double>(it->second) : threshold_;
}

void Calibrator::set_choice_threshold(const std::string& choice, double t) {
  if (!(t >= 0 && t <= 1)) fail("calibration: threshold of '{}' must be in [0, 1], got {}", choice, t);
  choice_thresholds_[choice] = t;
}

void Calibrator::set_recalibration(double a, double b) {
  if (!std::isfinite(a) || !std::isfinite(b) || a <= 0)
    fail("calibration: recalibration slope must be finite and > 0 (got a={}, b={})", a, b);
  recal_a_ = a, recal_b_ = b;
}

Calibrator::Platt Calibrator::fit_platt(const Calibrator& c, const std::vector<const Outcome*>& rows,
                                        const CalibratorOptions& opts) {
  // Candidate features: kept when known on enough rows and not constant there.
  Platt m;
  std::vector<std::vector<std::optional<double>>> cols;
  auto consider = [&](const std::string& name, std::vector<std::optional<double>> col) {
    std::vector<double> known;
    for (auto& v : col)
      if (v) known.push_back(*v);
    if (known.size() < size_t(opts.min_choice_count)) return;
    const auto [lo, hi] = std::minmax_element(known.begin(), known.end());
    if (*hi - *lo < 1e-9) return;
    m.names.push_back(name);
    cols.push_back(std::move(col));
  };
  for (const auto& cand : candidates()) {
    std::vector<std::optional<double>> col;
    for (const Outcome* o : rows) {
      const auto rp = c.router_probs(o->signals.router_probs);
      col.push_back(cand.get(o->signals, rp.empty() ? 1.0 : *std::max_element(rp.begin(), rp.end())));
    }
    consider(cand.name, std::move(col));
  }
  std::map<std::string, size_t> per_choice;
  for (const Outcome* o : rows)
    if (!o->signals.choice.empty()) ++per_choice[o->signals.choice];
  for (const auto& [choice, count] : per_choice) {
    std::vector<std::optional<double>> col;
    for (const Outcome* o : rows) col.push_back(o->signals.choice == choice ? 1.0 : 0.0);
    if (count >= size_t(opts.min_choice_count)) consider("choice=" + choice, std::move(col));
  }
  m.mean.assign(m.names.size(), 0.0);
  m.scale.assign(m.names.size(), 1.0);
  for (size_t k = 0; k < m.names.size(); ++k) {
    double s = 0, s2 = 0, n = 0;
    for (auto& v : cols[k])
      if (v) s += *v, s2 += *v * *v, ++n;
    m.mean[k] = s / n;
    m.scale[k] = std::max(1e-6, std::sqrt(std::max(0.0, s2 / n - m.mean[k] * m.mean[k])));
  }
  std::vector<std::vector<double>> x;
  std::vector<bool> y;
  for (const Outcome* o : rows) x.push_back(c.features(m, o->signals)), y.push_back(o->correct);
  m.model = fit_logistic(x, y, opts.logistic);
  return m;
}

Calibrator Calibrator::fit(const std::vector<Outcome>& dev, const CalibratorOptions& opts) {
  opts.validate();
  if (dev.empty()) fail("calibration: no dev outcomes to fit on");
  Calibrator c;
  // Temperature: on the rows whose router probabilities and right route are known.
  if (opts.fit_router_temperature) {
    std::vector<std::vector<double>> probs;
    std::vector<int> labels;
    for (const auto& o : dev)
      if (o.route_label >= 0 && size_t(o.route_label) < o.signals.router_probs.size())
        probs.push_back(o.signals.router_probs), labels.push_back(o.route_label);
    if (!probs.empty()) c.temperature_ = fit_temperature(probs, labels);
  }
  std::map<std::string, std::vector<const Outcome*>> by_mode;
  for (const auto& o : dev) by_mode[o.signals.mode == "accurate" ? "accurate" : "fast"].push_back(&o);
  for (const auto& [mode, rows] : by_mode) {
    const size_t ok = size_t(std::count_if(rows.begin(), rows.end(), [](auto* o) { return o->correct; }));
    if (ok == 0 || ok == rows.size()) {
      if (mode == "fast" || by_mode.size() == 1)
        fail("calibration: the dev {} answers are all {} ({}); a fit needs both", mode,
             ok ? "correct" : "wrong", rows.size());
      continue;  // accurate answers then use the fast model
    }
    c.platt_[mode] = fit_platt(c, rows, opts);
  }
  return c;
}

json Calibrator::to_json() const {
  json platt = json::object();
  for (const auto& [mode, m] : platt_) {
    json f = json::array();
    for (size_t k = 0; k < m.names.size(); ++k)
      f.push_back({{"name", m.names[k]}, {"mean", m.mean[k]}, {"scale", m.scale[k]}, {"weight", m.model.w[k]}});
    platt[mode] = {{"bias", m.model.bias}, {"features", f}};
  }
  return {{"format", "cogumi-calibration"},
          {"version", 1},
          {"router_temperature", temperature_},
          {"platt", platt},
          {"recalibration", {{"a", recal_a_}, {"b", recal_b_}}},
          {"threshold", threshold_ ? json(*threshold_) : json(nullptr)},
          {"choice_thresholds", choice_thresholds_},
          {"threshold_rule", threshold_rule_},
          {"info", info_}};
}

Calibrator::Platt Calibrator::platt_from_json(const json& p, const std::string& where) {
  if (!p.is_object()) fail("{}: must be an object", where);
  Platt m;
  m.model.bias = opt_number(p, "bias", where).value_or(0.0);
  if (!p.contains("features") || !p["features"].is_array())
    fail("{}: 'features' must be an array", where);
  for (size_t k = 0; k < p["features"].size(); ++k) {
    const json& f = p["features"][k];
    const std::string at = fmt::format("{}.features[{}]", where, k);
    if (!f.is_object()) fail("{}: must be an object", at);
    const std::string name = get_string(f, "name", at);
    const bool known = name.rfind("choice=", 0) == 0 ||
                       std::any_of(candidates().begin(), candidates().end(),
                                   [&](const Candidate& cand) { return cand.name == name; });
    if (!known) fail("{}: unknown feature '{}'", at, name);
    const auto mean = opt_number(f, "mean", at), scale = opt_number(f, "scale", at),
               w = opt_number(f, "weight", at);
    if (!mean || !scale || !w) fail("{}: 'mean', 'scale' and 'weight' are required", at);
    if (!(*scale > 0)) fail("{}: 'scale' must be > 0, got {}", at, *scale);
    m.names.push_back(name);
    m.mean.push_back(*mean);
    m.scale.push_back(*scale);
    m.model.w.push_back(*w);
  }
  return m;
}

Calibrator Calibrator::from_json(const json& j, const std::string& where) {
  if (!j.is_object() || j.value("format", "") != "cogumi-calibration")
    fail("{}: not a calibration file (format must be 'cogumi-calibration')", where);
  if (j.value("version", 0) != 1) fail("{}: 'version' must be 1", where);
  Calibrator c;
  const auto t = opt_number(j, "router_temperature", where);
  if (t && !(*t >= 0.01 && *t <= 100))
    fail("{}: 'router_temperature' must be in [0.01, 100], got {}", where, *t);
  c.temperature_ = t.value_or(1.0);
  if (!j.contains("platt") || !j["platt"].is_object() || !j["platt"].contains("fast"))
    fail("{}: 'platt' must be an object with a 'fast' model (and optionally 'accurate')", where);
  for (auto it = j["platt"].begin(); it != j["platt"].end(); ++it) {
    if (it.key() != "fast" && it.key() != "accurate")
      fail("{}: platt.{}: the modes are fast and accurate", where, it.key());
    c.platt_[it.key()] = platt_from_json(it.value(), fmt::format("{}: platt.{}", where, it.key()));
  }
  if (j.contains("recalibration")) {
    const json& r = j["recalibration"];
    c.set_recalibration(opt_number(r, "a", where + ": recalibration").value_or(1.0),
                        opt_number(r, "b", where + ": recalibration").value_or(0.0));
  }
  if (const auto th = opt_number(j, "threshold", where)) {
    if (!(*th >= 0 && *th <= 1)) fail("{}: 'threshold' must be in [0, 1], got {}", where, *th);
    c.threshold_ = *th;
  }
  if (j.contains("choice_thresholds") && !j["choice_thresholds"].is_null()) {
    if (!j["choice_thresholds"].is_object())
      fail("{}: 'choice_thresholds' must map choice names to thresholds", where);
    for (auto it = j["choice_thresholds"].begin(); it != j["choice_thresholds"].end(); ++it) {
      if (!it.value().is_number() || !(it.value().get<double>() >= 0 && it.value().get<double>() <= 1))
        fail("{}: choice_thresholds.{} must be a number in [0, 1]", where, it.key());
      c.choice_thresholds_[it.key()] = it.value().get<double>();
    }
  }
  c.threshold_rule_ = j.value("threshold_rule", "");
  if (j.contains("info")) c.info_ = j["info"];
  return c;
}

Calibrator Calibrator::load(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) fail("cannot read calibration file '{}'", path.string());
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::parse_error& e) {
    fail("{}: not valid JSON: {}", path.string(), e.what());
  }
  return from_json(j, path.string());
}

void Calibrator::save(const std::filesystem::path& path) const {
  write_file_atomic(path, to_json().dump(2) + "\n");
}

}  // namespace cogumi
