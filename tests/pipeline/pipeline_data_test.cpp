// The pipeline's `data:` stages: config errors name the key and line; a tiny pipeline whose
// teachers and judge are a real `cogumi serve` of the nano system on a loopback port makes
// teacher examples that reach the math modifier's training set; a rerun reuses every stage without
// asking the server again; a test item planted in the teacher output is caught by decontamination
// and fails the `data.contaminated == 0` gate, and only curation and what follows it rerun.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "pipeline/config.h"
#include "pipeline/stages.h"
#include "test_util.h"

namespace cogumi {
namespace {

const char* kBase = R"(name: tinydata
threads: 0
base:
  train: {n_train: 60, n_dev: 12, n_test: 12, n_mix: 30, vocab_merges: 400, n_embd: 32, n_layer: 1, n_head: 2,
          n_ff: 64, steps: 4, batch: 4, seq_len: 256, warmup: 1}
eval: {test_limit: 4, mine_limit: 16, max_tokens: 12, parallel: 16}
failures: {k: 2, embeddings: 0}
training: {rank: 4, steps: 2, batch: 2, seq_len: 256, eval_steps: 2, patience: 0, domain_share: 0.1, replay: 0}
domains:
  math: {}
  code: {modifier: false}
router: {holdout: 0.3, epochs: 2, route_alpha: 1}  # few-step modifiers win nothing significant: the best on dev
)";

std::string data_block(const std::string& url, const std::string& extra) {
  const std::string p = (fs::path(COGUMI_REPO_DIR) / "configs" / "prompts").string();
  return fmt::format(R"(data:
  tiers:
    - {{name: base, base_url: "{0}", model: base, api: completions, template: "{1}/teacher_eval_prompt.txt", max_tokens: 48}}
    - {{name: math, base_url: "{0}", model: math, api: chat, template: "{1}/teacher_question.txt", max_tokens: 48}}
  judge: {{base_url: "{0}", model: reasoning, max_tokens: 16, threshold: 7}}
{2}gates:
  - data.kept >= 1
  - data.contaminated == 0
)", url, p, extra);
}

fs::path write_config(const fs::path& dir, const std::string& name, const std::string& text) {
  fs::create_directories(dir);
  std::ofstream(dir / name) << text;
  return dir / name;
}

// `cogumi serve` of the shipped nano system on a free loopback port, stopped (SIGTERM) at the end.
class NanoServer {
 public:
  explicit NanoServer(const fs::path& dir) {
    const fs::path models = fs::path(COGUMI_REPO_DIR) / "models";
    std::string sys = read_file(models / "nano-system.yaml");
    sys = std::regex_replace(sys, std::regex(R"((nano-[a-z]+\.(gguf|json)))"), (models / "$1").string());
    sys = std::regex_replace(sys, std::regex(R"(\nmemory:[^\n]*)"), "\nmemory: " + (dir / "sessions.db").string());
    write_file_atomic(dir / "system.yaml", sys);
    out_ = dir / "serve.out";
    pid_ = fork();
    if (pid_ == 0) {
      const std::string o = out_.string(), s = (dir / "system.yaml").string();
      if (!freopen(o.c_str(), "w", stdout) || !freopen((o + ".err").c_str(), "w", stderr)) _exit(127);
      execl(COGUMI_BIN, COGUMI_BIN, "serve", "--system", s.c_str(), "--host", "127.0.0.1", "--port", "0", (char*)nullptr);
      _exit(127);
    }
    const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+))");
    for (int i = 0; i < 600 && port_ == 0; ++i) {
      std::smatch m;
      const std::string text = fs::exists(out_) ? read_file(out_) : "";
      if (std::regex_search(text, m, listening)) port_ = std::stoi(m[1]);
      else std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  ~NanoServer() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string url() const { return fmt::format("http://127.0.0.1:{}/v1", port_); }
  std::string log() const { return fs::exists(out_.string() + ".err") ? read_file(out_.string() + ".err") : ""; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  fs::path out_;
};

size_t lines(const fs::path& f) {
  size_t n = 0;
  read_jsonl(f, [&](const json&, size_t) { ++n; });
  return n;
}

std::string status_of(const RunSummary& s, const std::string& name) {
  for (auto& st : s.stages)
    if (st.name == name) return st.status;
  return "absent";
}

json stage_result(const fs::path& work, const std::string& name) {
  const json run = json::parse(read_file(work / "run.json"));
  return json::parse(read_file(fs::path(run["stages"][name]["dir"].get<std::string>()) / "done.json"))["result"];
}

json gate(const fs::path& work, const std::string& text) {
  const json gates = json::parse(read_file(work / "gates.json"));
  for (const json& g : gates["gates"])
    if (g["gate"] == text) return g;
  ADD_FAILURE() << "no gate '" << text << "' in " << gates.dump();
  return json{{"passed", nullptr}};
}

TEST(PipelineData, ConfigErrorsNameTheKeyAndLine) {
  const fs::path dir = test::tmp_dir() / "pipeline-data-config";
  auto error_for = [&](const std::string& data) {
    const fs::path f = write_config(dir, "c.yaml", std::string(kBase) + data);
    return test::error_of([&] { PipelineConfig::load(f); });
  };
  const std::string tier = "  tiers:\n    - {base_url: 'http://127.0.0.1:1/v1', model: base}\n";
  std::string e = error_for("data:\n" + tier + "  limt: 3\n");
  EXPECT_NE(e.find("c.yaml:16: 'data.limt': unknown key"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  limit: many\n");
  EXPECT_NE(e.find("c.yaml:16: 'data.limit': expected a number"), std::string::npos) << e;
  e = error_for("data:\n  tiers:\n    - {base_url: 'http://127.0.0.1:1/v1', concurrency: 0}\n");
  EXPECT_NE(e.find("c.yaml:15"), std::string::npos) << e;
  EXPECT_NE(e.find("data.tiers[0]"), std::string::npos) << e;
  EXPECT_NE(e.find("concurrency"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  judge: {base_url: 'http://127.0.0.1:1/v1', threshold: 11}\n");
  EXPECT_NE(e.find("c.yaml:16: 'data.judge.threshold': must be in [1, 10]"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  dedup: {near: maybe}\n");
  EXPECT_NE(e.find("'data.dedup.near': expected true or false"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  pairs: {form: chat}\n");
  EXPECT_NE(e.find("c.yaml:16: 'data.pairs.form': must be instruction"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  decontaminate: {benches: {squad: x.json}}\n");
  EXPECT_NE(e.find("'data.decontaminate.benches.squad': unknown benchmark kind"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "  domains: [code]\n");  // code trains no modifier here
  EXPECT_NE(e.find("data.domains: 'code' is not a domain that trains a modifier"), std::string::npos) << e;
  e = error_for("data:\n  limit: 2\n");
  EXPECT_NE(e.find("'data.tiers': required"), std::string::npos) << e;
  e = error_for("data:\n" + tier + "gates: [data.kept >= many]\n");
  EXPECT_NE(e.find("gates[0]"), std::string::npos) << e;

  const fs::path ok = write_config(dir, "ok.yaml", std::string(kBase) + "data:\n" + tier +
                                                        "  judge: {base_url: 'http://127.0.0.1:1/v1', threshold: 8}\n"
                                                        "  pairs: {reverse: true}\n  weight: 2\n");
  const PipelineConfig c = PipelineConfig::load(ok);
  ASSERT_TRUE(c.data.enabled);
  ASSERT_EQ(c.data.tiers.size(), 1u);
  EXPECT_EQ(c.data.tiers[0].name, "tier1");
  EXPECT_EQ(c.data.judge_threshold, 8);
  EXPECT_TRUE(c.data.reverse);
  EXPECT_EQ(c.data.weight, 2);
  // The plan puts the data stages between clustering and the math modifier's training set.
  Plan plan(dir / "work");
  plan_pipeline(c, plan);
  std::vector<std::string> names;
  for (auto& s : plan.stages()) names.push_back(s.name);
  auto at = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) - names.begin(); };
  EXPECT_LT(at("cluster"), at("teach.math"));
  EXPECT_LT(at("teach.math"), at("judge.math"));
  EXPECT_LT(at("judge.math"), at("curate.math"));
  EXPECT_LT(at("curate.math"), at("trainset.math"));
  EXPECT_EQ(at("teach.code"), long(names.size()));  // no modifier, no teacher data
  const auto& deps = plan.at("trainset.math").deps;
  EXPECT_NE(std::find(deps.begin(), deps.end(), "curate.math"), deps.end());
}

TEST(PipelineData, TeacherDataFromARealServerReachesTheTrainingSetAndGatesCatchContamination) {
  const fs::path dir = test::tmp_dir() / "pipeline-data-run";
  fs::remove_all(dir);
  fs::create_directories(dir);
  NanoServer server(dir);
  ASSERT_GT(server.port(), 0) << "cogumi serve did not start: " << server.log();
  PipelineConfig cfg = PipelineConfig::load(write_config(dir, "t.yaml", std::string(kBase) + data_block(server.url(), "")));
  cfg.work_dir = dir / "work";
  RunOptions o;
  o.progress = false;

  // 1. Every stage runs; the cascade's kept examples reach the math modifier's training set.
  PipelineRun r1 = run_pipeline(cfg, o);
  for (const char* s : {"teach.math", "judge.math", "curate.math", "trainset.math", "train.math"})
    EXPECT_EQ(status_of(r1.summary, s), "ran") << s;
  const json teach = stage_result(cfg.work_dir, "teach.math");
  ASSERT_EQ(teach["tiers"].size(), 2u) << teach.dump();
  EXPECT_GE(teach["failures"].get<int>(), 8);  // a 4-step base fails nearly everything
  EXPECT_EQ(teach["tiers"][0]["asked"], teach["failures"]);
  EXPECT_EQ(teach["tiers"][1]["asked"].get<int>(),
            teach["tiers"][0]["failed"].get<int>() + teach["tiers"][0]["errors"].get<int>());
  EXPECT_GT(teach["tiers"][0]["prompt_tokens"].get<int>(), 0);
  ASSERT_GT(teach["kept"].get<int>(), 0) << teach.dump();
  const json judge = stage_result(cfg.work_dir, "judge.math");
  EXPECT_EQ(judge["examples"], teach["kept"]);
  EXPECT_EQ(judge["checked"], teach["kept"]);  // math answers: the reference check decides
  const json curate = stage_result(cfg.work_dir, "curate.math");
  ASSERT_GT(curate["kept"].get<int>(), 0) << curate.dump();
  EXPECT_EQ(curate["in"], judge["kept"]);
  EXPECT_EQ(curate["contaminated"], 0);
  const fs::path train_file = curate["train_file"].get<std::string>();
  EXPECT_EQ(lines(train_file), curate["pairs"].get<size_t>());
  bool reached = false;
  const json trainset = stage_result(cfg.work_dir, "trainset.math");
  for (const json& s : trainset["sources"])
    reached = reached || (s["what"] == "teacher data" && s["path"] == train_file.string());
  EXPECT_TRUE(reached) << trainset.dump();
  EXPECT_TRUE(gate(cfg.work_dir, "data.kept >= 1")["passed"].get<bool>());
  EXPECT_TRUE(gate(cfg.work_dir, "data.contaminated == 0")["passed"].get<bool>());
  const std::string md = read_file(cfg.work_dir / "report.md");
  EXPECT_NE(md.find("## Training data from teachers"), std::string::npos) << md;
  EXPECT_NE(md.find("failure rate closed"), std::string::npos) << md;
  EXPECT_NE(read_file(cfg.work_dir / "report.html").find("Training data from teachers"), std::string::npos);

  // 2. A rerun reuses every stage: the server is not asked again.
  const fs::path log = fs::path(teach["log"].get<std::string>());
  const size_t asked = lines(log);
  PipelineRun r2 = run_pipeline(cfg, o);
  EXPECT_EQ(r2.summary.ran, 0);
  EXPECT_EQ(status_of(r2.summary, "teach.math"), "reused");
  EXPECT_EQ(lines(log), asked);

  // 3. A test item planted in the teacher output: decontamination removes it, the gate fails, and
  // only curation and what depends on it run again.
  json kept_example;
  read_jsonl(fs::path(judge["kept_file"].get<std::string>()), [&](const json& j, size_t) {
    if (kept_example.is_null()) kept_example = j;
  });
  const std::string planted = kept_example["instruction"];
  std::ofstream(dir / "planted.jsonl") << json{{"id", "planted-1"}, {"instruction", planted}, {"output", "x"}}.dump() << "\n";
  const std::string extra = fmt::format("  decontaminate: {{benches: {{jsonl: \"{}\"}}}}\n", (dir / "planted.jsonl").string());
  cfg = PipelineConfig::load(write_config(dir, "t.yaml", std::string(kBase) + data_block(server.url(), extra)));
  cfg.work_dir = dir / "work";
  PipelineRun r3 = run_pipeline(cfg, o);
  EXPECT_EQ(status_of(r3.summary, "teach.math"), "reused");
  EXPECT_EQ(status_of(r3.summary, "judge.math"), "reused");
  EXPECT_EQ(status_of(r3.summary, "curate.math"), "ran");
  EXPECT_EQ(lines(log), asked);
  const json c3 = stage_result(cfg.work_dir, "curate.math");
  EXPECT_GE(c3["contaminated"].get<int>(), 1) << c3.dump();
  ASSERT_FALSE(c3["contaminated_records"].empty());
  EXPECT_EQ(c3["contaminated_records"][0]["item"], "planted-1");
  EXPECT_EQ(read_file(c3["train_file"].get<std::string>()).find(json(planted).dump()), std::string::npos);
  const json g = gate(cfg.work_dir, "data.contaminated == 0");
  EXPECT_FALSE(g["passed"].get<bool>()) << g.dump();
  EXPECT_TRUE(gate(cfg.work_dir, "data.kept >= 1")["passed"].get<bool>() || c3["kept"] == 0);
  EXPECT_NE(read_file(cfg.work_dir / "report.md").find("planted-1"), std::string::npos);
}

TEST(PipelineData, WithoutClustersEachBenchmarkIsOneClusterAndReversePairsJoinTheTrainingSet) {
  const fs::path dir = test::tmp_dir() / "pipeline-data-unclustered";
  fs::remove_all(dir);
  fs::create_directories(dir);
  NanoServer server(dir);
  ASSERT_GT(server.port(), 0) << "cogumi serve did not start: " << server.log();
  std::string base = kBase;
  base.replace(base.find("failures: {k: 2, embeddings: 0}"), 31, "failures: {cluster: false}");
  const std::string data = fmt::format(R"(data:
  domains: [math]
  limit: 6
  tiers:
    - {{name: math, base_url: "{}", model: math, api: chat, template: "{}/teacher_question.txt", max_tokens: 48}}
  pairs: {{reverse: true, form: eval}}
  weight: 3
)", server.url(), (fs::path(COGUMI_REPO_DIR) / "configs" / "prompts").string());
  PipelineConfig cfg = PipelineConfig::load(write_config(dir, "u.yaml", base + data));
  cfg.work_dir = dir / "work";
  RunOptions o;
  o.progress = false;
  o.until = "trainset.math";
  const PipelineRun r = run_pipeline(cfg, o);
  EXPECT_EQ(status_of(r.summary, "cluster"), "absent");
  EXPECT_EQ(status_of(r.summary, "judge.math"), "absent");
  Plan plan(cfg.work_dir);
  plan_pipeline(cfg, plan);
  const json teach = plan.result("teach.math");
  EXPECT_EQ(teach["failures"], 6);  // data.limit
  EXPECT_EQ(teach["tiers"][0]["asked"], 6);
  const std::string clusters = read_file(plan.at("teach.math").dir / "clusters.jsonl");
  EXPECT_NE(clusters.find("gsm8k failures (not clustered)"), std::string::npos) << clusters;
  const json curate = plan.result("curate.math");
  EXPECT_EQ(curate["from"], "teach.math");
  EXPECT_EQ(curate["forward"], curate["kept"]);
  EXPECT_EQ(curate["reverse"], curate["kept"]);
  // form: eval: forward pairs as the eval asked the failure (the mined failures' form), reverse ones after.
  const auto pairs = load_jsonl(curate["train_file"].get<std::string>());
  ASSERT_EQ(pairs.size(), curate["pairs"].get<size_t>());
  ASSERT_FALSE(pairs.empty()) << teach.dump();
  EXPECT_EQ(pairs.front()["prompt"].get<std::string>().rfind("Question: ", 0), 0u) << pairs.front().dump();
  EXPECT_EQ(pairs.front()["completion"].get<std::string>().rfind(" ", 0), 0u) << pairs.front().dump();
  EXPECT_EQ(pairs.back()["direction"], "reverse");
  EXPECT_TRUE(pairs.back().contains("instruction"));
  bool found = false;
  const json trainset = plan.result("trainset.math");
  for (const json& s : trainset["sources"])
    if (s["what"] == "teacher data") found = s["weight"] == 3.0 && s["path"] == curate["train_file"];
  EXPECT_TRUE(found) << trainset.dump() << curate.dump();
}

}  // namespace
}  // namespace cogumi
