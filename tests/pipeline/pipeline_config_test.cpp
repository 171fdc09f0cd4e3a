// The pipeline config, gates and the stage runner, without models: errors name the file, line
// and key; gates pass and fail on the numbers they name; stage keys change exactly when their
// inputs change; an interrupted stage reruns while finished ones are reused.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "pipeline/config.h"
#include "pipeline/gates.h"
#include "pipeline/runner.h"
#include "pipeline/stages.h"
#include "test_util.h"

namespace cogumi {
namespace {

fs::path write(const std::string& name, const std::string& text) {
  const fs::path dir = test::tmp_dir() / "pipeline-config";
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

const char* kMinimal =
    "base: {gguf: base.gguf}\n"
    "domains:\n"
    "  math:\n"
    "    test: {gsm8k: math_test.jsonl}\n"
    "    mine: {gsm8k: math_train.jsonl}\n"
    "  code:\n"
    "    test: {humaneval: code_test.jsonl}\n"
    "    sft: code_sft.jsonl\n"
    "    train: {patience: 0}\n";

TEST(PipelineConfig, DefaultsAndPathsRelativeToTheFile) {
  const fs::path f = write("minimal.yaml", std::string(kMinimal) + "  automation:\n    test: {bfcl: a.jsonl}\n    modifier: false\n");
  PipelineConfig c = PipelineConfig::load(f);
  EXPECT_EQ(c.name, "minimal");
  EXPECT_EQ(c.work_dir, fs::path("runs/minimal"));
  EXPECT_EQ(c.base_gguf, f.parent_path() / "base.gguf");
  ASSERT_EQ(c.domains.size(), 3u);
  EXPECT_EQ(c.domains[0].train.rank, 16);
  EXPECT_EQ(c.domains[0].train.steps, 1000);
  EXPECT_EQ(c.domains[1].sft.at(0), f.parent_path() / "code_sft.jsonl");
  EXPECT_FALSE(c.domains[2].modifier);
  EXPECT_EQ(c.mine_limit, 600u);
  EXPECT_TRUE(c.exec_cache);
  EXPECT_FALSE(PipelineConfig::load(write("nocache.yaml", std::string(kMinimal) + "eval: {exec_cache: false}\n")).exec_cache);
  EXPECT_TRUE(c.router);
  // The base's curriculum options, as a trained base reads them.
  const PipelineConfig t = PipelineConfig::load(write(
      "train-base.yaml", "base: {train: {n_copy: 600, n_choice: 300, vocab_split_punct: true}}\ndomains:\n  math: {}\n"));
  EXPECT_EQ(t.base_options.n_copy, 600);
  EXPECT_EQ(t.base_options.n_choice, 300);
  EXPECT_TRUE(t.base_options.vocab_split_punct);
  EXPECT_FALSE(PipelineConfig::load(write("train-base0.yaml", "base: {train: {}}\ndomains:\n  math: {}\n"))
                   .base_options.vocab_split_punct);
}

TEST(PipelineConfig, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string yaml, want;
  };
  const std::vector<Case> cases = {
      {std::string(kMinimal) + "    trian: {rank: 8}\n", "bad.yaml:10: 'domains.code.trian': unknown key"},
      {std::string(kMinimal) + "training:\n  steps: many\n", "bad.yaml:11: 'training.steps': expected a number, got 'many'"},
      {std::string(kMinimal) + "training:\n  rank: 0\n", "bad.yaml:11: 'training.rank': must be in [1, 4096], got 0"},
      {std::string(kMinimal) + "training:\n  lr: 0\n", "'training.lr': must be in (0, 1], got 0"},
      {std::string(kMinimal) + "eval: {test_limit: 2.5}\n", "bad.yaml:10: 'eval.test_limit': expected a whole number"},
      {std::string(kMinimal) + "router: {enabled: maybe}\n", "bad.yaml:10: 'router.enabled': expected true or false"},
      {std::string(kMinimal) + "router: {choose_on_dev: 1}\n", "bad.yaml:10: 'router.choose_on_dev': expected true or false"},
      {std::string(kMinimal) + "router: {dev_limit: -1}\n", "bad.yaml:10: 'router.dev_limit': must be in [0, 100000000]"},
      {std::string(kMinimal) + "router: {route_alpha: 0}\n", "bad.yaml:10: 'router.route_alpha': must be in (0, 1], got 0"},
      {std::string(kMinimal) + "router: {route_alpha: 1.5}\n", "bad.yaml:10: 'router.route_alpha': must be in (0, 1], got 1.5"},
      {"base: {gguf: b.gguf}\ndomains:\n  math:\n    test: {gsm8k: t.jsonl}\n    dev: {gsm9k: d.jsonl}\n",
       "bad.yaml:5: 'domains.math.dev.gsm9k': unknown benchmark kind"},
      {std::string(kMinimal) + "failures:\n  labeler: {url: ftp://x}\n", "bad.yaml:11: 'failures.labeler.url': expected an http"},
      {std::string(kMinimal) + "gates:\n  - math >= bse + 10\n", "bad.yaml:11: 'gates[0]': 'math >= bse + 10': unknown name 'bse'"},
      {std::string(kMinimal) + "gates:\n  - poetry >= base\n", "bad.yaml:11: 'gates[0]'"},
      {"base: {gguf: b.gguf}\ndomains:\n  poetry: {}\n", "bad.yaml:3: 'domains.poetry.test': required"},
      {"base: {gguf: b.gguf}\ndomains:\n  math:\n    test: {gsm9k: t.jsonl}\n", "bad.yaml:4: 'domains.math.test.gsm9k': unknown benchmark kind"},
      {"base: {gguf: b.gguf, train: {}}\ndomains:\n  math: {}\n", "bad.yaml:1: 'base': give exactly one"},
      {"base: {train: {n_copy: -1}}\ndomains:\n  math: {}\n", "bad.yaml:1: 'base.train.n_copy': must be in [0, 1000000], got -1"},
      {std::string(kMinimal) + "eval: {mine_skip: -2}\n", "bad.yaml:10: 'eval.mine_skip': must be in [0, 100000000], got -2"},
      {std::string(kMinimal) + "eval: {exec_cache: sometimes}\n", "bad.yaml:10: 'eval.exec_cache': expected true or false"},
      {"base: {gguf: b.gguf}\ncurriculum: {n_copy: 2000000}\ndomains:\n  math: {}\n",
       "bad.yaml:2: 'curriculum.n_copy': must be in [0, 1000000], got 2000000"},
      {"base: {train: {n_choice: -2}}\ndomains:\n  math: {}\n", "bad.yaml:1: 'base.train.n_choice': must be in [0, 1000000], got -2"},
      {"base: {gguf: b.gguf}\ncurriculum: {n_choice: 1000001}\ndomains:\n  math: {}\n",
       "bad.yaml:2: 'curriculum.n_choice': must be in [0, 1000000], got 1000001"},
      {"base: {train: {vocab_split_punct: sometimes}}\ndomains:\n  math: {}\n",
       "bad.yaml:1: 'base.train.vocab_split_punct': expected true or false"},
      {"base: {gguf: b.gguf}\ndomains:\n  base: {test: {gsm8k: t.jsonl}}\n", "'domains.base': this name is reserved"},
      {"base: {gguf: b.gguf}\ndomains: [math]\n", "bad.yaml:2: 'domains': expected a mapping"},
      {"base: {gguf: b.gguf}\ndomains:\n  math: {test: {gsm8k: t.jsonl}, mine: {gsm8k: m.jsonl}}\n  code: {test: {gsm8k: t2.jsonl}, sft: s.jsonl, train: {patience: 0}}\n",
       "domains.code.test: benchmark kind 'gsm8k' is already another domain's"},
      {"base: {gguf: b.gguf}\ndomains:\n  math: {test: {gsm8k: t.jsonl}}\n", "'domains.math': a modifier needs training data"},
      {"base: {gguf: [x]\n", "bad.yaml:2: not valid YAML"},
      {std::string(kMinimal) + "jobs: 0\n", "bad.yaml:10: 'jobs': must be in [1, 64], got 0"},
      {std::string(kMinimal) + "jobs: two\n", "bad.yaml:10: 'jobs': expected a number, got 'two'"},
  };
  for (const Case& k : cases) {
    const fs::path f = write("bad.yaml", k.yaml);
    const std::string err = test::error_of([&] { PipelineConfig::load(f); });
    EXPECT_NE(err.find(k.want), std::string::npos) << "yaml:\n" << k.yaml << "error: " << err;
  }
  EXPECT_NE(test::error_of([] { PipelineConfig::load("/nonexistent/p.yaml"); }).find("cannot read pipeline config"),
            std::string::npos);
}

GateMetrics metrics() {
  GateMetrics m;
  m.base = {{"math", 20}, {"code", 50}};
  m.with["math"] = {{"math", 35}, {"code", 47}};
  m.with["code"] = {{"math", 12}, {"code", 58}};
  m.routed = {{"math", 35}, {"code", 57}};
  m.scalars = {{"router.accuracy", 0.98}, {"size_mb", 14.5}};
  m.missing_reason["ece"] = "calibration was skipped";
  return m;
}

GateResult gate(const std::string& text) {
  auto r = evaluate_gates({parse_gate(text, {"math", "code"})}, metrics());
  return r.at(0);
}

TEST(PipelineGates, PassAndFailOnTheNumbersTheyName) {
  EXPECT_TRUE(gate("math >= base + 10").passed);   // 35 vs 30
  EXPECT_FALSE(gate("code >= base + 10").passed);  // 58 vs 60
  EXPECT_FALSE(gate("every domain >= base + 10").passed);
  EXPECT_TRUE(gate("every domain >= base + 5").passed);
  // The code modifier costs math 8 points: fails at -5, passes at -10.
  GateResult other = gate("every other domain >= base - 5");
  EXPECT_FALSE(other.passed);
  ASSERT_EQ(other.checks.size(), 2u);
  int failed = 0;
  for (auto& c : other.checks)
    if (!c.passed) {
      ++failed;
      EXPECT_EQ(c.what, "math with code");
      EXPECT_DOUBLE_EQ(c.value, 12);
      EXPECT_DOUBLE_EQ(c.threshold, 15);
    }
  EXPECT_EQ(failed, 1);
  EXPECT_TRUE(gate("every other domain >= base - 10").passed);
  EXPECT_FALSE(gate("routed every domain >= best").passed);  // code: 57 < 58
  EXPECT_TRUE(gate("routed every domain >= best - 1").passed);
  EXPECT_TRUE(gate("routed math == own").passed);
  EXPECT_TRUE(gate("router.accuracy >= 0.97").passed);
  EXPECT_FALSE(gate("router.accuracy>=0.99").passed);
  EXPECT_TRUE(gate("size_mb <= 15").passed);
  GateResult ece = gate("ece <= 0.05");
  EXPECT_FALSE(ece.passed);
  EXPECT_NE(ece.error.find("calibration was skipped"), std::string::npos);
}

TEST(PipelineGates, ParseErrorsSayWhat) {
  const std::vector<std::string> d = {"math"};
  EXPECT_NE(test::error_of([&] { parse_gate("math >= ", d); }).find("right side"), std::string::npos);
  EXPECT_NE(test::error_of([&] { parse_gate("math = base", d); }).find("use =="), std::string::npos);
  EXPECT_NE(test::error_of([&] { parse_gate("size_mb <= base", d); }).find("unknown name 'base'"), std::string::npos);
  EXPECT_NE(test::error_of([&] { parse_gate("routed every other domain >= base", d); }).find("means nothing"), std::string::npos);
  EXPECT_NE(test::error_of([&] { parse_gate("math >= base 10", d); }).find("expected + or -"), std::string::npos);
}

// A config whose files all exist, with a trained-from-nothing base (keys only; nothing runs).
PipelineConfig planned_config() {
  PipelineConfig c = PipelineConfig::load(write("keys.yaml",
                                                "base: {train: {steps: 3}}\n"
                                                "domains: {math: {}, code: {}, reasoning: {}, automation: {}}\n"
                                                "gates: ['every domain >= base']\n"));
  c.work_dir = test::tmp_dir() / "pipeline-keys";
  return c;
}

std::map<std::string, std::string> keys_of(const PipelineConfig& c) {
  Plan p(c.work_dir);
  plan_pipeline(c, p);
  std::map<std::string, std::string> k;
  for (auto& s : p.stages()) k[s.name] = s.key;
  return k;
}

std::set<std::string> changed(const std::map<std::string, std::string>& a, const std::map<std::string, std::string>& b) {
  std::set<std::string> out;
  for (auto& [n, k] : a)
    if (b.at(n) != k) out.insert(n);
  return out;
}

TEST(PipelineKeys, ChangeExactlyWhenTheirInputsChange) {
  PipelineConfig c = planned_config();
  const auto k0 = keys_of(c);
  // base, eval_base, mine, failures, cluster, 4x4 per modifier (trainset, train, eval, dev), dev.base, routes, 5 after
  EXPECT_EQ(k0.size(), 28u);
  EXPECT_EQ(keys_of(c), k0);  // deterministic
  // One modifier's rank: that modifier, its evaluations (test and dev), the routes and the router chosen among the
  // modifiers, the routed system, gates, report.
  PipelineConfig rank = c;
  for (auto& d : rank.domains)
    if (d.name == "code") d.train.rank = 32;
  EXPECT_EQ(changed(k0, keys_of(rank)),
            (std::set<std::string>{"train.code", "eval.code", "dev.code", "routes", "router", "calibrate", "eval_system",
                                   "gates", "report"}));
  // The share of the domain's own data: its training set and everything after it.
  PipelineConfig share = c;
  share.domains[0].train.domain_share = 0.5;
  EXPECT_EQ(changed(k0, keys_of(share)),
            (std::set<std::string>{"trainset.math", "train.math", "eval.math", "dev.math", "routes", "router", "calibrate",
                                   "eval_system", "gates", "report"}));
  // Fewer test items: the evaluations, not the mined failures or the modifiers.
  PipelineConfig lim = c;
  lim.test_limit = 50;
  EXPECT_EQ(changed(k0, keys_of(lim)), (std::set<std::string>{"eval_base", "eval.math", "eval.code", "eval.reasoning",
                                                              "eval.automation", "eval_system", "gates", "report"}));
  // Without dev stages (router.choose_on_dev off) the routes still follow which domains have a modifier: a
  // modifier turned off must not reuse routes that name it.
  PipelineConfig nodev = c;
  nodev.choose_on_dev = false;
  PipelineConfig nodev_off = nodev;
  nodev_off.domains[1].modifier = false;
  EXPECT_EQ(keys_of(nodev).count("dev.base"), 0u);
  EXPECT_NE(keys_of(nodev).at("routes"), keys_of(nodev_off).at("routes"));
  // A gate: only the gates and the report.
  PipelineConfig g = c;
  g.gates.push_back(parse_gate("router.accuracy >= 0.9", c.domain_names()));
  EXPECT_EQ(changed(k0, keys_of(g)), (std::set<std::string>{"gates", "report"}));
  // The base: everything; its copying items (base.train.n_copy) too.
  PipelineConfig b = c;
  b.base_options.steps = 4;
  EXPECT_EQ(changed(k0, keys_of(b)).size(), k0.size());
  PipelineConfig copy = c;
  copy.base_options.n_copy = 500;
  EXPECT_EQ(changed(k0, keys_of(copy)).size(), k0.size());
  PipelineConfig choice = c;
  choice.base_options.n_choice = 500;
  EXPECT_EQ(changed(k0, keys_of(choice)).size(), k0.size());
  PipelineConfig split = c;
  split.base_options.vocab_split_punct = true;
  EXPECT_EQ(changed(k0, keys_of(split)).size(), k0.size());
}

TEST(PipelineKeys, InputFilesCountByContent) {
  const fs::path dir = test::tmp_dir() / "pipeline-files";
  fs::create_directories(dir);
  std::ofstream(dir / "base.gguf") << "not really a model";
  std::ofstream(dir / "t.jsonl") << "{\"question\": \"1+1\", \"answer\": \"#### 2\"}\n";
  std::ofstream(dir / "s.jsonl") << "{\"prompt\": \"a\", \"completion\": \"b\"}\n";
  const fs::path f = write("files.yaml", fmt::format("base: {{gguf: {}}}\ndomains:\n  math: {{test: {{gsm8k: {}}}, sft: {}, "
                                                    "train: {{patience: 0}}}}\n  code: {{test: {{humaneval: {}}}, modifier: false}}\n",
                                                    (dir / "base.gguf").string(), (dir / "t.jsonl").string(),
                                                    (dir / "s.jsonl").string(), (dir / "missing.jsonl").string()));
  PipelineConfig c = PipelineConfig::load(f);
  c.work_dir = dir / "work";
  Plan p(c.work_dir);
  plan_pipeline(c, p);
  ASSERT_EQ(p.missing().size(), 1u);  // listed, not thrown: a dry run shows them all
  EXPECT_EQ(p.missing()[0], (dir / "missing.jsonl").string());
  const auto k0 = keys_of(c);
  std::ofstream(dir / "s.jsonl", std::ios::app) << "{\"prompt\": \"c\", \"completion\": \"d\"}\n";
  EXPECT_EQ(changed(k0, keys_of(c)),
            (std::set<std::string>{"trainset.math", "train.math", "eval.math", "router", "calibrate", "eval_system",
                                   "gates", "report"}));
}

// A modifier that no source can feed is refused when the plan is made (a dry run shows it), naming the domain and
// what would feed it, instead of failing at its training set after the evaluations have run.
TEST(PipelineKeys, AModifierWithNoPossibleTrainingDataIsRefusedAtPlanTime) {
  const fs::path dir = test::tmp_dir() / "pipeline-nodata";
  fs::create_directories(dir);
  std::ofstream(dir / "base.gguf") << "not really a model";
  std::ofstream(dir / "t.jsonl") << "{\"question\": \"1+1\", \"answer\": \"#### 2\"}\n";
  auto plan_of = [&](const std::string& train) {
    const fs::path f = write("nodata.yaml", fmt::format("base: {{gguf: {}}}\ndomains:\n  math: {{test: {{gsm8k: {}}}, "
                                                        "mine: {{gsm8k: {}}}, train: {{patience: 0{}}}}}\n",
                                                        (dir / "base.gguf").string(), (dir / "t.jsonl").string(),
                                                        (dir / "t.jsonl").string(), train));
    PipelineConfig c = PipelineConfig::load(f);
    c.work_dir = dir / "work";
    Plan p(c.work_dir);
    plan_pipeline(c, p);
    return p.has("train.math");
  };
  EXPECT_TRUE(plan_of(""));  // its failures feed it
  const std::string e = test::error_of([&] { plan_of(", failure_weight: 0"); });
  EXPECT_NE(e.find("nodata.yaml: domains.math: the modifier has no training data"), std::string::npos) << e;
  EXPECT_NE(e.find("modifier: false"), std::string::npos) << e;
}

// A plan of three counting stages in a fresh directory.
struct Counting {
  std::map<std::string, int> runs;
  bool fail_b = false;
  void plan(Plan& p) {
    for (const char* n : {"a", "b.x", "b.y", "c"}) {
      Stage s{n, "1", {}, {{"n", n}}, {}, {}, {}};
      if (std::string(n) != "a") s.deps = {"a"};
      if (std::string(n) == "c") s.deps = {"b.x", "b.y"};
      s.run = [this, n = std::string(n)](const StageContext& ctx) {
        ++runs[n];
        if (n == "b.y" && fail_b) {
          std::ofstream(ctx.stage.dir / "partial") << "half";
          fail("b.y broke");
        }
        // Each stage sees its dependency's result.
        return json{{"from", n}, {"a", ctx.stage.deps.empty() ? json(true) : json(ctx.result("a")["from"] == "a")}};
      };
      p.add(std::move(s));
    }
  }
};

size_t count_events(const fs::path& f, const std::string& event) {
  size_t n = 0;
  read_jsonl(f, [&](const json& j, size_t) { n += j["event"] == event; });
  return n;
}

TEST(PipelineRunner, ResumesAnInterruptedStageAndReusesFinishedOnes) {
  const fs::path dir = test::tmp_dir() / "runner-resume";
  Counting c;
  c.fail_b = true;
  RunOptions o;
  o.progress = false;
  {
    Plan p(dir);
    c.plan(p);
    EXPECT_NE(test::error_of([&] { run_plan(p, o); }).find("b.y broke"), std::string::npos);
    EXPECT_TRUE(p.finished("a"));
    EXPECT_TRUE(p.finished("b.x"));
    EXPECT_FALSE(p.finished("b.y"));
    EXPECT_TRUE(fs::exists(p.at("b.y").dir / "partial"));  // its directory stays for the resume
  }
  EXPECT_EQ(count_events(dir / "events.jsonl", "stage_failed"), 1u);
  c.fail_b = false;
  Plan p(dir);
  c.plan(p);
  RunSummary s = run_plan(p, o);
  EXPECT_EQ(s.reused, 2);
  EXPECT_EQ(s.ran, 2);
  EXPECT_EQ(c.runs["a"], 1);
  EXPECT_EQ(c.runs["b.y"], 2);
  EXPECT_EQ(c.runs["c"], 1);
  EXPECT_EQ(count_events(dir / "events.jsonl", "stage_resume"), 1u);
  EXPECT_EQ(p.result("c")["a"], true);
  // A second run in the same directory while one holds it is refused, naming the lock.
  const int fd = ::open((dir / "run.lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  Plan busy(dir);
  c.plan(busy);
  EXPECT_NE(test::error_of([&] { run_plan(busy, o); }).find("another cogumi run is working in"), std::string::npos);
  ::close(fd);
  // Everything finished: a third run runs nothing.
  Plan p3(dir);
  c.plan(p3);
  EXPECT_EQ(run_plan(p3, o).ran, 0);
}

TEST(PipelineRunner, UntilOnlyAndDryRun) {
  const fs::path dir = test::tmp_dir() / "runner-select";
  Counting c;
  RunOptions o;
  o.progress = false;
  {
    Plan p(dir);
    c.plan(p);
    o.only = "c";
    EXPECT_NE(test::error_of([&] { run_plan(p, o); }).find("stage 'c' needs 'b.x', which has not finished"), std::string::npos);
    o.only = "";
    o.until = "b";  // the group b.*
    RunSummary s = run_plan(p, o);
    EXPECT_EQ(s.ran, 3);
    EXPECT_FALSE(p.finished("c"));
    o.until = "nothing";
    EXPECT_NE(test::error_of([&] { run_plan(p, o); }).find("--until 'nothing': no such stage"), std::string::npos);
  }
  Plan p(dir);
  c.plan(p);
  RunOptions dry;
  dry.dry_run = true;
  RunSummary d = run_plan(p, dry);
  EXPECT_EQ(d.ran, 0);
  EXPECT_EQ(d.stages.at(0).status, "would reuse");
  EXPECT_EQ(d.stages.at(3).status, "would run");
  EXPECT_NE(d.plan_text.find("reuse"), std::string::npos);
  EXPECT_EQ(c.runs["c"], 0);
  RunOptions only;
  only.progress = false;
  only.only = "b.x";
  fs::remove(p.at("b.x").dir / "done.json");
  EXPECT_EQ(run_plan(p, only).ran, 1);
  EXPECT_EQ(c.runs["b.x"], 2);
  EXPECT_EQ(c.runs["c"], 0);
}

// Stages that wait on each other's company: each returns once both are inside (a rendezvous), or
// after `patience` alone. Which threads each stage was given, and whether the two met.
struct SideBySide {
  std::mutex mu;
  std::condition_variable cv;
  int inside = 0, peak = 0;  // stages running now, and the most at once
  std::map<std::string, int> threads;
  std::map<std::string, bool> met;
  std::chrono::milliseconds patience{10000};
  bool fail_y = false;  // b.y fails once b.x is running; b.x then waits for its cancel flag
  int grown_to = 0;     // b.x grows: the threads it was handed once b.y finished

  void plan(Plan& p) {
    for (const char* n : {"a", "b.x", "b.y", "c"}) {
      Stage s{n, "1", {}, {{"n", n}}, {}, {}, {}};
      if (std::string(n) != "a") s.deps = {"a"};
      if (std::string(n) == "c") s.deps = {"b.x", "b.y"};
      s.grows = std::string(n) == "b.x";
      s.run = [this, n = std::string(n)](const StageContext& ctx) {
        std::unique_lock lk(mu);
        threads[n] = ctx.threads;
        if (n == "a" || n == "c") return json{{"from", n}};
        peak = std::max(peak, ++inside);
        cv.notify_all();
        met[n] = cv.wait_for(lk, patience, [&] { return peak == 2; });
        --inside;
        if (n == "b.y" && fail_y) fail("b.y broke");
        if (n == "b.x" && fail_y) {
          lk.unlock();
          for (int i = 0; i < 1000 && !ctx.cancel->load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          std::ofstream(ctx.stage.dir / "partial") << "half";
          if (ctx.cancel->load()) fail("b.x interrupted");
        }
        if (n == "b.x" && ctx.threads_live) {  // b.y's thread comes to it once b.y is done
          lk.unlock();
          for (int i = 0; i < 1000 && ctx.threads_live->load() < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
          grown_to = ctx.threads_live->load();
        }
        return json{{"from", n}};
      };
      p.add(std::move(s));
    }
  }
};

// Two stages at a time on two threads, quietly.
RunOptions two_jobs() {
  RunOptions o;
  o.progress = false;
  o.jobs = 2;
  o.threads = 2;
  return o;
}

TEST(PipelineRunner, IndependentStagesRunSideBySideSharingTheThreads) {
  const fs::path dir = test::tmp_dir() / "runner-jobs";
  fs::remove_all(dir);
  const RunOptions o = two_jobs();
  {
    SideBySide sb;
    Plan p(dir / "two");
    sb.plan(p);
    RunSummary s = run_plan(p, o);
    EXPECT_EQ(s.ran, 4);
    EXPECT_TRUE(sb.met["b.x"]);  // both were running at once
    EXPECT_TRUE(sb.met["b.y"]);
    EXPECT_EQ(sb.threads["a"], 2);  // alone: every thread
    EXPECT_EQ(sb.threads["b.x"], 1);  // side by side: one each
    EXPECT_EQ(sb.threads["b.y"], 1);
    EXPECT_EQ(sb.threads["c"], 2);
    EXPECT_EQ(sb.grown_to, 2);  // b.x, which grows, was handed b.y's thread when b.y finished
    ASSERT_EQ(s.stages.size(), 4u);  // the summary keeps the plan's order
    EXPECT_EQ(s.stages[3].name, "c");
    EXPECT_EQ(s.stages[3].status, "ran");
    // c started only after both of its inputs had finished.
    std::vector<std::string> order;
    read_jsonl(dir / "two" / "events.jsonl", [&](const json& j, size_t) {
      if (j["event"] == "stage_start" || j["event"] == "stage_done") order.push_back(j["event"].get<std::string>() + " " + j["stage"].get<std::string>());
    });
    const auto at = [&](const std::string& e) { return std::find(order.begin(), order.end(), e) - order.begin(); };
    EXPECT_LT(at("stage_done b.x"), at("stage_start c"));
    EXPECT_LT(at("stage_done b.y"), at("stage_start c"));
    EXPECT_LT(at("stage_start b.y"), at("stage_done b.x"));
  }
  {  // one job: one stage at a time, so neither meets the other
    SideBySide sb;
    sb.patience = std::chrono::milliseconds(200);
    Plan p(dir / "one");
    sb.plan(p);
    RunOptions one = o;
    one.jobs = 1;
    EXPECT_EQ(run_plan(p, one).ran, 4);
    EXPECT_FALSE(sb.met["b.x"]);
    EXPECT_FALSE(sb.met["b.y"]);
    EXPECT_EQ(sb.grown_to, 0);  // one job: a stage has every thread from its start, nothing to follow
  }
  RunOptions bad = o;
  bad.jobs = 65;
  Plan p(dir / "bad");
  SideBySide sb;
  sb.plan(p);
  EXPECT_NE(test::error_of([&] { run_plan(p, bad); }).find("--jobs must be in 1..64, got 65"), std::string::npos);
}

TEST(PipelineRunner, AFailureStopsTheStagesBesideItWhichKeepTheirWork) {
  const fs::path dir = test::tmp_dir() / "runner-jobs-fail";
  fs::remove_all(dir);
  const RunOptions o = two_jobs();
  {
    SideBySide sb;
    sb.fail_y = true;
    Plan p(dir);
    sb.plan(p);
    EXPECT_NE(test::error_of([&] { run_plan(p, o); }).find("b.y broke"), std::string::npos);  // the failure, not the stop
    EXPECT_TRUE(p.finished("a"));
    EXPECT_FALSE(p.finished("b.x"));
    EXPECT_FALSE(p.finished("c"));
    EXPECT_TRUE(fs::exists(p.at("b.x").dir / "partial"));  // stopped early, its work kept for the resume
    EXPECT_EQ(sb.threads.count("c"), 0u);
  }
  EXPECT_EQ(count_events(dir / "events.jsonl", "stage_failed"), 1u);
  EXPECT_EQ(count_events(dir / "events.jsonl", "stage_interrupted"), 1u);
  SideBySide sb;
  Plan p(dir);
  sb.plan(p);
  RunSummary s = run_plan(p, o);
  EXPECT_EQ(s.reused, 1);
  EXPECT_EQ(s.ran, 3);
  EXPECT_EQ(count_events(dir / "events.jsonl", "stage_resume"), 2u);
}

// Ctrl-C while a stage that does not watch for it finishes: that stage is done, the next does not start,
// and the error says so (not that its inputs did not finish).
TEST(PipelineRunner, CtrlCDuringAStageStopsBeforeTheNextOne) {
  for (int jobs : {1, 2}) {
    const fs::path dir = test::tmp_dir() / fmt::format("runner-ctrl-c-{}", jobs);
    fs::remove_all(dir);
    std::atomic<bool> cancel{false};
    Plan p(dir);
    p.add(Stage{"a", "1", {}, {}, [&](const StageContext&) {
                  cancel = true;  // the user's Ctrl-C arrives while a works on
                  return json{{"from", "a"}};
                }, {}, {}});
    p.add(Stage{"b", "1", {"a"}, {}, [](const StageContext&) { return json{{"from", "b"}}; }, {}, {}});
    RunOptions o;
    o.progress = false;
    o.jobs = jobs;
    o.cancel = &cancel;
    EXPECT_NE(test::error_of([&] { run_plan(p, o); }).find("interrupted before stage 'b'; run again to continue"),
              std::string::npos) << "jobs " << jobs;
    EXPECT_TRUE(p.finished("a"));
    EXPECT_FALSE(p.finished("b"));
  }
}

// The engine (the llama.cpp build, patches included) is part of every stage's key: a run made with other kernels
// (another summation order, a fixed bug) reruns instead of reusing their numbers.
TEST(PipelineRunner, AnotherEngineRerunsEveryStage) {
  const fs::path dir = test::tmp_dir() / "runner-engine";
  Counting c;
  RunOptions o;
  o.progress = false;
  {
    Plan p(dir, "llama.cpp 0.5.0 patches aaaa");
    c.plan(p);
    EXPECT_EQ(run_plan(p, o).ran, 4);
    EXPECT_EQ(json::parse(read_file(p.at("a").dir / "stage.json"))["engine"], "llama.cpp 0.5.0 patches aaaa");
  }
  {
    Plan same(dir, "llama.cpp 0.5.0 patches aaaa");
    c.plan(same);
    EXPECT_EQ(run_plan(same, o).reused, 4);
  }
  Plan other(dir, "llama.cpp 0.5.0 patches bbbb");
  c.plan(other);
  RunSummary s = run_plan(other, o);
  EXPECT_EQ(s.ran, 4);
  EXPECT_EQ(c.runs["a"], 2);
  EXPECT_EQ(c.runs["c"], 2);
}

// The engine this binary names is the patches of this checkout (scripts/deps.sh: the sha256 of patches/*.patch
// concatenated in name order), so a patch edited without rebuilding llama.cpp shows here, and a plan made by
// default carries it.
TEST(PipelineRunner, EngineIdNamesThisCheckoutsPatches) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(fs::path(COGUMI_REPO_DIR) / "patches"))
    if (e.path().extension() == ".patch") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  std::string all;
  for (const auto& f : files) all += read_file(f);
  EXPECT_EQ(std::string(engine_id()), "llama.cpp 0.5.0 patches " + sha256_hex(all));
  Plan p(test::tmp_dir() / "runner-engine-default");
  EXPECT_EQ(p.engine(), engine_id());
}

}  // namespace
}  // namespace cogumi
