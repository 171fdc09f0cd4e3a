// The pipeline's compress stages (issue 15, "The pipeline") on a miniature: a nano base trained
// from nothing in a few steps, one modifier, then the base quantized with an importance matrix from
// the curriculum, the modifier's rank cut, the compressed system measured and evaluated, the base
// packed; gates on compress.*; a rerun reuses every stage and a changed quantize type reruns only
// what depends on it; bad compress: keys are errors naming the line.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <set>

#include "engine/model.h"
#include "pipeline/config.h"
#include "pipeline/stages.h"
#include "test_util.h"

namespace cogumi {
namespace {

const char* kHead = R"(name: tinyc
threads: 0
base:
  train: {n_train: 60, n_dev: 12, n_test: 12, n_mix: 30, vocab_merges: 400, n_embd: 32, n_layer: 1, n_head: 2,
          n_ff: 64, steps: 4, batch: 4, seq_len: 256, warmup: 1}
eval: {test_limit: 6, mine_limit: 8, max_tokens: 12, parallel: 16}
failures: {cluster: false}
training: {rank: 4, steps: 3, batch: 2, seq_len: 256, eval_steps: 2, patience: 1, domain_share: 0.1, replay: 0}
domains:
  math: {}
  code: {modifier: false}
router: {holdout: 0.3, epochs: 2, route_alpha: 1}  # few-step modifiers win nothing significant: the best on dev
)";

std::string config(const std::string& quant, const std::string& gates) {
  return std::string(kHead) + fmt::format(R"(compress:
  quantize: {}
  imatrix: curriculum
  tensor_types: {{output: q8_0}}
  lora_rank: 2
  pack: true
  measure: {{ctx: 64, chunks: 4}}
  calib: {{ctx: 64, chunks: 4}}
gates:
{})", quant, gates);
}

const char* kGates = "  - compress.kld <= 5\n  - compress.agreement >= 0\n  - compress.accuracy_delta >= -100\n";
const char* kImpossible = "  - compress.kld < 0\n";

int run_status(const std::string& cmd, std::string* out = nullptr) {
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return -1;
  char buf[4096];
  std::string o;
  for (size_t n; (n = fread(buf, 1, sizeof buf, f)) > 0;) o.append(buf, n);
  const int st = pclose(f);
  if (out) *out = o;
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::set<std::string> ran(const RunSummary& s) {
  std::set<std::string> out;
  for (auto& st : s.stages)
    if (st.status == "ran") out.insert(st.name);
  return out;
}

PipelineConfig load(const fs::path& dir, const std::string& text) {
  std::ofstream(dir / "tinyc.yaml") << text;
  PipelineConfig cfg = PipelineConfig::load(dir / "tinyc.yaml");
  cfg.work_dir = dir / "work";
  return cfg;
}

TEST(PipelineCompress, QuantizesMeasuresGatesAndReuses) {
  const fs::path dir = test::tmp_dir() / "pipeline-compress";
  fs::create_directories(dir);
  RunOptions o;
  o.progress = false;

  // 1. Everything runs; an impossible compress gate fails, so the compressed system is not handed over.
  PipelineConfig cfg = load(dir, config("q4_k_m", std::string(kGates) + kImpossible));
  PipelineRun r1 = run_pipeline(cfg, o);
  const std::set<std::string> all = ran(r1.summary);
  for (const char* s : {"compress.imatrix", "compress.quantize", "compress.lora", "compress.eval", "compress.pack"})
    EXPECT_TRUE(all.count(s)) << s;
  EXPECT_FALSE(all.count("compress.prune"));
  const json rep = json::parse(read_file(cfg.work_dir / "report.json"));
  ASSERT_TRUE(rep.contains("compress")) << rep.dump().substr(0, 400);
  const json& c = rep["compress"];
  const fs::path q = c["model"].get<std::string>();
  EXPECT_EQ(q.filename(), "base.q4_k_m.gguf");
  EXPECT_LT(c["bytes"].get<double>(), c["base_bytes"].get<double>());
  EXPECT_GT(c["imatrix"]["entries"].get<int>(), 0);
  EXPECT_GT(c["quantize"]["imatrix_entries"].get<int>(), 0);
  EXPECT_EQ(c["lora"]["adapters"]["math"]["rank"].get<int>(), 2);
  EXPECT_LT(c["lora"]["adapters"]["math"]["bytes"].get<double>(), c["lora"]["adapters"]["math"]["bytes_in"].get<double>());
  const double kld = c["kld"]["kld_mean"].get<double>(), agree = c["kld"]["agreement"].get<double>();
  EXPECT_TRUE(std::isfinite(kld) && kld > 0) << kld;  // a 4-bit base differs from its F16 source
  EXPECT_GE(c["kld"]["kld_p99"].get<double>(), c["kld"]["kld_median"].get<double>());
  EXPECT_GT(agree, 0.0);
  EXPECT_LE(agree, 1.0);
  EXPECT_GT(c["kld"]["ppl_ratio"].get<double>(), 0.0);
  EXPECT_EQ(c["eval"]["against"], "routed");
  EXPECT_EQ(c["eval"]["accuracy"]["math"]["n"].get<int>(), 6);
  EXPECT_TRUE(c["eval"]["delta"].contains("code"));
  EXPECT_LT(c["pack"]["bytes"].get<double>(), c["pack"]["raw_bytes"].get<double>());
  // The quantized base loads in llama.cpp with the base's vocabulary, and is quantized.
  engine_init();
  auto m = Model::load(q);
  auto b = Model::load(rep["base"]["model"].get<std::string>());
  EXPECT_EQ(m->n_vocab(), b->n_vocab());
  std::string info;
  ASSERT_EQ(run_status(fmt::format("{} info '{}'", COGUMI_BIN, q.string()), &info), 0) << info;
  EXPECT_NE(info.find("q8_0"), std::string::npos) << info;  // output.weight, by the override
  // The numbers are in the report, and the gates see them.
  const std::string md = read_file(cfg.work_dir / "report.md"), html = read_file(cfg.work_dir / "report.html");
  EXPECT_NE(md.find("## Compression"), std::string::npos);
  EXPECT_NE(md.find(fmt::format("{:.5f}", kld)), std::string::npos) << md;
  EXPECT_NE(md.find(fmt::format("{:.2f}%", 100 * agree)), std::string::npos) << md;
  EXPECT_NE(html.find("<h2>Compression</h2>"), std::string::npos);
  EXPECT_NE(html.find("not handed over: gate 'compress.kld &lt; 0' failed"), std::string::npos);
  const json gates = json::parse(read_file(cfg.work_dir / "gates.json"));
  EXPECT_EQ(gates["metrics"]["scalars"]["compress.kld"].get<double>(), kld);
  EXPECT_TRUE(gates["gates"][0]["passed"].get<bool>()) << gates.dump();
  EXPECT_FALSE(gates["gates"][3]["passed"].get<bool>());
  std::string out;
  EXPECT_EQ(run_status(fmt::format("{} gates '{}'", COGUMI_BIN, cfg.work_dir.string()), &out), 1) << out;
  EXPECT_NE(out.find("FAIL  compress.kld < 0"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(cfg.work_dir / "system.compressed.yaml"));

  // 2. A rerun reuses every stage.
  PipelineRun r2 = run_pipeline(cfg, o);
  EXPECT_EQ(r2.summary.ran, 0);
  EXPECT_EQ(size_t(r2.summary.reused), r2.summary.stages.size());

  // 3. Possible gates only: the gates and the report rerun, and the compressed system is handed over.
  cfg = load(dir, config("q4_k_m", kGates));
  PipelineRun r3 = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r3.summary), (std::set<std::string>{"gates", "report"}));
  EXPECT_EQ(run_status(fmt::format("{} gates '{}'", COGUMI_BIN, cfg.work_dir.string()), &out), 0) << out;
  ASSERT_TRUE(fs::exists(cfg.work_dir / "system.compressed.yaml"));
  EXPECT_NE(read_file(cfg.work_dir / "system.compressed.yaml").find("base.q4_k_m.gguf"), std::string::npos);

  // 4. Another type reruns what depends on the quantized base, not the imatrix or the modifier's shrink.
  cfg = load(dir, config("q8_0", kGates));
  PipelineRun r4 = run_pipeline(cfg, o);
  EXPECT_EQ(ran(r4.summary),
            (std::set<std::string>{"compress.quantize", "compress.eval", "compress.pack", "gates", "report"}));
  const json rep8 = json::parse(read_file(cfg.work_dir / "report.json"));
  EXPECT_LT(rep8["compress"]["kld"]["kld_mean"].get<double>(), kld);  // 8 bits lose less than 4
}

// A pruned base (then recovered) is the compressed system alone: the modifiers were trained on the
// unpruned shapes. Its accuracy delta is against the base; the report has the recovery.
TEST(PipelineCompress, PrunedAndRecoveredBaseStandsAlone) {
  const fs::path dir = test::tmp_dir() / "pipeline-compress-prune";
  fs::create_directories(dir);
  PipelineConfig cfg = load(dir, std::string(kHead) + R"(compress:
  prune: {level: 0.25, recover: {steps: 2, batch: 2, seq_len: 64, rank: 2}}
  measure: {ctx: 64, chunks: 4}
  calib: {ctx: 64, chunks: 4}
gates:
  - compress.accuracy_delta >= -100
  - compress.agreement >= 0
)");
  RunOptions o;
  o.progress = false;
  PipelineRun r = run_pipeline(cfg, o);
  const std::set<std::string> all = ran(r.summary);
  EXPECT_TRUE(all.count("compress.prune") && all.count("compress.eval"));
  for (const char* s : {"compress.imatrix", "compress.quantize", "compress.lora", "compress.pack"}) EXPECT_FALSE(all.count(s)) << s;
  const json c = json::parse(read_file(cfg.work_dir / "report.json"))["compress"];
  const json& p = c["prune"]["prune"];
  EXPECT_EQ(p["recovery"]["steps"].get<int>(), 2) << p.dump();
  EXPECT_LT(p["layer_params_after"].get<double>(), p["layer_params_before"].get<double>());
  EXPECT_TRUE(p.contains("quality_unrecovered")) << p.dump();
  EXPECT_EQ(c["eval"]["against"], "base");
  EXPECT_TRUE(c.contains("note"));
  EXPECT_GT(c["kld"]["kld_mean"].get<double>(), 0.0);
  const std::string sys = read_file(cfg.work_dir / "system.compressed.yaml");  // its gates passed
  EXPECT_EQ(sys.find("router"), std::string::npos) << sys;
  EXPECT_EQ(sys.find("adapter"), std::string::npos) << sys;
  EXPECT_NE(read_file(cfg.work_dir / "report.md").find("recovered (lora 2 steps"), std::string::npos)
      << read_file(cfg.work_dir / "report.md");
}

TEST(PipelineCompress, BadKeysNameTheLine) {
  const fs::path dir = test::tmp_dir() / "pipeline-compress-bad";
  fs::create_directories(dir);
  auto err = [&](const std::string& compress) {
    std::ofstream(dir / "bad.yaml") << std::string(kHead) + "compress:\n" + compress;
    return test::error_of([&] { PipelineConfig::load(dir / "bad.yaml"); });
  };
  const int line = 14;  // the line after "compress:" (kHead has 12 lines)
  std::string e = err("  quantise: q4_k_m\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.quantise': unknown key", line)), std::string::npos) << e;
  e = err("  quantize: q4_k_m\n  lora_rank: two\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.lora_rank': expected a number", line + 1)), std::string::npos) << e;
  e = err("  quantize: q5_z\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.quantize': unknown type 'q5_z'", line)), std::string::npos) << e;
  e = err("  quantize: q4_k_m\n  tensor_types: {output: q9_k}\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.tensor_types.output': unknown tensor type", line + 1)), std::string::npos) << e;
  e = err("  prune: {level: 0.95}\n");
  EXPECT_NE(e.find("'compress.prune.level': must be in (0, 0.9]"), std::string::npos) << e;
  e = err("  prune:\n    level: 0.2\n    recover: {steps: 0}\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.prune.recover.steps': must be in [1, ", line + 2)), std::string::npos) << e;
  e = err("  prune:\n    level: 0.2\n    recover: {epochs: 1}\n");
  EXPECT_NE(e.find(fmt::format("bad.yaml:{}: 'compress.prune.recover.epochs': unknown key", line + 2)), std::string::npos) << e;
  e = err("  prune: {level: 0.2}\n  lora_rank: 8\n");
  EXPECT_NE(e.find("a pruned base takes none of the modifiers"), std::string::npos) << e;
  e = err("  pack: maybe\n");
  EXPECT_NE(e.find("'compress.pack': expected true or false"), std::string::npos) << e;
  e = err("  eval: false\n");
  EXPECT_NE(e.find("nothing to do"), std::string::npos) << e;
  e = err("  pack: true\n  imatrix: curriculum\n");
  EXPECT_NE(e.find("give compress.quantize too"), std::string::npos) << e;
  e = err("  quantize: iq2_xs\n  imatrix: none\n");
  EXPECT_NE(e.find("needs an importance matrix"), std::string::npos) << e;
  // Without a curriculum the text the KLD is measured on must be given.
  const std::string no_curriculum = "name: x\nbase: {gguf: m.gguf}\ndomains:\n  d: {test: {gsm8k: t.jsonl}, modifier: false}\n"
                                    "compress:\n  quantize: q8_0\n";
  std::ofstream(dir / "nocur.yaml") << no_curriculum;
  e = test::error_of([&] { PipelineConfig::load(dir / "nocur.yaml"); });
  EXPECT_NE(e.find("nocur.yaml:6: 'compress': compress.measure.data: required without a curriculum"), std::string::npos) << e;
  // A gate on compress.* without a compress section fails with the reason.
  GateMetrics gm;
  gm.missing_reason["compress.kld"] = "the config has no compress: section";
  auto res = evaluate_gates({parse_gate("compress.kld <= 0.05", {})}, gm);
  ASSERT_EQ(res.size(), 1u);
  EXPECT_FALSE(res[0].passed);
  EXPECT_NE(res[0].error.find("no compress: section"), std::string::npos) << res[0].error;
}

}  // namespace
}  // namespace cogumi
