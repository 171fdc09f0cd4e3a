#include "runtime/calibration_job.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/io.h"
#include "runtime/runtime.h"
#include "runtime/system.h"

namespace cogumi {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path items_file(const fs::path& run) {
  const fs::path f = fs::is_directory(run) ? run / "items.jsonl" : run;
  if (!fs::exists(f))
    fail("calibration: no eval run at '{}' (a run directory with items.jsonl, or an items.jsonl)",
         run.string());
  return f;
}

// Seconds per generated token of a run (its summary's wall time over its tokens), to estimate an
// item's time from its tokens; 0 without a summary.
double seconds_per_token(const fs::path& items) {
  const fs::path s = items.parent_path() / "summary.json";
  if (!fs::exists(s)) return 0;
  try {
    const json j = json::parse(read_file(s));
    const double secs = j.at("run").value("seconds", 0.0);
    const double toks = j.at("run").value("gen_tokens", 0.0);
    return toks > 0 ? secs / toks : 0;
  } catch (const std::exception&) {
    return 0;
  }
}

std::optional<double> number_field(const json& o, const char* key, const std::string& at) {
  if (!o.contains(key) || o[key].is_null()) return std::nullopt;
  if (!o[key].is_number()) fail("{}: '{}' must be a number", at, key);
  return o[key].get<double>();
}

TaskKind kind_of(const std::string& name) {
  for (TaskKind k : {TaskKind::kNumeric, TaskKind::kMultipleChoice, TaskKind::kCode,
                     TaskKind::kToolCall, TaskKind::kText})
    if (name == task_kind_name(k)) return k;
  return TaskKind::kText;
}

// One eval line read as an answer: its signals and its label.
Outcome outcome_of(const json& o, const std::string& at, const RouteLabels& labels, double spt) {
  Outcome r;
  const std::string bench = get_string(o, "benchmark", at);
  r.id = bench + "/" + get_string(o, "id", at);
  if (!o.contains("correct") || !o["correct"].is_boolean())
    fail("{}: 'correct' must be true or false", at);
  r.correct = o["correct"].get<bool>();
  AnswerSignals& s = r.signals;
  if (o.contains("route_choice") && o["route_choice"].is_string())
    s.choice = o["route_choice"].get<std::string>();
  else if (o.contains("route") && o["route"].is_string())
    s.choice = o["route"].get<std::string>();
  if (o.contains("route_probs")) {
    if (!o["route_probs"].is_object()) fail("{}: 'route_probs' must be an object", at);
    // The right route: the one routable choice asked the way this benchmark is.
    const auto want = labels.find(bench);
    int k = 0, matches = 0;
    for (auto it = o["route_probs"].begin(); it != o["route_probs"].end(); ++it, ++k) {
      if (!it.value().is_number()) fail("{}: route_probs.{} must be a number", at, it.key());
      s.router_probs.push_back(std::clamp(it.value().get<double>(), 0.0, 1.0));
      if (want != labels.end() && std::count(want->second.begin(), want->second.end(), it.key()))
        r.route_label = k, ++matches;
    }
    if (matches > 1) r.route_label = -1;
  }
  // eval --system --mode accurate: the runtime's vote and verification on the line.
  const auto votes = number_field(o, "votes", at), samples = number_field(o, "samples", at);
  if (votes && samples && *samples > 1) {
    s.mode = "accurate";
    s.agreement = std::clamp(*votes / *samples, 0.0, 1.0);
  }
  const std::string verifier = o.contains("verifier") && o["verifier"].is_string()
                                   ? o["verifier"].get<std::string>()
                                   : "";
  if ((verifier == "tests" || verifier == "schema") && o.contains("verified") &&
      o["verified"].is_boolean())
    s.verified = o["verified"].get<bool>();
  s.logprob_mean = number_field(o, "logprob_mean", at);
  s.logprob_min = number_field(o, "logprob_min", at);
  r.tokens = number_field(o, "n_gen_tokens", at).value_or(0);
  r.seconds = r.tokens * spt;
  return r;
}

// The lines of a run grouped by item (benchmark/id), samples in order.
std::map<std::string, std::vector<std::pair<json, std::string>>> read_run(const fs::path& file,
                                                                          std::vector<std::string>* order) {
  std::map<std::string, std::vector<std::pair<json, std::string>>> items;
  read_jsonl(file, [&](const json& o, size_t line) {
    const std::string at = fmt::format("{}:{}", file.string(), line);
    const std::string id = get_string(o, "benchmark", at) + "/" + get_string(o, "id", at);
    auto& v = items[id];
    if (v.empty() && order) order->push_back(id);
    v.emplace_back(o, at);
  });
  return items;
}

// The answer the escalation path gives for one item: with several samples, the majority vote as
// accurate mode takes it (runtime.h: vote_key, majority_vote); with one, that answer.
Outcome voted_outcome(const std::vector<std::pair<json, std::string>>& samples,
                      const RouteLabels& labels, double spt) {
  std::vector<std::string> keys;
  std::vector<double> lps;
  double tokens = 0;
  for (const auto& [o, at] : samples) {
    EvalItem it;
    it.kind = kind_of(o.value("kind", "text"));
    keys.push_back(vote_key(it, o.value("output", "")));
    lps.push_back(number_field(o, "logprob_mean", at).value_or(0));
    tokens += number_field(o, "n_gen_tokens", at).value_or(0);
  }
  int votes = 1;
  const size_t win = majority_vote(keys, lps, &votes);
  Outcome r = outcome_of(samples[win].first, samples[win].second, labels, spt);
  r.tokens = tokens;
  r.seconds = tokens * spt;
  if (samples.size() > 1) {
    r.signals.mode = "accurate";
    r.signals.agreement = double(votes) / double(samples.size());
  }
  return r;
}

}  // namespace

RouteLabels route_labels_of(const SystemConfig& cfg) {
  RouteLabels out;
  for (const auto& c : cfg.choices)
    if (c.ask_as != "chat" && c.ask_as != "raw") out[c.ask_as].push_back(c.name);
  return out;
}

std::vector<Outcome> load_outcomes(const fs::path& run, const RouteLabels& labels,
                                   const fs::path& escalated) {
  const fs::path file = items_file(run);
  const double spt = seconds_per_token(file);
  std::vector<std::string> order;
  auto items = read_run(file, &order);
  std::vector<Outcome> out;
  for (const auto& id : order) {
    const auto& [o, at] = items[id].front();  // a fast run has one sample per item
    out.push_back(outcome_of(o, at, labels, spt));
  }
  if (out.empty()) fail("calibration: '{}' holds no items", file.string());
  if (escalated.empty()) return out;
  const fs::path efile = items_file(escalated);
  const double espt = seconds_per_token(efile);
  auto esc = read_run(efile, nullptr);
  for (auto& r : out) {
    auto it = esc.find(r.id);
    if (it == esc.end())
      fail("calibration: the escalation run '{}' has no item '{}' (run it on the same items)",
           efile.string(), r.id);
    const Outcome e = voted_outcome(it->second, labels, espt);
    r.escalated_correct = e.correct;
    r.escalated_tokens = e.tokens;
    r.escalated_seconds = e.seconds;
  }
  return out;
}

std::vector<Outcome> load_voted_outcomes(const fs::path& run, const RouteLabels& labels) {
  const fs::path file = items_file(run);
  const double spt = seconds_per_token(file);
  std::vector<std::string> order;
  auto items = read_run(file, &order);
  std::vector<Outcome> out;
  for (const auto& id : order) {
    Outcome o = voted_outcome(items[id], labels, spt);
    if (o.signals.mode == "accurate") out.push_back(std::move(o));
  }
  return out;
}

}  // namespace cogumi

namespace cogumi {

namespace {

std::vector<bool> labels_of(const std::vector<Outcome>& v) {
  std::vector<bool> y;
  for (const auto& o : v) y.push_back(o.correct);
  return y;
}

std::vector<double> raw_of(const std::vector<Outcome>& v) {
  std::vector<double> c;
  for (const auto& o : v) c.push_back(o.signals.raw_confidence());
  return c;
}

// The router's own calibration: its top probability against "routed to the item's domain".
std::pair<CalibrationReport, CalibrationReport> router_reports(const Calibrator& cal,
                                                               const std::vector<Outcome>& v,
                                                               int bins) {
  std::vector<double> before, after;
  std::vector<bool> ok;
  for (const auto& o : v) {
    const auto& p = o.signals.router_probs;
    if (o.route_label < 0 || p.empty()) continue;
    const size_t arg = size_t(std::max_element(p.begin(), p.end()) - p.begin());
    const auto q = cal.router_probs(p);
    before.push_back(p[arg]);
    after.push_back(q[arg]);
    ok.push_back(int(arg) == o.route_label);
  }
  return {calibration_report(before, ok, bins), calibration_report(after, ok, bins)};
}

std::string pct(double v) { return fmt::format("{:.1f}%", 100 * v); }

std::string report_row(const std::string& what, const CalibrationReport& r) {
  return fmt::format("| {} | {} | {} | {:.4f} | {:.4f} | {:.4f} / {:.4f} | {:.4f} | {:.4f} |\n", what,
                     r.n, pct(r.accuracy), r.mean_confidence, r.ece, r.over, r.under, r.mce,
                     r.brier);
}

std::string sweep_table(const std::vector<ThresholdRow>& rows, double picked) {
  std::string s =
      "| threshold | escalated | kept accuracy | overall accuracy | tokens / item | seconds / item |\n"
      "|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& r : rows)
    s += fmt::format("| {}{:.2f}{} | {} | {} | {} | {:.1f} | {:.4f} |\n",
                     std::abs(r.threshold - picked) < 1e-9 ? "**" : "", r.threshold,
                     std::abs(r.threshold - picked) < 1e-9 ? "**" : "", pct(r.escalated_share),
                     r.n_escalated < r.n ? pct(r.kept_accuracy) : "-",
                     r.overall_accuracy ? pct(*r.overall_accuracy) : "-", r.tokens_per_item,
                     r.seconds_per_item);
  return s;
}

// Calibration within each routed choice, on test after calibration.
std::string per_choice_section(const std::vector<Outcome>& test, const std::vector<double>& conf,
                               int bins, json& rep) {
  std::string md =
      "\n| test, per routed choice | n | accuracy | mean confidence | ECE after |\n"
      "|---|---:|---:|---:|---:|\n";
  json per = json::object();
  std::map<std::string, std::pair<std::vector<double>, std::vector<bool>>> by;
  for (size_t i = 0; i < test.size(); ++i) {
    by[test[i].signals.choice].first.push_back(conf[i]);
    by[test[i].signals.choice].second.push_back(test[i].correct);
  }
  for (const auto& [choice, cy] : by) {
    const auto r = calibration_report(cy.first, cy.second, bins);
    per[choice] = r.to_json();
    md += fmt::format("| {} | {} | {} | {:.3f} | {:.4f} |\n", choice.empty() ? "(base)" : choice,
                      r.n, pct(r.accuracy), r.mean_confidence, r.ece);
  }
  rep["answer"]["test_after_per_choice"] = per;
  return md;
}

// The outcomes (and their confidences) of one routed choice.
std::pair<std::vector<Outcome>, std::vector<double>> of_choice(const std::vector<Outcome>& v,
                                                              const std::vector<double>& conf,
                                                              const std::string& choice) {
  std::pair<std::vector<Outcome>, std::vector<double>> out;
  for (size_t i = 0; i < v.size(); ++i)
    if (v[i].signals.choice == choice) out.first.push_back(v[i]), out.second.push_back(conf[i]);
  return out;
}

// Overall accuracy when each choice escalates below its own threshold.
double overall_with(const Calibrator& cal, const std::vector<Outcome>& v,
                    const std::vector<double>& conf) {
  size_t ok = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const bool esc = conf[i] < cal.threshold_for(v[i].signals.choice).value_or(0);
    ok += esc ? (v[i].escalated_correct.value_or(false) ? 1 : 0) : (v[i].correct ? 1 : 0);
  }
  return v.empty() ? 0 : double(ok) / double(v.size());
}

// The same rule per routed choice (on that choice's dev answers, at least 50 of them): modifiers
// differ in how much the escalation path helps them. Reported always; written into the
// calibration only with CalibrateJob::per_choice.
std::string choice_threshold_section(const CalibrateJob& job, const std::vector<double>& grid,
                                     const std::vector<Outcome>& dev,
                                     const std::vector<Outcome>& test,
                                     const std::vector<double>& test_conf, Calibrator& cal,
                                     json& rep) {
  const auto dev_conf = cal.confidences(dev);
  const double dev_global = overall_with(cal, dev, dev_conf);
  const double test_global = overall_with(cal, test, test_conf);
  std::map<std::string, size_t> n;
  for (const auto& o : dev) ++n[o.signals.choice];
  Calibrator trial = cal;
  std::string md =
      std::string("\nPer routed choice (the same rule on each choice's dev answers; ") +
      (job.per_choice ? "written into the calibration" : "reported only: --per-choice writes them") +
      "):\n\n"
      "| choice | dev n | threshold | dev escalated | dev overall | test overall (that choice) |\n"
      "|---|---:|---:|---:|---:|---:|\n";
  json per = json::object();
  for (const auto& [choice, count] : n) {
    if (count < 50) continue;
    const auto [dv, dc] = of_choice(dev, dev_conf, choice);
    const auto [tv, tc] = of_choice(test, test_conf, choice);
    const auto rows = sweep_thresholds(dc, dv, grid);
    const ThresholdRow p = pick_threshold(rows, job.tolerance);
    trial.set_choice_threshold(choice, p.threshold);
    const auto trow = sweep_thresholds(tc, tv, {p.threshold});
    per[choice] = {{"dev", p.to_json()}, {"test", trow.front().to_json()}};
    md += fmt::format("| {} | {} | {:.2f} | {} | {} | {} |\n", choice.empty() ? "(base)" : choice,
                      count, p.threshold, pct(p.escalated_share), pct(*p.overall_accuracy),
                      tv.empty() ? "-" : pct(trow.front().overall_accuracy.value_or(0)));
  }
  const double dev_per = overall_with(trial, dev, dev_conf);
  const double test_per = overall_with(trial, test, test_conf);
  if (job.per_choice)
    for (const auto& [choice, t] : trial.choice_thresholds()) cal.set_choice_threshold(choice, t);
  rep["choice_thresholds"] = {{"per_choice", per},
                              {"dev_overall", {{"one_threshold", dev_global}, {"per_choice", dev_per}}},
                              {"test_overall", {{"one_threshold", test_global}, {"per_choice", test_per}}}};
  md += fmt::format(
      "\nOverall accuracy, one threshold vs per choice: dev {} -> {}, test {} -> {}.\n",
      pct(dev_global), pct(dev_per), pct(test_global), pct(test_per));
  return md;
}

// Thresholds: swept on dev, the rule picks (written into the calibration), test shows what that
// pick does.
std::string threshold_section(const CalibrateJob& job, const std::vector<Outcome>& dev,
                              const std::vector<Outcome>& test,
                              const std::vector<double>& test_conf, Calibrator& cal, json& rep) {
  std::string md;
  const auto grid = job.thresholds.empty() ? default_threshold_grid() : job.thresholds;
  const auto dev_rows = sweep_thresholds(cal.confidences(dev), dev, grid);
  const auto test_rows = sweep_thresholds(test_conf, test, grid);
  json dr = json::array(), tr = json::array();
  for (const auto& r : dev_rows) dr.push_back(r.to_json());
  for (const auto& r : test_rows) tr.push_back(r.to_json());
  rep["thresholds"] = {{"dev", dr}, {"test", tr}};
  double picked = -1;
  if (dev_rows.front().overall_accuracy) {
    const ThresholdRow& p = pick_threshold(dev_rows, job.tolerance);
    picked = p.threshold;
    const std::string rule = fmt::format(
        "the lowest threshold whose dev overall accuracy (escalated answers scored by the "
        "escalation path) is within {:.1f} points of the best",
        100 * job.tolerance);
    cal.set_threshold(p.threshold, rule);
    cal.info()["target_kept_accuracy"] = p.kept_accuracy;
    rep["threshold"] = {{"value", p.threshold}, {"rule", rule}, {"dev", p.to_json()}};
    for (const auto& r : test_rows)
      if (std::abs(r.threshold - p.threshold) < 1e-9) rep["threshold"]["test"] = r.to_json();
    md += fmt::format("\nThreshold rule: {}. Picked **{:.2f}**.\n", rule, p.threshold);
  } else {
    md += "\nNo escalation run was given: no overall accuracy, so no threshold is picked.\n";
  }
  if (picked >= 0) md += choice_threshold_section(job, grid, dev, test, test_conf, cal, rep);
  md += "\nDev sweep (calibrated confidence below the threshold escalates):\n\n" +
        sweep_table(dev_rows, picked);
  md += "\nTest sweep (for reading only; the pick was made on dev):\n\n" +
        sweep_table(test_rows, picked);
  return md;
}

}  // namespace

void CalibrateJob::validate() const {
  if (system.empty()) fail("router calibrate: --system is required (its choices name the routes)");
  if (dev.empty()) fail("router calibrate: --dev is required (an eval --system run to fit on)");
  if (test.empty()) fail("router calibrate: --test is required (an eval --system run to report on)");
  if (out.empty()) fail("router calibrate: -o/--out is required");
  if (bins < 1 || bins > 100) fail("router calibrate: --bins must be 1..100, got {}", bins);
  if (!(tolerance >= 0 && tolerance <= 0.2))
    fail("router calibrate: --tolerance must be in [0, 0.2], got {}", tolerance);
  for (double t : thresholds)
    if (!(t >= 0 && t <= 1)) fail("router calibrate: --thresholds: {} is outside [0, 1]", t);
  options.validate();
}

CalibrateResult calibrate_job(const CalibrateJob& job) {
  job.validate();
  const SystemConfig cfg = SystemConfig::load(job.system);
  const auto labels = route_labels_of(cfg);
  const auto dev = load_outcomes(job.dev, labels, job.dev_escalated);
  const auto test = load_outcomes(job.test, labels, job.test_escalated);
  std::vector<Outcome> fit_set = dev, dev_acc, test_acc;
  if (job.include_accurate && !job.dev_escalated.empty()) {
    dev_acc = load_voted_outcomes(job.dev_escalated, labels);
    fit_set.insert(fit_set.end(), dev_acc.begin(), dev_acc.end());
  }
  if (!job.test_escalated.empty()) test_acc = load_voted_outcomes(job.test_escalated, labels);
  CalibrateResult res{Calibrator::fit(fit_set, job.options), json::object(), ""};
  Calibrator& cal = res.calibrator;

  const auto test_after = cal.confidences(test);
  const CalibrationReport before = calibration_report(raw_of(test), labels_of(test), job.bins);
  const CalibrationReport after = calibration_report(test_after, labels_of(test), job.bins);
  const CalibrationReport dev_before = calibration_report(raw_of(dev), labels_of(dev), job.bins);
  const CalibrationReport dev_after =
      calibration_report(cal.confidences(dev), labels_of(dev), job.bins);
  const auto [router_before, router_after] = router_reports(cal, test, job.bins);
  json& rep = res.report;
  rep["system"] = job.system.string();
  rep["dev"] = {{"run", job.dev.string()}, {"escalated", job.dev_escalated.string()},
                {"n", dev.size()}, {"n_accurate", dev_acc.size()}};
  rep["test"] = {{"run", job.test.string()}, {"escalated", job.test_escalated.string()},
                 {"n", test.size()}, {"n_accurate", test_acc.size()}};
  rep["bins"] = job.bins;
  rep["router_temperature"] = cal.router_temperature();
  rep["answer"] = {{"test_before", before.to_json()}, {"test_after", after.to_json()},
                   {"dev_before", dev_before.to_json()}, {"dev_after", dev_after.to_json()}};
  rep["router"] = {{"test_before", router_before.to_json()}, {"test_after", router_after.to_json()}};

  std::string& md = res.markdown;
  md += fmt::format(
      "Confidence = P(answer correct). Before: what the runtime reported uncalibrated (router "
      "probability; vote share in accurate mode). After: the calibration (router temperature {:.3f}, "
      "Platt on the signals), fit on dev ({} answers), reported on test ({} answers), {} bins.\n\n",
      cal.router_temperature(), fit_set.size(), test.size(), job.bins);
  md += "| split, answers | n | accuracy | mean confidence | ECE | over / under | max gap | Brier |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n";
  md += report_row("test, fast, before", before) + report_row("test, fast, after", after);
  std::vector<std::pair<std::string, CalibrationReport>> panels = {
      {"fast mode, before (router probability)", before}, {"fast mode, after (calibrated)", after}};
  if (!test_acc.empty()) {
    const auto ab = calibration_report(raw_of(test_acc), labels_of(test_acc), job.bins);
    const auto aa = calibration_report(cal.confidences(test_acc), labels_of(test_acc), job.bins);
    rep["answer"]["test_accurate_before"] = ab.to_json();
    rep["answer"]["test_accurate_after"] = aa.to_json();
    md += report_row("test, accurate, before (vote share)", ab) +
          report_row("test, accurate, after", aa);
    panels.push_back({"accurate mode, before (vote share)", ab});
    panels.push_back({"accurate mode, after (calibrated)", aa});
  }
  md += report_row("dev, fast, before", dev_before) + report_row("dev, fast, after", dev_after);
  if (router_before.n)
    md += report_row("test, router pick, before", router_before) +
          report_row(fmt::format("test, router pick, T={:.3f}", cal.router_temperature()),
                     router_after);
  md += per_choice_section(test, test_after, job.bins, rep);
  md += threshold_section(job, dev, test, test_after, cal, rep);
  cal.info()["fit"] = {{"system", job.system.string()}, {"dev", job.dev.string()},
                       {"dev_escalated", job.dev_escalated.string()}, {"n", fit_set.size()},
                       {"test_ece_before", before.ece}, {"test_ece_after", after.ece}};
  cal.save(job.out);
  write_file_atomic(job.out.string() + ".report.json", rep.dump(2) + "\n");
  if (!job.svg.empty())
    write_file_atomic(job.svg, reliability_svg(panels, "Reliability of answer confidence, " +
                                                           cfg.name + " system, test split"));
  return res;
}

}  // namespace cogumi
