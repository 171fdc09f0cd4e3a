// `cogumi router adapt` (runtime/calibration_job.h): the calibration and threshold refit from
// the feedback in session memory.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "runtime/calibration_job.h"
#include "runtime/memory.h"
#include "runtime/system.h"

namespace cogumi {

using json = nlohmann::json;

void AdaptJob::validate() const {
  if (system.empty() && (memory.empty() || calibration.empty()))
    fail("router adapt: give --system (or both --memory and --calibration)");
  if (out.empty()) fail("router adapt: -o/--out is required");
  if (!(holdout > 0 && holdout <= 0.9))
    fail("router adapt: --holdout must be in (0, 0.9], got {}", holdout);
  if (min_rows < 4) fail("router adapt: --min-rows must be >= 4, got {}", min_rows);
  if (bins < 1 || bins > 100) fail("router adapt: --bins must be 1..100, got {}", bins);
}

std::vector<FeedbackOutcome> feedback_outcomes(SessionStore& store) {
  std::map<int64_t, int> thumbs;
  for (const auto& f : store.feedback()) thumbs[f.turn_id] = f.thumbs;
  std::map<int64_t, FeedbackOutcome> rows;
  for (const auto& info : store.sessions()) {
    const auto turns = store.last_turns(info.id, size_t(std::max<int64_t>(info.n_turns, 1)));
    const Turn* prev = nullptr;  // the session's last assistant turn so far
    for (const auto& t : turns) {
      if (t.role != "assistant") continue;
      const json& d = t.decision;
      const bool has_signals = d.is_object() && d.contains("signals");
      if (d.is_object() && d.value("escalated_by", "") == "detector" && prev &&
          prev->decision.is_object() && prev->decision.contains("signals") &&
          !thumbs.count(prev->id)) {
        FeedbackOutcome& r = rows[prev->id];
        r.turn_id = prev->id;
        r.outcome.signals = AnswerSignals::from_json(prev->decision["signals"],
                                                     fmt::format("turn {}: signals", prev->id));
        r.outcome.correct = false;
        r.escalated = prev->escalated;
        r.label_from = "escalation";
      }
      if (has_signals && thumbs.count(t.id)) {
        FeedbackOutcome& r = rows[t.id];
        r.turn_id = t.id;
        r.outcome.signals =
            AnswerSignals::from_json(d["signals"], fmt::format("turn {}: signals", t.id));
        r.outcome.correct = thumbs[t.id] > 0;
        r.escalated = t.escalated;
        r.label_from = "thumbs";
      }
      prev = &t;
    }
  }
  std::vector<FeedbackOutcome> out;
  for (auto& [id, r] : rows) {
    r.outcome.id = fmt::format("turn/{}", id);
    out.push_back(std::move(r));
  }
  return out;  // by turn id: oldest first
}

namespace {

struct Slice {
  std::vector<double> conf;
  std::vector<bool> ok;
};

Slice slice_of(const Calibrator& c, const std::vector<FeedbackOutcome>& rows, size_t lo, size_t hi,
               bool fast_only) {
  Slice s;
  for (size_t i = lo; i < hi; ++i) {
    if (fast_only && rows[i].escalated) continue;
    s.conf.push_back(c.confidence(rows[i].outcome.signals));
    s.ok.push_back(rows[i].outcome.correct);
  }
  return s;
}

// Kept answers (confidence >= t): their share and accuracy.
std::pair<double, double> kept(const Slice& s, std::optional<double> t) {
  size_t n = 0, ok = 0;
  for (size_t i = 0; i < s.conf.size(); ++i)
    if (!t || s.conf[i] >= *t) ++n, ok += s.ok[i] ? 1 : 0;
  return {s.conf.empty() ? 0 : double(n) / double(s.conf.size()), n ? double(ok) / double(n) : 0};
}

// The lowest threshold on the grid whose kept answers (fast ones, refit confidence) are right at
// least as often as the dev pick's were (the calibration's target_kept_accuracy). Returns why the
// threshold stayed as it was, or "" when it was refit.
std::string refit_threshold(const Calibrator& current, const std::vector<FeedbackOutcome>& rows,
                            size_t n_fit, Calibrator& next) {
  if (!current.info().contains("target_kept_accuracy") ||
      !current.info()["target_kept_accuracy"].is_number() || !current.threshold())
    return "no threshold or target kept accuracy in the calibration: threshold unchanged";
  const double target = current.info()["target_kept_accuracy"].get<double>();
  const Slice fit_fast = slice_of(next, rows, 0, n_fit, true);
  for (double t : default_threshold_grid()) {
    const auto [share, acc] = kept(fit_fast, t);
    if (share > 0 && acc >= target) {
      next.set_threshold(t, fmt::format(
                                "router adapt: the lowest threshold whose kept answers in the "
                                "feedback are right at least {:.1f}% of the time (the dev pick's)",
                                100 * target));
      return "";
    }
  }
  return "no threshold reaches the target on the feedback: threshold unchanged";
}

}  // namespace

AdaptResult adapt_calibration(SessionStore& store, const Calibrator& current, const AdaptJob& job) {
  job.validate();
  const auto rows = feedback_outcomes(store);
  const std::string db = store.path().string();
  if (rows.size() < job.min_rows)
    fail(
        "router adapt: '{}' holds {} labelled answers (thumbs, or follow-ups the detector flagged), "
        "need at least {} (--min-rows)",
        db, rows.size(), job.min_rows);
  const size_t n_hold = std::max<size_t>(1, size_t(std::lround(job.holdout * double(rows.size()))));
  const size_t n_fit = rows.size() - n_hold;
  const Slice fit = slice_of(current, rows, 0, n_fit, false);
  const size_t fit_ok = size_t(std::count(fit.ok.begin(), fit.ok.end(), true));
  if (fit_ok == 0 || fit_ok == fit.ok.size())
    fail("router adapt: the {} oldest labelled answers in '{}' are all {}; a refit needs both",
         n_fit, db, fit_ok ? "good" : "bad");

  AdaptResult res{current, json::object(), ""};
  Calibrator& next = res.calibrator;
  // Platt on top of the current confidence: sigmoid(a * logit(p) + b).
  std::vector<std::vector<double>> x;
  for (double p : fit.conf) {
    const double q = std::clamp(p, 1e-6, 1 - 1e-6);
    x.push_back({std::log(q / (1 - q))});
  }
  LogisticOptions lo;
  lo.l2 = 1e-2;
  const LogisticModel m = fit_logistic(x, fit.ok, lo);
  std::string note;
  if (m.w[0] > 0) {
    const auto [a0, b0] = current.recalibration();
    next.set_recalibration(m.w[0] * a0, m.w[0] * b0 + m.bias);
  } else {
    note = "the feedback does not rank answers the way the current confidence does; kept as is";
  }
  const std::string threshold_note = refit_threshold(current, rows, n_fit, next);
  // Before/after on the held-out (newest) slice.
  const Slice hb = slice_of(current, rows, n_fit, rows.size(), false);
  const Slice ha = slice_of(next, rows, n_fit, rows.size(), false);
  const auto eb = calibration_report(hb.conf, hb.ok, job.bins);
  const auto ea = calibration_report(ha.conf, ha.ok, job.bins);
  const auto kb = kept(slice_of(current, rows, n_fit, rows.size(), true), current.threshold());
  const auto ka = kept(slice_of(next, rows, n_fit, rows.size(), true), next.threshold());
  size_t from_thumbs = 0;
  for (const auto& r : rows) from_thumbs += r.label_from == "thumbs";
  auto thr = [](const Calibrator& c) { return c.threshold() ? json(*c.threshold()) : json(nullptr); };
  res.report = {{"memory", db},
                {"labelled", rows.size()},
                {"from_thumbs", from_thumbs},
                {"from_escalations", rows.size() - from_thumbs},
                {"fit", n_fit},
                {"heldout", n_hold},
                {"platt", {{"a", m.w[0]}, {"b", m.bias}}},
                {"note", note},
                {"threshold_note", threshold_note},
                {"before", {{"threshold", thr(current)}, {"ece", eb.ece}, {"brier", eb.brier},
                            {"nll", eb.nll}, {"kept_share", kb.first}, {"kept_accuracy", kb.second}}},
                {"after", {{"threshold", thr(next)}, {"ece", ea.ece}, {"brier", ea.brier},
                           {"nll", ea.nll}, {"kept_share", ka.first}, {"kept_accuracy", ka.second}}}};
  next.info()["adapt"] = res.report;
  auto line = [](const std::string& what, const json& j) {
    return fmt::format("| {} | {} | {:.4f} | {:.4f} | {:.1f}% | {:.1f}% |\n", what,
                       j["threshold"].is_null() ? "-" : fmt::format("{:.2f}", j["threshold"].get<double>()),
                       j["ece"].get<double>(), j["brier"].get<double>(),
                       100 * j["kept_share"].get<double>(), 100 * j["kept_accuracy"].get<double>());
  };
  res.markdown = fmt::format(
      "{} labelled answers in {} ({} from thumbs, {} from flagged follow-ups): refit on the oldest "
      "{}, held out the newest {}.{}{}\n\n"
      "| held out | threshold | ECE | Brier | kept | kept accuracy |\n|---|---:|---:|---:|---:|---:|\n",
      rows.size(), db, from_thumbs, rows.size() - from_thumbs, n_fit, n_hold,
      note.empty() ? "" : " " + note + ".", threshold_note.empty() ? "" : " " + threshold_note + ".");
  res.markdown += line("before", res.report["before"]) + line("after", res.report["after"]);
  return res;
}

AdaptResult adapt_job(const AdaptJob& job) {
  job.validate();
  std::filesystem::path memory = job.memory, calibration = job.calibration;
  if (!job.system.empty()) {
    const SystemConfig cfg = SystemConfig::load(job.system);
    if (memory.empty()) memory = cfg.memory;
    if (calibration.empty()) calibration = cfg.calibration;
    if (memory.empty())
      fail("router adapt: '{}' names no session memory ('memory: FILE'); give --memory",
           job.system.string());
    if (calibration.empty())
      fail("router adapt: '{}' names no calibration ('calibration: FILE'); give --calibration",
           job.system.string());
  }
  if (!std::filesystem::exists(memory))
    fail("router adapt: no session store at '{}'", memory.string());
  SessionStore store = SessionStore::open(memory);
  AdaptResult r = adapt_calibration(store, Calibrator::load(calibration), job);
  r.calibrator.save(job.out);
  return r;
}

}  // namespace cogumi
