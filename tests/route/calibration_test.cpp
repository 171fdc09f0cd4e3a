// Confidence calibration: ECE, temperature and Platt scaling, the reliability SVG, the threshold
// rule, calibrate from eval runs, adapt from a real session store, and the runtime applying it.
#include "route/calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/io.h"
#include "runtime/calibration_job.h"
#include "runtime/memory.h"
#include "runtime/runtime.h"
#include "test_util.h"

namespace cogumi {
namespace {

using json = nlohmann::json;

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }
double logit(double p) { return std::log(p / (1 - p)); }

fs::path dir(const std::string& name) {
  const fs::path p = test::tmp_dir() / "calibration" / name;
  fs::create_directories(p);
  return p;
}

TEST(Calibration, EceOnAHandComputedExample) {
  // 10 bins. [0.1, 0.2): one wrong at 0.1 (gap 0.1 over). [0.3, 0.4): 0.3 right, 0.35 wrong
  // (confidence 0.325, accuracy 0.5: 0.175 under). [0.9, 1]: 0.9 and 0.95 right (0.075 under).
  const auto r = calibration_report({0.1, 0.3, 0.35, 0.9, 0.95}, {false, true, false, true, true}, 10);
  EXPECT_NEAR(r.ece, 0.2 * 0.1 + 0.4 * 0.175 + 0.4 * 0.075, 1e-12);  // 0.12
  EXPECT_NEAR(r.over, 0.02, 1e-12);
  EXPECT_NEAR(r.under, 0.10, 1e-12);
  EXPECT_NEAR(r.mce, 0.175, 1e-12);
  EXPECT_NEAR(r.brier, (0.01 + 0.49 + 0.1225 + 0.01 + 0.0025) / 5, 1e-12);
  EXPECT_NEAR(r.accuracy, 0.6, 1e-12);
  EXPECT_EQ(r.bins[3].n, 2u);
  EXPECT_NEAR(r.bins[3].confidence, 0.325, 1e-12);
  // A confidence of exactly 1 lands in the last bin; perfect calibration has ECE 0.
  const auto p = calibration_report({1.0, 1.0, 0.5, 0.5}, {true, true, true, false}, 10);
  EXPECT_EQ(p.bins[9].n, 2u);
  EXPECT_NEAR(p.ece, 0.0, 1e-12);
  EXPECT_NE(test::error_of([] { calibration_report({1.5}, {true}); }).find("outside [0, 1]"),
            std::string::npos);
  EXPECT_NE(test::error_of([] { calibration_report({0.5}, {true}, 0); }).find("bins"),
            std::string::npos);
}

TEST(Calibration, TemperatureScalingFixesAnOverconfidentSoftmax) {
  // Labels drawn from softmax(z); the "router" reports softmax(3 z): three times too sharp.
  std::mt19937 rng(3);
  std::normal_distribution<double> nd(0, 1);
  std::vector<std::vector<double>> probs;
  std::vector<int> labels;
  for (int i = 0; i < 4000; ++i) {
    std::vector<double> z = {nd(rng), nd(rng), nd(rng)}, p(3), q(3);
    double sp = 0, sq = 0;
    for (int k = 0; k < 3; ++k) sp += (p[k] = std::exp(z[k])), sq += (q[k] = std::exp(3 * z[k]));
    std::discrete_distribution<int> pick({p[0] / sp, p[1] / sp, p[2] / sp});
    for (auto& v : q) v /= sq;
    probs.push_back(q);
    labels.push_back(pick(rng));
  }
  const double t = fit_temperature(probs, labels);
  EXPECT_NEAR(t, 3.0, 0.3);
  double nll_before = 0, nll_after = 0;
  std::vector<double> top_before, top_after;
  std::vector<bool> ok;
  for (size_t i = 0; i < probs.size(); ++i) {
    const auto q = apply_temperature(probs[i], t);
    nll_before -= std::log(probs[i][size_t(labels[i])]);
    nll_after -= std::log(q[size_t(labels[i])]);
    const size_t arg = size_t(std::max_element(q.begin(), q.end()) - q.begin());
    top_before.push_back(probs[i][arg]);
    top_after.push_back(q[arg]);
    ok.push_back(int(arg) == labels[i]);
  }
  EXPECT_LT(nll_after, 0.9 * nll_before);
  const double ece_before = calibration_report(top_before, ok).ece;
  const double ece_after = calibration_report(top_after, ok).ece;
  EXPECT_GT(ece_before, 0.1);
  EXPECT_LT(ece_after, 0.04);
}

TEST(Calibration, PlattFitRecoversKnownParameters) {
  std::mt19937 rng(5);
  std::normal_distribution<double> nd(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<double>> x;
  std::vector<bool> y;
  for (int i = 0; i < 20000; ++i) {
    const double a = nd(rng), b = nd(rng);
    x.push_back({a, b});
    y.push_back(u(rng) < sigmoid(0.5 + 2 * a - 1 * b));
  }
  LogisticOptions o;
  o.l2 = 0;
  const LogisticModel m = fit_logistic(x, y, o);
  EXPECT_NEAR(m.bias, 0.5, 0.08);
  EXPECT_NEAR(m.w[0], 2.0, 0.1);
  EXPECT_NEAR(m.w[1], -1.0, 0.08);
  o.l2 = 20;
  EXPECT_NE(test::error_of([&] { fit_logistic(x, y, o); }).find("l2"), std::string::npos);
}

// Answers of two choices whose accuracy differs and whose logprob says something, while the
// router is always sure: the raw confidence (router probability) is badly calibrated.
std::vector<Outcome> synthetic_outcomes(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<Outcome> out;
  for (int i = 0; i < n; ++i) {
    Outcome o;
    o.id = "x/" + std::to_string(i);
    const bool math = i % 2 == 0;
    o.signals.choice = math ? "math" : "code";
    o.signals.router_probs = math ? std::vector<double>{0.99, 0.01} : std::vector<double>{0.02, 0.98};
    o.route_label = math ? 0 : 1;
    const double lp = -1 + 0.5 * nd(rng);
    o.signals.logprob_mean = lp;
    o.signals.logprob_min = lp - 2 + 0.3 * nd(rng);
    o.correct = u(rng) < sigmoid((math ? -1.0 : 1.0) + 2 * (lp + 1));
    o.tokens = 10;
    o.escalated_correct = u(rng) < 0.7;
    o.escalated_tokens = 50;
    out.push_back(o);
  }
  return out;
}

std::vector<bool> correct_of(const std::vector<Outcome>& v) {
  std::vector<bool> y;
  for (auto& o : v) y.push_back(o.correct);
  return y;
}

TEST(Calibration, CalibratorLowersEceOnHeldOutAnswersAndRoundTrips) {
  const auto dev = synthetic_outcomes(3000, 1), test_set = synthetic_outcomes(3000, 2);
  const Calibrator c = Calibrator::fit(dev);
  std::vector<double> raw;
  for (auto& o : test_set) raw.push_back(o.signals.raw_confidence());
  const auto before = calibration_report(raw, correct_of(test_set));
  const auto after = calibration_report(c.confidences(test_set), correct_of(test_set));
  EXPECT_GT(before.ece, 0.3);
  EXPECT_LT(after.ece, 0.04);
  EXPECT_LT(after.nll, before.nll);
  // The file holds everything: a loaded copy gives the same confidences.
  const fs::path f = dir("roundtrip") / "cal.json";
  c.save(f);
  const Calibrator l = Calibrator::load(f);
  for (size_t i = 0; i < 20; ++i)
    EXPECT_NEAR(l.confidence(test_set[i].signals), c.confidence(test_set[i].signals), 1e-12);
  // Malformed files name the field.
  json j = json::parse(read_file(f));
  j["platt"]["fast"]["features"][0]["scale"] = -1;
  write_file_atomic(f, j.dump());
  EXPECT_NE(test::error_of([&] { Calibrator::load(f); }).find("platt.fast.features[0]: 'scale'"),
            std::string::npos);
  j["platt"]["fast"]["features"][0]["name"] = "magic";
  write_file_atomic(f, j.dump());
  EXPECT_NE(test::error_of([&] { Calibrator::load(f); }).find("unknown feature 'magic'"),
            std::string::npos);
  // One class only cannot be fit.
  auto all_ok = dev;
  for (auto& o : all_ok) o.correct = true;
  EXPECT_NE(test::error_of([&] { Calibrator::fit(all_ok); }).find("fast answers are all correct"), std::string::npos);
}

// Well-formed XML, checked by matching every tag to its closing tag.
bool well_formed(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0;
  while ((i = s.find('<', i)) != std::string::npos) {
    const size_t e = s.find('>', i);
    if (e == std::string::npos) return false;
    const std::string tag = s.substr(i + 1, e - i - 1);
    i = e + 1;
    if (tag.empty() || tag[0] == '?' || tag[0] == '!') continue;
    if (tag.back() == '/') continue;
    const std::string name = tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" \n/", 1) - (tag[0] == '/' ? 1 : 0));
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != name) return false;
      stack.pop_back();
    } else {
      stack.push_back(name);
    }
  }
  return stack.empty();
}

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t i = s.find(what); i != std::string::npos; i = s.find(what, i + 1)) ++n;
  return n;
}

TEST(Calibration, ReliabilitySvgIsWellFormedAndDrawsEachNonEmptyBin) {
  const auto r = calibration_report({0.1, 0.3, 0.35, 0.9, 0.95}, {false, true, false, true, true}, 10);
  const std::string svg = reliability_svg({{"before <raw>", r}, {"after", r}}, "a & b");
  EXPECT_TRUE(well_formed(svg)) << svg;
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
  EXPECT_EQ(count(svg, "class=\"bin\""), 2u * 3u);     // three non-empty bins per panel
  EXPECT_EQ(count(svg, "class=\"count\""), 2u * 10u);  // a count bar for every bin
  EXPECT_NE(svg.find("ECE 0.120"), std::string::npos);
  EXPECT_NE(svg.find("before &lt;raw&gt;"), std::string::npos);
  EXPECT_NE(svg.find("a &amp; b"), std::string::npos);
  EXPECT_EQ(svg.find("<script"), std::string::npos);
}

TEST(Calibration, ThresholdSweepAndTheRule) {
  std::vector<Outcome> v(4);
  const bool ok[] = {false, true, false, true}, esc[] = {true, true, true, false};
  for (size_t i = 0; i < 4; ++i)
    v[i].correct = ok[i], v[i].escalated_correct = esc[i], v[i].tokens = 10, v[i].escalated_tokens = 40;
  const auto rows = sweep_thresholds({0.2, 0.4, 0.6, 0.8}, v, {0.0, 0.5, 0.7, 0.9});
  EXPECT_DOUBLE_EQ(rows[0].escalated_share, 0.0);
  EXPECT_DOUBLE_EQ(*rows[0].overall_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(rows[1].escalated_share, 0.5);  // 0.2 and 0.4 escalate, both right there
  EXPECT_DOUBLE_EQ(rows[1].kept_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(*rows[1].overall_accuracy, 0.75);
  EXPECT_DOUBLE_EQ(rows[1].tokens_per_item, 10 + 0.5 * 40);
  EXPECT_DOUBLE_EQ(*rows[2].overall_accuracy, 1.0);  // 0.6 escalates too
  EXPECT_DOUBLE_EQ(*rows[3].overall_accuracy, 0.75);  // 0.8 escalates and is lost
  EXPECT_DOUBLE_EQ(pick_threshold(rows).threshold, 0.7);
  // The rule takes the cheapest within the tolerance of the best.
  std::vector<ThresholdRow> r(5);
  const double th[] = {0.5, 0.6, 0.7, 0.8, 0.9}, acc[] = {0.80, 0.84, 0.846, 0.85, 0.85};
  for (size_t i = 0; i < 5; ++i) r[i].threshold = th[i], r[i].overall_accuracy = acc[i];
  EXPECT_DOUBLE_EQ(pick_threshold(r, 0.005).threshold, 0.7);
  EXPECT_DOUBLE_EQ(pick_threshold(r, 0.0).threshold, 0.8);
  EXPECT_DOUBLE_EQ(pick_threshold(r, 0.05).threshold, 0.5);
  for (auto& x : r) x.overall_accuracy.reset();
  EXPECT_NE(test::error_of([&] { pick_threshold(r); }).find("escalation path"), std::string::npos);
  const auto grid = default_threshold_grid();
  for (double t : {0.75, 0.80, 0.85})
    EXPECT_TRUE(std::any_of(grid.begin(), grid.end(), [&](double g) { return std::abs(g - t) < 1e-9; }));
}

// An eval --system run as items.jsonl lines: `samples` outputs per item (numeric answers).
void write_run(const fs::path& d, const std::vector<Outcome>& v, int samples, uint32_t seed) {
  fs::create_directories(d);
  std::mt19937 rng(seed);
  std::string s;
  for (const auto& o : v) {
    const auto slash = o.id.find('/');
    const int agree = samples == 1 ? 1 : 1 + int(rng() % uint32_t(samples));
    for (int k = 0; k < samples; ++k) {
      // The first `agree` samples give the voted answer; its correctness is escalated_correct.
      const bool voted = k < agree;
      const bool correct = samples == 1 ? o.correct : voted ? *o.escalated_correct : false;
      json line = {{"benchmark", "gsm8k"}, {"id", o.id.substr(slash + 1)}, {"kind", "numeric"},
                   {"sample", k}, {"route_choice", o.signals.choice},
                   {"route_probs", {{"code", o.signals.router_probs[1]}, {"math", o.signals.router_probs[0]}}},
                   {"output", voted ? "#### 42" : "#### " + std::to_string(100 + k)},
                   {"correct", correct}, {"logprob_mean", *o.signals.logprob_mean},
                   {"logprob_min", *o.signals.logprob_min}, {"n_gen_tokens", 10}};
      s += line.dump() + "\n";
    }
  }
  write_file_atomic(d / "items.jsonl", s);
}

TEST(Calibration, CalibrateFromEvalRunsWritesTheFileTheSvgAndAThreshold) {
  const fs::path d = dir("job");
  write_file_atomic(d / "system.yaml",
                    "base: b.gguf\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n  code: {ask_as: humaneval}\n");
  write_run(d / "dev", synthetic_outcomes(1200, 11), 1, 1);
  write_run(d / "dev-esc", synthetic_outcomes(1200, 11), 5, 2);
  write_run(d / "test", synthetic_outcomes(1200, 12), 1, 3);
  CalibrateJob j;
  j.system = d / "system.yaml";
  j.dev = d / "dev", j.test = d / "test", j.dev_escalated = d / "dev-esc";
  j.out = d / "cal.json", j.svg = d / "rel.svg";
  const CalibrateResult r = calibrate_job(j);
  EXPECT_TRUE(fs::exists(d / "cal.json.report.json"));
  EXPECT_TRUE(well_formed(read_file(d / "rel.svg")));
  const json& rep = r.report;
  EXPECT_GT(rep["answer"]["test_before"]["ece"].get<double>(), 0.3);
  EXPECT_LT(rep["answer"]["test_after"]["ece"].get<double>(), 0.06);
  ASSERT_TRUE(r.calibrator.threshold());
  EXPECT_EQ(rep["thresholds"]["dev"].size(), default_threshold_grid().size());
  // The picked threshold obeys the rule on the dev sweep.
  double best = 0;
  for (auto& row : rep["thresholds"]["dev"]) best = std::max(best, row["overall_accuracy"].get<double>());
  for (auto& row : rep["thresholds"]["dev"])
    if (row["overall_accuracy"].get<double>() >= best - 0.005) {
      EXPECT_GE(row["threshold"].get<double>(), *r.calibrator.threshold() - 1e-9);
    }
  // The escalation run's voted answers joined the fit as accurate-mode answers.
  EXPECT_EQ(rep["dev"]["n_accurate"].get<size_t>(), 1200u);
  const Calibrator loaded = Calibrator::load(j.out);
  EXPECT_EQ(loaded.threshold(), r.calibrator.threshold());
  // --per-choice: the same rule per routed choice, written into the file; other choices fall back.
  j.per_choice = true;
  const CalibrateResult pc = calibrate_job(j);
  for (const std::string choice : {"math", "code"}) {
    ASSERT_TRUE(pc.report["choice_thresholds"]["per_choice"].contains(choice));
    EXPECT_DOUBLE_EQ(*pc.calibrator.threshold_for(choice),
                     pc.report["choice_thresholds"]["per_choice"][choice]["dev"]["threshold"].get<double>());
  }
  EXPECT_EQ(Calibrator::load(j.out).choice_thresholds(), pc.calibrator.choice_thresholds());
  EXPECT_EQ(pc.calibrator.threshold_for("other"), pc.calibrator.threshold());
  // An escalation run that lacks an item is refused by name.
  write_run(d / "short-esc", synthetic_outcomes(10, 11), 5, 2);
  j.dev_escalated = d / "short-esc";
  EXPECT_NE(test::error_of([&] { calibrate_job(j); }).find("no item 'gsm8k/10'"), std::string::npos);
  j.bins = 0;
  EXPECT_NE(test::error_of([&] { calibrate_job(j); }).find("--bins"), std::string::npos);
}

TEST(Calibration, RunsOfTheRuntimesAccurateModeReadAsVotesWithTheirVerification) {
  // eval --system --mode accurate: one line per item with the runtime's vote and verification.
  const fs::path d = dir("accurate-run");
  std::string s;
  s += json{{"benchmark", "humaneval"}, {"id", "0"}, {"kind", "code"}, {"route_choice", "code"},
            {"correct", true}, {"votes", 4}, {"samples", 5}, {"verifier", "tests"}, {"verified", true},
            {"n_gen_tokens", 50}}.dump() + "\n";
  s += json{{"benchmark", "gsm8k"}, {"id", "1"}, {"kind", "numeric"}, {"route_choice", "math"},
            {"correct", false}, {"votes", 2}, {"samples", 5}, {"verifier", "agreement"},
            {"verified", true}, {"n_gen_tokens", 40}}.dump() + "\n";
  write_file_atomic(d / "items.jsonl", s);
  const auto v = load_voted_outcomes(d, {{"humaneval", {"code"}}});
  ASSERT_EQ(v.size(), 2u);
  EXPECT_EQ(v[0].signals.mode, "accurate");
  EXPECT_DOUBLE_EQ(*v[0].signals.agreement, 0.8);
  EXPECT_EQ(v[0].signals.verified, std::optional<bool>(true));  // tests ran: an outside check
  EXPECT_DOUBLE_EQ(*v[1].signals.agreement, 0.4);
  EXPECT_FALSE(v[1].signals.verified);  // agreement is the vote itself, not a verification
  // A line without 'correct' is refused with its file and line.
  write_file_atomic(d / "items.jsonl", json{{"benchmark", "gsm8k"}, {"id", "1"}}.dump() + "\n");
  EXPECT_NE(test::error_of([&] { load_voted_outcomes(d, {}); }).find("items.jsonl:1: 'correct'"),
            std::string::npos);
}

// Sessions in a real SQLite store: answers whose true accuracy is lower than the calibration
// says (the world moved), rated by thumbs, some flagged by a complaining follow-up instead.
TEST(Calibration, AdaptRefitsFromFeedbackInARealSessionStore) {
  const auto dev = synthetic_outcomes(2000, 21);
  Calibrator cur = Calibrator::fit(dev);
  cur.set_threshold(0.5, "test");
  cur.info()["target_kept_accuracy"] = 0.8;
  const fs::path db = dir("adapt") / "sessions.db";
  SessionStore store = SessionStore::open(db);
  std::mt19937 rng(4);
  std::uniform_real_distribution<double> u(0, 1);
  const auto answers = synthetic_outcomes(600, 22);
  int flagged = 0;
  for (size_t i = 0; i < answers.size(); ++i) {
    const std::string s = store.create_session();
    const double p = cur.confidence(answers[i].signals);
    const bool right = u(rng) < sigmoid(logit(p) - 1.5);  // overconfident by 1.5 logits
    store.append_turn(s, Turn{0, s, "user", "q", "", nullptr, std::nullopt, "", false, 0});
    Turn a{0, s, "assistant", "a", answers[i].signals.choice, json{{"signals", answers[i].signals.to_json()}},
           p, "fast", false, 0};
    const int64_t id = store.append_turn(s, a);
    if (!right && i % 3 == 0) {  // the user complains instead of rating
      store.append_turn(s, Turn{0, s, "user", "that's wrong", "", nullptr, std::nullopt, "", false, 0});
      store.append_turn(s, Turn{0, s, "assistant", "b", "math",
                                json{{"escalated_by", "detector"}, {"signals", answers[i].signals.to_json()}},
                                0.9, "accurate", true, 0});
      ++flagged;
    } else {
      store.record_feedback(id, right ? 1 : -1);
    }
  }
  const auto rows = feedback_outcomes(store);
  EXPECT_EQ(rows.size(), answers.size());
  EXPECT_EQ(std::count_if(rows.begin(), rows.end(), [](auto& r) { return r.label_from == "escalation"; }),
            flagged);
  AdaptJob j;
  j.memory = db, j.calibration = "unused", j.out = dir("adapt") / "cal.json";
  const AdaptResult r = adapt_calibration(store, cur, j);
  const json& rep = r.report;
  EXPECT_EQ(rep["heldout"].get<size_t>(), 150u);
  EXPECT_GT(rep["before"]["ece"].get<double>(), 0.15);
  EXPECT_LT(rep["after"]["ece"].get<double>(), 0.5 * rep["before"]["ece"].get<double>());
  EXPECT_LT(rep["after"]["nll"].get<double>(), rep["before"]["nll"].get<double>());
  // Lower true accuracy: keeping answers right 80% of the time takes a higher threshold, and the
  // held-out kept answers are more often right than under the old one.
  ASSERT_TRUE(r.calibrator.threshold());
  EXPECT_GT(*r.calibrator.threshold(), 0.5);
  EXPECT_GT(rep["after"]["kept_accuracy"].get<double>(), rep["before"]["kept_accuracy"].get<double>());
  // Too little feedback is refused with the count.
  const fs::path small = dir("adapt-small") / "sessions.db";
  SessionStore few = SessionStore::open(small);
  EXPECT_NE(test::error_of([&] { adapt_calibration(few, cur, j); }).find("holds 0 labelled answers"),
            std::string::npos);
}

TEST(CalibrationRuntime, AskReportsTheCalibratedConfidenceAndEscalatesBelowTheThreshold) {
  const fs::path d = dir("runtime");
  const fs::path base = fs::path(COGUMI_REPO_DIR) / "models/nano-base.gguf";
  // P(correct) = sigmoid(0.3 + (logprob_mean + 1) / 0.5): differs from the raw confidence (1:
  // no router), so a runtime that ignored the file would report 1.
  auto cal = [&](double threshold) {
    json j = {{"format", "cogumi-calibration"}, {"version", 1}, {"router_temperature", 1.0},
              {"platt", {{"fast", {{"bias", 0.3}, {"features", {{{"name", "logprob_mean"}, {"mean", -1.0}, {"scale", 0.5}, {"weight", 1.0}}}}}}}},
              {"threshold", threshold}};
    write_file_atomic(d / "cal.json", j.dump());
  };
  const std::string sys = "base: " + base.string() +
                          "\ndefault: math\nchoices:\n  math: {ask_as: gsm8k}\n"
                          "modes: {accurate: {samples: 3, temperature: 0.7}}\n"
                          "generation: {max_tokens: 24, parallel: 4}\nmemory: sessions.db\n"
                          "calibration: cal.json\n";
  write_file_atomic(d / "system.yaml", sys);
  cal(0.0);
  {
    Runtime rt(SystemConfig::load(d / "system.yaml"));
    ASSERT_TRUE(rt.calibrator());
    const auto r = rt.ask({AskRequest{"Tom has 3 apples and buys 4 more. How many now?"}});
    ASSERT_TRUE(r[0].signals.logprob_mean);
    EXPECT_DOUBLE_EQ(r[0].raw_confidence, 1.0);
    EXPECT_NEAR(r[0].confidence, sigmoid(0.3 + (*r[0].signals.logprob_mean + 1) / 0.5), 1e-9);
    EXPECT_NE(r[0].confidence, r[0].raw_confidence);
    EXPECT_FALSE(r[0].escalated);
  }
  cal(1.0);  // every answer is under it: asked again in accurate mode, and recorded so
  Runtime rt(SystemConfig::load(d / "system.yaml"));
  const std::string s = rt.memory().create_session();
  AskRequest q{"Tom has 3 apples and buys 4 more. How many now?"};
  q.session = s;
  std::vector<AskResponse> decided;  // announced twice: the fast decision, then the re-ask's
  AskStream stream;
  stream.on_decision = [&](size_t i, const AskResponse& d) {
    EXPECT_EQ(i, 0u);
    decided.push_back(d);
  };
  const auto r = rt.ask({q}, stream);
  ASSERT_EQ(decided.size(), 2u);
  EXPECT_EQ(decided[0].mode, "fast");
  EXPECT_FALSE(decided[0].escalated);
  EXPECT_EQ(decided[1].mode, "accurate");
  EXPECT_TRUE(decided[1].escalated);
  EXPECT_TRUE(r[0].escalated);
  EXPECT_EQ(r[0].escalated_by, "confidence");
  EXPECT_EQ(r[0].mode, "accurate");
  EXPECT_EQ(r[0].samples, 3);
  EXPECT_TRUE(r[0].signals.agreement);
  const auto turns = rt.memory().last_turns(s, 10);
  ASSERT_EQ(turns.size(), 2u);
  EXPECT_EQ(turns[1].decision["escalated_by"], "confidence");
  EXPECT_TRUE(turns[1].decision.contains("signals"));
  EXPECT_NEAR(*turns[1].confidence, r[0].confidence, 1e-12);
  // A caller who asks for fast mode gets fast mode, whatever the threshold.
  AskRequest f{"Tom has 3 apples and buys 4 more. How many now?"};
  f.mode = "fast";
  EXPECT_FALSE(rt.ask({f})[0].escalated);
}

}  // namespace
}  // namespace cogumi
