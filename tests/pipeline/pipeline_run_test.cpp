// `cogumi run` end to end on a miniature: a nano base trained from nothing in a few steps, every
// stage run once, then reused; a changed gate or rank reruns only what depends on it; `cogumi
// gates` exits 1 when a gate fails; the report renders its charts in headless Chromium; the
// shipped configs plan cleanly (the 8B one names the files a user must provide).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <set>

#include "pipeline/config.h"
#include "pipeline/stages.h"
#include "test_util.h"
#include "train/trainer.h"

namespace cogumi {
namespace {

const char* kTiny = R"(name: tiny
threads: 0
base:
  train: {n_train: 60, n_dev: 12, n_test: 12, n_mix: 30, vocab_merges: 400, n_embd: 32, n_layer: 1, n_head: 2,
          n_ff: 64, steps: 4, batch: 4, seq_len: 256, warmup: 1}
eval: {test_limit: 6, mine_limit: 8, max_tokens: 12, parallel: 16}
failures: {k: 2, embeddings: 0}
training: {rank: 4, steps: 3, batch: 2, seq_len: 256, eval_steps: 2, patience: 1, domain_share: 0.1, replay: 0}
domains:
  math: {}
  code: {}
  reasoning: {}
  automation: {}
router: {holdout: 0.3, epochs: 2, route_alpha: 1}  # 3-step modifiers win nothing significant: the best on dev, as before
gates:
  - every other domain >= base - 100
  - size_mb <= 1000
  - ece <= 1
)";

struct Cmd {
  int status = -1;
  std::string out;
};
Cmd run_cmd(const std::string& cmd) {
  Cmd r;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return r;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) r.out.append(buf, n);
  const int st = pclose(f);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return r;
}

std::set<std::string> ran(const RunSummary& s) {
  std::set<std::string> out;
  for (auto& st : s.stages)
    if (st.status == "ran") out.insert(st.name);
  return out;
}

// Events of the last run in events.jsonl (after its run_start).
std::vector<json> last_run_events(const fs::path& f) {
  std::vector<json> ev;
  read_jsonl(f, [&](const json& j, size_t) {
    if (j["event"] == "run_start") ev.clear();
    ev.push_back(j);
  });
  return ev;
}

std::string chromium() {
  for (const char* name : {"chromium", "chromium-browser", "google-chrome"}) {
    Cmd c = run_cmd(fmt::format("command -v {}", name));
    if (c.status == 0 && !c.out.empty()) return c.out.substr(0, c.out.find('\n'));
  }
  return "";
}

// Renders the report in headless Chromium with a probe appended that measures every chart as laid
// out; returns the probe's line "svgs=N sized=M bars=B".
std::string rendered_charts(const fs::path& html) {
  const std::string browser = chromium();
  if (browser.empty()) return "no chromium (apt-get install -y chromium)";
  const fs::path probe = html.parent_path() / "probe.html";
  std::string page = read_file(html);
  page.insert(page.rfind("</body>"),
              "<script>window.addEventListener('load',()=>{const s=[...document.querySelectorAll('svg')];"
              "const sized=s.filter(e=>{const r=e.getBoundingClientRect();return r.width>50&&r.height>50;}).length;"
              "const bars=[...document.querySelectorAll('svg rect.bar, svg rect.cell, svg polyline')].filter(e=>{"
              "const b=e.getBBox();return b.width>0&&b.height>0;}).length;"
              "document.body.setAttribute('data-probe','svgs='+s.length+' sized='+sized+' bars='+bars);});</script>");
  write_file_atomic(probe, page);
  Cmd c = run_cmd(fmt::format("timeout 120 '{}' --headless --no-sandbox --disable-gpu --window-size=1200,3000 "
                              "--virtual-time-budget=2000 --dump-dom 'file://{}'", browser, probe.string()));
  const size_t at = c.out.find("data-probe=\"");
  if (at == std::string::npos) return "no probe in the DOM: " + c.out.substr(0, 300);
  return c.out.substr(at + 12, c.out.find('"', at + 12) - at - 12);
}

TEST(PipelineRun, TinyEndToEndThenReusedThenOnlyWhatChanged) {
  const fs::path dir = test::tmp_dir() / "pipeline-run";
  fs::create_directories(dir);
  std::ofstream(dir / "tiny.yaml") << kTiny;
  PipelineConfig cfg = PipelineConfig::load(dir / "tiny.yaml");
  cfg.work_dir = dir / "work";
  RunOptions o;
  o.progress = false;

  // 1. Every stage runs.
  PipelineRun r1 = run_pipeline(cfg, o);
  ASSERT_EQ(r1.summary.stages.size(), 28u);
  EXPECT_EQ(r1.summary.ran, 28);
  for (const char* f : {"report.html", "report.md", "gates.json", "system.yaml", "run.json"})
    EXPECT_TRUE(fs::exists(cfg.work_dir / f)) << f;
  const json report = json::parse(read_file(cfg.work_dir / "report.json"));
  EXPECT_EQ(report["modifiers"].size(), 4u);
  EXPECT_GT(report["failures"]["counts"]["math"].get<int>(), 0);  // a 4-step base fails a lot
  EXPECT_GT(report["modifiers"]["code"]["curve"]["loss"].size(), 0u);
  EXPECT_EQ(report["router"]["heldout"]["choices"].size(), 4u);
  EXPECT_EQ(report["base_accuracy"]["reasoning"]["n"].get<int>(), 6);
  // Each domain's route chosen on its dev split (12 items): the base and the 4 modifiers measured there, and the
  // system file has a choice for each domain routed to a modifier, with that modifier's adapter.
  const json& rc = report["route_choice"];
  ASSERT_TRUE(rc.contains("dev_accuracy")) << rc.dump();
  EXPECT_EQ(rc["dev_accuracy"].size(), 5u);
  EXPECT_EQ(rc["dev_accuracy"]["base"]["math"]["n"].get<int>(), 12);
  const std::string sys = read_file(cfg.work_dir / "system.yaml");
  for (auto& [d, route] : rc["routes"].items()) {
    if (route == "base") continue;
    const std::string adapter = report["modifiers"][route.get<std::string>()]["train"]["adapter"].get<std::string>();
    EXPECT_NE(sys.find(fmt::format("  {}: {{adapter: \"{}\"", d, adapter)), std::string::npos) << d << "\n" << sys;
  }
  EXPECT_NE(read_file(cfg.work_dir / "report.html").find("Routes chosen on the dev splits"), std::string::npos);
  // The router's confidence calibrated on half its held-out queries, measured on the other half.
  ASSERT_TRUE(report["calibration"].contains("ece")) << report["calibration"].dump();
  EXPECT_GT(report["calibration"]["temperature"].get<double>(), 0);
  EXPECT_GE(report["calibration"]["n_measured"].get<int>(), 2);

  // 2. A second run reuses every stage: no stage starts (the event log says so).
  PipelineRun r2 = run_pipeline(cfg, o);
  EXPECT_EQ(r2.summary.ran, 0);
  EXPECT_EQ(r2.summary.reused, 28);
  size_t reused = 0;
  for (const json& e : last_run_events(cfg.work_dir / "events.jsonl")) {
    EXPECT_NE(e["event"], "stage_start") << e.dump();
    EXPECT_NE(e["event"], "stage_resume") << e.dump();
    reused += e["event"] == "stage_reused";
  }
  EXPECT_EQ(reused, 28u);
  // A dry run says the same before anything runs, and `cogumi run` (the main job's command) reuses
  // every stage and prints the per-domain table with 95% intervals, the gates and the stage times.
  RunOptions dry = o;
  dry.dry_run = true;
  for (auto& st : run_pipeline(cfg, dry).summary.stages) EXPECT_EQ(st.status, "would reuse") << st.name;
  Cmd cli = run_cmd(fmt::format("'{}' run '{}' --dir '{}' -q", COGUMI_BIN, (dir / "tiny.yaml").string(), cfg.work_dir.string()));
  EXPECT_EQ(cli.status, 0) << cli.out;
  EXPECT_NE(cli.out.find("0 stages ran, 28 reused"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("| reasoning | 6 |"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("[95% CI]"), std::string::npos) << cli.out;
  EXPECT_NE(cli.out.find("3 of 3 gates passed"), std::string::npos) << cli.out;
  const std::string md = read_file(cfg.work_dir / "report.md");
  EXPECT_NE(md.find("## Time per stage"), std::string::npos) << md;
  EXPECT_NE(md.find("| train.math |"), std::string::npos) << md;
  // The calibration the report shows is the router's (the answers' is `cogumi router calibrate`'s), and it says so.
  EXPECT_NE(md.find("Router calibration (its confidence in the route): ECE "), std::string::npos) << md;
  EXPECT_NE(read_file(cfg.work_dir / "report.html").find("<h2>Router calibration</h2>"), std::string::npos);

  // 2b. An evaluation interrupted halfway (no done.json, half its items written): the next run resumes
  //     it in its directory, keeps the items it had, and reuses everything downstream (same key).
  const fs::path eval_dir = json::parse(read_file(cfg.work_dir / "run.json"))["stages"]["eval_base"]["dir"].get<std::string>();
  fs::remove(eval_dir / "done.json");
  const fs::path items = eval_dir / "run" / "items.jsonl";
  const std::string all = read_file(items);
  size_t cut = 0;
  for (int i = 0; i < 10; ++i) cut = all.find('\n', cut) + 1;
  write_file_atomic(items, all.substr(0, cut));
  PipelineRun r2b = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r2b.summary), (std::set<std::string>{"eval_base"}));
  size_t resumed = 0;
  for (const json& e : last_run_events(cfg.work_dir / "events.jsonl")) resumed += e["event"] == "stage_resume";
  EXPECT_EQ(resumed, 1u);
  EXPECT_EQ(load_jsonl(items).size(), 24u);  // 10 kept + 14 redone
  EXPECT_EQ(read_file(items).substr(0, cut), all.substr(0, cut));

  // 2c. A training stage interrupted with a checkpoint another run wrote (older code, another device: other
  //     rounding): it trains afresh, as it first did, instead of failing on every rerun.
  const json stages = json::parse(read_file(cfg.work_dir / "run.json"))["stages"];
  const fs::path train_dir = stages["train.math"]["dir"].get<std::string>();
  const std::string adapter = read_file(train_dir / "modifier.gguf");
  {
    TrainOptions other;
    other.model = json::parse(read_file(fs::path(stages["base"]["dir"].get<std::string>()) / "done.json"))["result"]["model"]
                      .get<std::string>();
    const fs::path data = dir / "other-run.jsonl";
    std::ofstream(data) << "{\"prompt\": \"1+1=\", \"completion\": \" 2\"}\n{\"prompt\": \"2+2=\", \"completion\": \" 4\"}\n";
    other.data = {{data}};
    other.out = dir / "other-run.gguf";
    other.lora.rank = 4;
    other.max_steps = 3;
    other.progress = false;
    std::atomic<bool> cancel{true};  // a checkpoint after the first step
    other.cancel = &cancel;
    ASSERT_TRUE(train(other).interrupted);
    fs::remove(train_dir / "done.json");
    fs::copy_file(dir / "other-run.gguf.ckpt.gguf", train_dir / "modifier.gguf.ckpt.gguf", fs::copy_options::overwrite_existing);
  }
  PipelineRun r2c = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r2c.summary), (std::set<std::string>{"train.math"}));
  EXPECT_FALSE(read_file(train_dir / "modifier.gguf.ckpt.gguf") == read_file(dir / "other-run.gguf.ckpt.gguf"));
  EXPECT_TRUE(read_file(train_dir / "modifier.gguf.ckpt.gguf.other-run") == read_file(dir / "other-run.gguf.ckpt.gguf"))
      << "the other run's checkpoint is kept aside";
  EXPECT_TRUE(read_file(train_dir / "modifier.gguf") == adapter) << "trained afresh, the same adapter as the first run";

  // 3. The gates pass: `cogumi gates` exits 0 and prints each gate with its values.
  Cmd ok = run_cmd(fmt::format("'{}' gates '{}'", COGUMI_BIN, cfg.work_dir.string()));
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("PASS  size_mb <= 1000"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("3 of 3 gates passed"), std::string::npos) << ok.out;

  // 4. A gate that fails: only gates and report rerun; `cogumi gates` exits 1 naming it.
  cfg.gates.push_back(parse_gate("size_mb <= 0.01", cfg.domain_names()));
  PipelineRun r3 = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r3.summary), (std::set<std::string>{"gates", "report"}));
  Cmd bad = run_cmd(fmt::format("'{}' gates '{}'", COGUMI_BIN, cfg.work_dir.string()));
  EXPECT_EQ(bad.status, 1) << bad.out;
  EXPECT_NE(bad.out.find("FAIL  size_mb <= 0.01"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("3 of 4 gates passed"), std::string::npos) << bad.out;
  Cmd none = run_cmd(fmt::format("'{}' gates '{}'", COGUMI_BIN, dir.string()));
  EXPECT_EQ(none.status, 1);
  EXPECT_NE(none.out.find("has no gates.json"), std::string::npos) << none.out;

  // 5. One modifier's rank: that modifier and what follows it, nothing else (the routes are chosen among the
  //    modifiers, so they and the router follow every modifier; the others' dev evaluations are reused).
  const json before = json::parse(read_file(cfg.work_dir / "run.json"));
  for (auto& d : cfg.domains)
    if (d.name == "automation") d.train.rank = 8;
  PipelineRun r4 = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r4.summary),
            (std::set<std::string>{"train.automation", "eval.automation", "dev.automation", "routes", "router", "calibrate",
                                   "eval_system", "gates", "report"}));
  const json after = json::parse(read_file(cfg.work_dir / "run.json"));
  EXPECT_EQ(after["stages"]["train.math"]["dir"], before["stages"]["train.math"]["dir"]);
  EXPECT_NE(after["stages"]["train.automation"]["dir"], before["stages"]["train.automation"]["dir"]);

  // 6. The report as a user sees it: every chart laid out with a size, bars and curves drawn.
  //    Charts: accuracy, failure types, 4 loss curves, router confusion matrix, reliability diagram.
  const std::string probe = rendered_charts(cfg.work_dir / "report.html");
  int svgs = 0, sized = 0, bars = 0;
  ASSERT_EQ(std::sscanf(probe.c_str(), "svgs=%d sized=%d bars=%d", &svgs, &sized, &bars), 3) << probe;
  EXPECT_EQ(svgs, 8) << probe;
  EXPECT_EQ(sized, svgs) << probe;
  // 4 domains x 3 bars (drawn at least 1px for 0%), the failure types, 16 confusion cells, 4 curves.
  EXPECT_GE(bars, 12 + 16 + 4) << probe;
  const std::string html = read_file(cfg.work_dir / "report.html");
  EXPECT_NE(html.find("FAIL"), std::string::npos);
  EXPECT_NE(html.find("McNemar p"), std::string::npos);
}

TEST(PipelineRun, ShippedConfigsPlan) {
  const fs::path repo = COGUMI_REPO_DIR;
  const fs::path dir = test::tmp_dir() / "pipeline-dry";
  // The default: the shipped base exists, the curriculum is a stage; nothing is missing.
  Cmd nano = run_cmd(fmt::format("'{}' run '{}' --dry-run --dir '{}'", COGUMI_BIN, (repo / "configs/nano.yaml").string(),
                                 (dir / "nano").string()));
  EXPECT_EQ(nano.status, 0) << nano.out;
  for (const char* s : {"base ", "data ", "mine ", "cluster ", "train.math ", "router ", "eval_system ", "report "})
    EXPECT_NE(nano.out.find(s), std::string::npos) << s << "\n" << nano.out;
  EXPECT_FALSE(fs::exists(dir / "nano" / "events.jsonl"));  // a dry run runs nothing
  // The long variant (scripts/run.sh --full) plans in the same work directory and shares the curriculum,
  // the base's evaluation and the mined failures with the default (both mine 2,400 items per domain; it trains longer).
  PipelineConfig def = PipelineConfig::load(repo / "configs/nano.yaml"), full = PipelineConfig::load(repo / "configs/nano-full.yaml");
  EXPECT_EQ(def.work_dir, full.work_dir);
  EXPECT_GT(full.domain("math").train.steps, def.domain("math").train.steps);
  Plan pd(dir / "keys"), pf(dir / "keys");
  plan_pipeline(def, pd);
  plan_pipeline(full, pf);
  for (const char* st : {"base", "data", "eval_base", "mine"}) EXPECT_EQ(pd.at(st).key, pf.at(st).key) << st;
  for (const char* st : {"train.math", "eval.math", "eval_system", "report"}) EXPECT_NE(pd.at(st).key, pf.at(st).key) << st;
  EXPECT_FALSE(pd.has("train.code"));
  EXPECT_FALSE(pf.has("train.code"));
  // --full trains each modifier as the shipped models/nano-{math,reasoning,automation}.gguf were trained (the H200 loop
  // chosen on dev, its stage records in bench/results/nano-loop-gpu/session20/).
  for (const char* m : {"math", "reasoning", "automation"}) {
    const fs::path rec = repo / fmt::format("bench/results/nano-loop-gpu/session20/train-{}.stage.json", m);
    const json want = json::parse(std::ifstream(rec))["settings"]["modifier"];
    const json got = full.domain(m).train.to_json();
    for (auto& [k, v] : want.items()) {
      ASSERT_TRUE(got.contains(k)) << m << " " << k;
      if (k == "lr") EXPECT_NEAR(got[k].get<double>(), v.get<double>(), 1e-9) << m;  // recorded from a float
      else EXPECT_EQ(got[k], v) << m << " " << k;
    }
  }
  EXPECT_EQ(full.mine_limit, 2400u);
  // The curriculum is the one the shipped base was trained on (its copying items too: the modifiers' replay mix is the
  // base's), and a change to it (n_copy) regenerates the data and all that reads it, not the base.
  const json recipe = json::parse(std::ifstream(repo / "models/nano-base.json"));
  json want = recipe.at("curriculum");
  want["seed"] = recipe.at("seed");
  EXPECT_EQ(def.curriculum.to_json(), want) << "configs/nano.yaml's curriculum vs models/nano-base.json";
  EXPECT_EQ(full.curriculum.to_json(), want) << "configs/nano-full.yaml's curriculum vs models/nano-base.json";
  PipelineConfig nocopy = def;
  nocopy.curriculum.n_copy = def.curriculum.n_copy == 0 ? 100 : 0;
  Plan pn(dir / "keys");
  plan_pipeline(nocopy, pn);
  EXPECT_EQ(pn.at("base").key, pd.at("base").key);
  for (const char* st : {"data", "eval_base", "mine", "train.math", "report"}) EXPECT_NE(pn.at(st).key, pd.at(st).key) << st;
  PipelineConfig choice = def;  // the option-lookup items likewise
  choice.curriculum.n_choice = def.curriculum.n_choice == 0 ? 100 : 0;
  Plan pc(dir / "keys");
  plan_pipeline(choice, pc);
  EXPECT_EQ(pc.at("base").key, pd.at("base").key);
  for (const char* st : {"data", "eval_base", "mine", "train.math", "report"}) EXPECT_NE(pc.at(st).key, pd.at(st).key) << st;
  // Failures are mined past the items the base trained on (the curriculum's first n_mix of each domain), unless the
  // config says otherwise.
  EXPECT_EQ(pd.at("mine").settings.at("skip"), def.curriculum.n_mix);
  EXPECT_EQ(def.mine_skip_items(), size_t(def.curriculum.n_mix));
  PipelineConfig noskip = def;
  noskip.mine_skip = 0;
  EXPECT_EQ(noskip.mine_skip_items(), 0u);
  PipelineConfig allseen = def;  // the base's mix took every training item: nothing unseen to skip to
  allseen.curriculum.n_mix = allseen.curriculum.n_train;
  EXPECT_EQ(allseen.mine_skip_items(), 0u);
  EXPECT_EQ(items_in_base_mix(3000, 12000), 3000u);  // the rule `cogumi nano loop` applies to a curriculum's manifest
  EXPECT_EQ(items_in_base_mix(12000, 12000), 0u);
  Plan ps(dir / "keys");
  plan_pipeline(noskip, ps);
  EXPECT_FALSE(ps.at("mine").settings.contains("skip"));
  EXPECT_NE(ps.at("mine").key, pd.at("mine").key);
  // The 8B setup: the plan prints, then the files the user must provide are named, exit 1.
  Cmd llama = run_cmd(fmt::format("'{}' run '{}' --dry-run --dir '{}'", COGUMI_BIN,
                                  (repo / "configs/llama-3.1-8b.yaml").string(), (dir / "llama").string()));
  EXPECT_EQ(llama.status, 1) << llama.out;
  EXPECT_NE(llama.out.find("train.code "), std::string::npos) << llama.out;
  for (const char* f : {"Meta-Llama-3.1-8B-Instruct-F16.gguf", "mbpp_test.jsonl", "mbpp_train.jsonl", "data/bbh",
                        "BFCL_v3_simple.json"})
    EXPECT_NE(llama.out.find(f), std::string::npos) << f << "\n" << llama.out;
  EXPECT_NE(llama.out.find("input files are missing"), std::string::npos) << llama.out;
  EXPECT_EQ(llama.out.find("gsm8k/test.jsonl"), std::string::npos) << "shipped files are not missing\n" << llama.out;
  // Its settings are the plan's.
  PipelineConfig c = PipelineConfig::load(repo / "configs/llama-3.1-8b.yaml");
  EXPECT_EQ(c.domain("code").train.rank, 128);
  EXPECT_EQ(c.domain("reasoning").train.rank, 112);
  EXPECT_EQ(c.domain("automation").train.rank, 96);
  EXPECT_DOUBLE_EQ(c.domain("math").train.lr, 3e-6);
  EXPECT_EQ(c.domain("math").train.patience, 3);
  EXPECT_DOUBLE_EQ(c.domain("math").train.val_split, 0.05);
}

}  // namespace
}  // namespace cogumi
