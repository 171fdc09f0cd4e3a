#include "pipeline/nano.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "core/error.h"
#include "core/io.h"
#include "data/synth.h"
#include "engine/model_init.h"
#include "pipeline/stages.h"
#include "train/trainer.h"

namespace cogumi {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void log_stage(const std::string& s) { fmt::print(stderr, "[nano] {}\n", s); }

// Range checks shared by both option structs: the message names the CLI flag.
void need(bool ok, const char* flag, const std::string& rule, double got) {
  if (!ok) fail("{} must be {}, got {}", flag, rule, got);
}
bool finite_pos(double x) { return std::isfinite(x) && x > 0; }
bool finite_nonneg(double x) { return std::isfinite(x) && x >= 0; }

}  // namespace

void NanoBaseOptions::validate() const {
  need(n_train >= 1, "--n-train", ">= 1", n_train);
  need(n_dev >= 1, "n_dev", ">= 1", n_dev);
  need(n_test >= 1, "n_test", ">= 1", n_test);
  need(n_mix >= 0 && n_mix <= n_train, "--n-mix", "in 0..--n-train", n_mix);
  need(n_copy >= 0 && n_copy <= 1000000, "--n-copy", "in 0..1000000", n_copy);
  need(n_choice >= 0 && n_choice <= 1000000, "--n-choice", "in 0..1000000", n_choice);
  need(vocab_merges >= 0, "vocab_merges", ">= 0", vocab_merges);
  need(n_layer >= 1 && n_layer <= 256, "--layers", "in 1..256", n_layer);
  need(n_embd >= 8, "n_embd", ">= 8", n_embd);
  need(n_head >= 1 && n_embd % n_head == 0, "n_head", "a divisor of n_embd", n_head);
  need(n_ff >= 1, "n_ff", ">= 1", n_ff);
  need(steps >= 1 && steps <= 1000000000, "--steps", "in 1..1e9", steps);
  need(seq_len >= 8 && seq_len <= (1 << 16), "--seq-len", "in 8..65536", seq_len);
  need(batch >= 1 && batch <= (1 << 16), "--batch", "in 1..65536", batch);
  need(warmup >= 0 && warmup <= 1000000000, "--warmup", "in 0..1e9", warmup);
  need(finite_pos(lr) && lr <= 1, "--lr", "in (0, 1]", lr);
  need(n_threads >= 0 && n_threads <= 1024, "--threads", "in 0..1024 (0 = all)", n_threads);
}

void NanoLoopOptions::validate() const {
  if (eval_split != "test" && eval_split != "dev") fail("--eval-split must be 'dev' or 'test', got '{}'", eval_split);
  need(finite_nonneg(failure_weight) && failure_weight <= 100, "--failure-weight", "in [0, 100]", failure_weight);
  need(finite_nonneg(domain_share), "--domain-share", "a finite number >= 0", domain_share);
  need(finite_nonneg(replay), "--replay", "a finite number >= 0", replay);
  need(lora_rank >= 1 && lora_rank <= 4096, "--rank", "in 1..4096", lora_rank);
  need(steps >= 1 && steps <= 1000000000, "--steps", "in 1..1e9", steps);
  need(batch >= 1 && batch <= (1 << 16), "--batch", "in 1..65536", batch);
  need(seq_len >= 8 && seq_len <= (1 << 16), "seq_len", "in 8..65536", seq_len);
  need(eval_steps >= 1, "eval_steps", ">= 1", eval_steps);
  need(patience >= 0 && patience <= 1000000000, "--patience", "in 0..1e9", patience);
  need(finite_pos(lr) && lr <= 1, "--lr", "in (0, 1]", lr);
  need(max_tokens >= 1, "max_tokens", ">= 1", max_tokens);
  need(n_threads >= 0 && n_threads <= 1024, "--threads", "in 0..1024 (0 = all)", n_threads);
}

std::vector<NanoDomain> nano_domains(const fs::path& data) {
  return {{"math", "gsm8k", data / "math/test.jsonl", data / "math/train.jsonl", data / "mix/dev/math.jsonl",
           data / "mix/math.jsonl", data / "math/dev.jsonl"},
          {"code", "humaneval", data / "code/test.jsonl", data / "code/train.jsonl", data / "mix/dev/code.jsonl",
           data / "mix/code.jsonl", data / "code/dev.jsonl"},
          {"reasoning", "mmlu", data / "reasoning/reasoning_test.csv", data / "reasoning/reasoning_train.csv",
           data / "mix/dev/reasoning.jsonl", data / "mix/reasoning.jsonl", data / "reasoning/reasoning_dev.csv"},
          {"automation", "bfcl", data / "automation/test.jsonl", data / "automation/train.jsonl",
           data / "mix/dev/automation.jsonl", data / "mix/automation.jsonl", data / "automation/dev.jsonl"}};
}

json nano_base(const NanoBaseOptions& o) {
  o.validate();
  auto t0 = std::chrono::steady_clock::now();
  fs::create_directories(o.dir);
  SynthOptions so;
  so.seed = o.seed, so.n_train = o.n_train, so.n_dev = o.n_dev, so.n_test = o.n_test, so.n_mix = o.n_mix;
  so.n_copy = o.n_copy;
  so.n_choice = o.n_choice;
  so.set_difficulty(o.difficulty);
  log_stage("curriculum -> " + (o.dir / "data").string());
  synth_write(o.dir / "data", so);

  ModelInitOptions mi;
  mi.shape = model_shape_preset("nano");
  mi.shape.n_embd = o.n_embd, mi.shape.n_layer = o.n_layer, mi.shape.n_head = o.n_head, mi.shape.n_head_kv = o.n_head;
  mi.shape.n_ff = o.n_ff;
  mi.seed = o.seed;
  mi.vocab_train = {o.dir / "data/mix/train.jsonl"};
  mi.vocab_merges = o.vocab_merges;
  mi.vocab_split_punct = o.vocab_split_punct;
  mi.name = "cogumi-nano-base";
  mi.n_threads = o.n_threads;
  const fs::path init = o.dir / "base-init.gguf", f32 = o.dir / "base-f32.gguf", out = o.dir / "base.gguf";
  log_stage("random-init model with a vocabulary fitted to the curriculum");
  auto ir = model_init(init, mi);

  TrainOptions to;
  to.model = init;
  to.data = {{o.dir / "data/mix/train.jsonl"}};
  to.out = f32;
  to.full = true;
  to.sft.max_len = o.seq_len;
  to.pack = true;
  to.batch = o.batch;
  to.max_steps = o.steps;
  to.lr = o.lr;
  to.warmup = o.warmup;
  to.seed = o.seed;
  to.n_threads = o.n_threads;
  to.threads_live = o.threads_live;
  to.cpu_only = o.cpu_only;
  to.progress = o.progress;
  log_stage(fmt::format("full-parameter training, {} steps", o.steps));
  auto tr = train(to);
  model_quantize(f32, out, "f16", o.n_threads);
  fs::remove(init);
  fs::remove(f32);
  json recipe = {{"model", out.filename().string()},
                 {"sha256", sha256_file(out)},
                 {"bytes", fs::file_size(out)},
                 {"parameters", ir.n_params},
                 {"vocabulary", ir.n_vocab},
                 {"seed", o.seed},
                 {"curriculum", {{"difficulty", so.difficulty_spec()}, {"n_train", o.n_train}, {"n_mix", o.n_mix},
                                 {"n_copy", o.n_copy}, {"n_dev", o.n_dev}, {"n_test", o.n_test}}},
                 {"shape", {{"n_embd", o.n_embd}, {"n_layer", o.n_layer}, {"n_head", o.n_head}, {"n_ff", o.n_ff}}},
                 {"train", {{"steps", tr.steps}, {"seq_len", o.seq_len}, {"batch", o.batch}, {"lr", o.lr}, {"warmup", o.warmup},
                            {"pack", true}, {"first_loss", tr.first_loss}, {"last_loss", tr.last_loss},
                            {"tokens_per_s", tr.tokens_per_s}}},
                 {"vocab_merges", o.vocab_merges},
                 {"command", fmt::format("cogumi nano base --dir DIR --seed {} --steps {} --batch {} --lr {} --layers {} "
                                         "--seq-len {} --warmup {} --n-train {} --n-mix {} --n-copy {}{} --difficulty {}",
                                         o.seed, o.steps, o.batch, o.lr, o.n_layer, o.seq_len, o.warmup, o.n_train,
                                         o.n_mix, o.n_copy, o.n_choice > 0 ? fmt::format(" --n-choice {}", o.n_choice) : "",
                                         so.difficulty_spec())},
                 {"seconds", seconds_since(t0)}};
  if (o.n_choice > 0) recipe["curriculum"]["n_choice"] = o.n_choice;  // absent at 0: recipes as before
  if (o.vocab_split_punct) {
    recipe["vocab_split_punct"] = true;
    recipe["command"] = recipe["command"].get<std::string>() + " --vocab-split-punct";
  }
  write_file_atomic(o.dir / "recipe.json", recipe.dump(2) + "\n");
  return recipe;
}

namespace {

// The loop as a pipeline config: the curriculum's files as explicit domains (test or dev split as the
// eval set), the given base, one modifier per wanted domain with the loop's settings.
PipelineConfig nano_loop_config(const NanoLoopOptions& o) {
  PipelineConfig c;
  c.name = "nano-loop";
  c.work_dir = o.dir;
  c.threads = o.n_threads;
  c.cpu_only = o.cpu_only;
  c.base_gguf = o.base.empty() ? o.dir / "base.gguf" : o.base;
  const fs::path data = o.data.empty() ? o.dir / "data" : o.data;
  if (!fs::exists(c.base_gguf)) fail("no base model at '{}' (run 'cogumi nano base' first)", c.base_gguf.string());
  if (!fs::exists(data / "manifest.json")) fail("no curriculum at '{}' (run 'cogumi nano data')", data.string());
  c.test_limit = o.test_limit;
  c.mine_limit = o.mine_limit;
  // The base's general mix holds each domain's first n_mix training items: mine past them.
  const json opts = json::parse(read_file(data / "manifest.json")).value("options", json::object());
  c.mine_skip = long(items_in_base_mix(opts.value("n_mix", 0L), opts.value("n_train", 0L)));
  c.max_tokens = o.max_tokens;
  c.cluster = false;  // the loop never clustered; `cogumi run` does
  c.replay = data / "mix/train.jsonl";
  ModifierSettings ms;
  ms.rank = o.lora_rank, ms.steps = o.steps, ms.batch = o.batch, ms.seq_len = o.seq_len, ms.eval_steps = o.eval_steps;
  ms.patience = o.patience, ms.lr = o.lr, ms.failure_weight = o.failure_weight, ms.domain_share = o.domain_share;
  ms.replay = o.replay;
  const auto domains = nano_domains(data);
  for (const auto& m : o.modifiers)
    if (std::none_of(domains.begin(), domains.end(), [&](const NanoDomain& d) { return d.name == m; }))
      fail("unknown modifier domain '{}' (math, code, reasoning, automation)", m);
  for (const NanoDomain& d : domains) {
    DomainConfig dc;
    dc.name = d.name;
    dc.test = {{d.kind, o.eval_split == "dev" ? d.dev : d.test}};
    dc.mine = {{d.kind, d.train}};
    dc.sft = {d.train_sft};
    dc.val = {d.dev_sft};
    dc.modifier = o.modifiers.empty() || std::find(o.modifiers.begin(), o.modifiers.end(), d.name) != o.modifiers.end();
    dc.train = ms;
    c.domains.push_back(std::move(dc));
  }
  return c;
}

}  // namespace

json nano_loop(const NanoLoopOptions& o) {
  o.validate();
  auto t0 = std::chrono::steady_clock::now();
  const PipelineConfig c = nano_loop_config(o);
  RunOptions ro;
  ro.progress = o.progress;
  const PipelineRun run = run_pipeline(c, ro);
  const json rep = json::parse(read_file(c.work_dir / "report.json"));
  // loop.json as the loop wrote it (accuracies 0..1), from the pipeline's report.
  json out = {{"base", c.base_gguf.string()}, {"base_sha256", rep["base"].value("sha256", "")},
              {"modifier_options", c.domains[0].train.to_json()}, {"domains", json::object()}};
  for (const NanoDomain& d : nano_domains(o.data.empty() ? o.dir / "data" : o.data)) {
    json& row = out["domains"][d.name];
    row = {{"kind", d.kind}, {"base_accuracy", rep["base_accuracy"][d.name]["accuracy"].get<double>() / 100}};
    if (!rep["modifiers"].contains(d.name)) continue;
    const json& m = rep["modifiers"][d.name];
    row["failures_mined"] = rep["failures"]["counts"].value(d.name, 0);
    row["train"] = m["train"];
    for (auto& [other, a] : m["accuracy"].items())
      row["with_modifier"][other] = {{"accuracy", a["accuracy"].get<double>() / 100}, {"vs_base", m["vs_base"][other]}};
  }
  out["routed"] = rep["routed_accuracy"];
  json ran = json::array(), reused = json::array();
  for (auto& st : run.summary.stages) (st.status == "ran" ? ran : reused).push_back(st.name);
  out["stages"] = {{"ran", ran}, {"reused", reused}};
  out["seconds"] = seconds_since(t0);
  out["eval_split"] = o.eval_split;
  const std::string sfx = o.eval_split == "dev" ? "-dev" : "";
  write_file_atomic(o.dir / ("loop" + sfx + ".json"), out.dump(2) + "\n");
  write_file_atomic(o.dir / ("table" + sfx + ".md"), nano_table(out));
  return out;
}

std::string nano_table(const json& loop) {
  std::vector<std::string> names;
  for (auto& [k, _] : loop["domains"].items()) names.push_back(k);
  // The order of the curriculum, not alphabetical.
  std::vector<std::string> order, mods;
  for (const char* n : {"math", "code", "reasoning", "automation"})
    if (loop["domains"].contains(n)) {
      order.push_back(n);
      if (loop["domains"][n].contains("with_modifier")) mods.push_back(n);
    }
  std::string t = "| " + loop.value("eval_split", std::string("test")) + " set | base |";
  for (auto& m : mods) t += " +" + m + " |";
  t += " own modifier: W/T/L | own gain | worst other-modifier change |\n|---|---:|";
  for (size_t i = 0; i < mods.size(); ++i) t += "---:|";
  t += "---|---:|---:|\n";
  for (auto& d : order) {
    double base = loop["domains"][d]["base_accuracy"].get<double>();
    t += fmt::format("| {} | {:.1f}% |", d, 100 * base);
    double worst = 0;
    for (auto& m : mods) {
      const json& cell = loop["domains"][m]["with_modifier"][d];
      double acc = cell["accuracy"].get<double>();
      t += fmt::format(" {:.1f}% |", 100 * acc);
      if (m != d) worst = std::min(worst, acc - base);
    }
    if (!loop["domains"][d].contains("with_modifier")) {
      t += " | | |\n";
      continue;
    }
    const json& own = loop["domains"][d]["with_modifier"][d];
    t += fmt::format(" {}/{}/{} | {:+.1f} | {:+.1f} |\n", own["vs_base"]["wins"].get<int>(), own["vs_base"]["ties"].get<int>(),
                     own["vs_base"]["losses"].get<int>(), 100 * (own["accuracy"].get<double>() - base), 100 * worst);
  }
  return t;
}

}  // namespace cogumi
