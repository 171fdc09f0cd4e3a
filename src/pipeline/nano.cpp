#include "pipeline/nano.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include "analysis/failures.h"
#include "core/error.h"
#include "data/synth.h"
#include "engine/model_init.h"
#include "eval/run.h"
#include "train/trainer.h"

namespace cogumi {

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void log_stage(const std::string& s) { fmt::print(stderr, "[nano] {}\n", s); }

// Accuracy per benchmark kind of a run summary.
double accuracy(const json& summary, const std::string& kind) {
  return summary["benchmarks"].contains(kind) ? summary["benchmarks"][kind]["accuracy"].get<double>() : 0.0;
}

// Wins / ties / losses of run B against run A on one benchmark, matched by item id.
json wtl(const fs::path& a, const fs::path& b, const std::string& kind) {
  std::map<std::string, bool> ra;
  read_jsonl(a / "items.jsonl", [&](const json& j, size_t) {
    if (j["benchmark"] == kind) ra[j["id"].get<std::string>()] = j["correct"].get<bool>();
  });
  int w = 0, t = 0, l = 0;
  read_jsonl(b / "items.jsonl", [&](const json& j, size_t) {
    if (j["benchmark"] != kind) return;
    auto it = ra.find(j["id"].get<std::string>());
    if (it == ra.end()) return;
    bool cb = j["correct"].get<bool>();
    (cb && !it->second) ? ++w : (!cb && it->second) ? ++l : ++t;
  });
  return {{"wins", w}, {"ties", t}, {"losses", l}};
}

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
  need(vocab_merges >= 0, "vocab_merges", ">= 0", vocab_merges);
  need(n_layer >= 1 && n_layer <= 256, "--layers", "in 1..256", n_layer);
  need(n_embd >= 8, "n_embd", ">= 8", n_embd);
  need(n_head >= 1 && n_embd % n_head == 0, "n_head", "a divisor of n_embd", n_head);
  need(n_ff >= 1, "n_ff", ">= 1", n_ff);
  need(steps >= 1, "--steps", ">= 1", steps);
  need(seq_len >= 8 && seq_len <= (1 << 16), "--seq-len", "in 8..65536", seq_len);
  need(batch >= 1, "--batch", ">= 1", batch);
  need(warmup >= 0, "--warmup", ">= 0", warmup);
  need(finite_pos(lr), "--lr", "a finite number > 0", lr);
  need(n_threads >= 0 && n_threads <= 1024, "--threads", "in 0..1024 (0 = all)", n_threads);
}

void NanoLoopOptions::validate() const {
  if (eval_split != "test" && eval_split != "dev") fail("--eval-split must be 'dev' or 'test', got '{}'", eval_split);
  need(finite_nonneg(domain_share), "--domain-share", "a finite number >= 0", domain_share);
  need(finite_nonneg(replay), "--replay", "a finite number >= 0", replay);
  need(lora_rank >= 1 && lora_rank <= 4096, "--rank", "in 1..4096", lora_rank);
  need(steps >= 1, "--steps", ">= 1", steps);
  need(batch >= 1, "--batch", ">= 1", batch);
  need(seq_len >= 8 && seq_len <= (1 << 16), "seq_len", "in 8..65536", seq_len);
  need(eval_steps >= 1, "eval_steps", ">= 1", eval_steps);
  need(patience >= 0, "--patience", ">= 0", patience);
  need(finite_pos(lr), "--lr", "a finite number > 0", lr);
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
                                 {"n_dev", o.n_dev}, {"n_test", o.n_test}}},
                 {"shape", {{"n_embd", o.n_embd}, {"n_layer", o.n_layer}, {"n_head", o.n_head}, {"n_ff", o.n_ff}}},
                 {"train", {{"steps", tr.steps}, {"seq_len", o.seq_len}, {"batch", o.batch}, {"lr", o.lr}, {"warmup", o.warmup},
                            {"pack", true}, {"first_loss", tr.first_loss}, {"last_loss", tr.last_loss},
                            {"tokens_per_s", tr.tokens_per_s}}},
                 {"vocab_merges", o.vocab_merges},
                 {"command", fmt::format("cogumi nano base --dir DIR --seed {} --steps {} --batch {} --lr {} --layers {} "
                                         "--seq-len {} --warmup {} --n-train {} --n-mix {} --difficulty {}",
                                         o.seed, o.steps, o.batch, o.lr, o.n_layer, o.seq_len, o.warmup, o.n_train,
                                         o.n_mix, so.difficulty_spec())},
                 {"seconds", seconds_since(t0)}};
  write_file_atomic(o.dir / "recipe.json", recipe.dump(2) + "\n");
  return recipe;
}

json nano_loop(const NanoLoopOptions& o) {
  o.validate();
  auto t0 = std::chrono::steady_clock::now();
  const fs::path base = o.base.empty() ? o.dir / "base.gguf" : o.base;
  const fs::path data = o.data.empty() ? o.dir / "data" : o.data;
  if (!fs::exists(base)) fail("no base model at '{}' (run 'cogumi nano base' first)", base.string());
  if (!fs::exists(data / "manifest.json")) fail("no curriculum at '{}' (run 'cogumi nano data')", data.string());
  const auto domains = nano_domains(data);
  for (const auto& m : o.modifiers)
    if (std::none_of(domains.begin(), domains.end(), [&](const NanoDomain& d) { return d.name == m; }))
      fail("unknown modifier domain '{}' (math, code, reasoning, automation)", m);
  const fs::path runs = o.dir / "runs";
  fs::create_directories(runs);
  // Each stage directory records what it was made from (stage.json). A rerun reuses a stage whose
  // inputs are unchanged (resuming a half-finished evaluation) and redoes one whose inputs changed,
  // so `--steps 2000` retrains the modifiers and re-evaluates them but keeps the base's runs.
  const std::string base_sha = sha256_file(base);
  const std::string curriculum_sha = sha256_file(data / "manifest.json");
  auto stage = [&](const fs::path& dir, const json& key) {
    const fs::path f = dir / "stage.json";
    const bool recorded = fs::exists(f);
    if (recorded && json::parse(read_file(f), nullptr, false) == key) return;
    if (fs::exists(dir)) {
      log_stage(fmt::format("{}: {}, redoing it", dir.string(),
                            recorded ? "made from other inputs" : "no record of its inputs (an older cogumi)"));
      fs::remove_all(dir);
    }
    fs::create_directories(dir);
    write_file_atomic(f, key.dump(2) + "\n");
  };
  const json eval_key = {{"base_sha256", base_sha}, {"curriculum_sha256", curriculum_sha}, {"max_tokens", o.max_tokens}};
  const json modifier_options = {{"domain_share", o.domain_share}, {"replay", o.replay}, {"rank", o.lora_rank},
                                 {"steps", o.steps}, {"batch", o.batch}, {"seq_len", o.seq_len},
                                 {"eval_steps", o.eval_steps}, {"patience", o.patience}, {"lr", o.lr}};

  auto eval = [&](const fs::path& out, const std::vector<BenchSpec>& benches, size_t limit, const fs::path& adapter) {
    if (fs::exists(out / "summary.json")) return json::parse(read_file(out / "summary.json"));  // reused
    EvalOptions e;
    e.model = base;
    e.benches = benches;
    e.out_dir = out;
    e.limit = limit;
    e.max_tokens = o.max_tokens;
    e.gen.n_parallel = 64;
    e.gen.n_threads = o.n_threads;
    e.progress = o.progress;
    e.resume = fs::exists(out / "items.jsonl");
    if (!adapter.empty()) {
      e.adapters = {{"mod", adapter}};
      e.adapter = "mod";
    }
    return run_eval(e);
  };
  const bool on_dev = o.eval_split == "dev";
  // Run directories of the dev comparison carry the split in their name; the test ones keep theirs.
  const std::string sfx = on_dev ? "-dev" : "";
  std::vector<BenchSpec> tests;
  for (auto& d : domains) tests.push_back({d.kind, on_dev ? d.dev : d.test});

  log_stage("1. base on the four " + o.eval_split + " sets");
  json test_key = eval_key;
  test_key["test_limit"] = o.test_limit;
  if (on_dev) test_key["eval_split"] = "dev";
  const fs::path base_run = runs / (on_dev ? "base-dev" : "base-test");
  stage(base_run, test_key);
  json base_test = eval(base_run, tests, o.test_limit, {});

  log_stage("2. base on each domain's training split: its failures");
  std::vector<BenchSpec> trains;
  for (auto& d : domains) trains.push_back({d.kind, d.train});
  json mine_key = eval_key;
  mine_key["mine_limit"] = o.mine_limit;
  stage(runs / "base-train", mine_key);
  json base_train = eval(runs / "base-train", trains, o.mine_limit, {});
  std::vector<json> fails = load_failures(runs / "base-train");

  json out = {{"base", base.string()}, {"base_sha256", base_sha}, {"modifier_options", modifier_options},
              {"domains", json::object()}};
  auto wanted = [&](const std::string& name) {
    return o.modifiers.empty() || std::find(o.modifiers.begin(), o.modifiers.end(), name) != o.modifiers.end();
  };
  for (auto& d : domains) {
    out["domains"][d.name] = {{"kind", d.kind}, {"base_accuracy", accuracy(base_test, d.kind)}};
    if (!wanted(d.name)) continue;
    const fs::path dd = o.dir / "modifiers" / d.name;
    json mod_key = mine_key;
    mod_key["modifier"] = modifier_options;
    stage(dd, mod_key);
    std::string text;
    size_t n_fail = 0;
    for (auto& j : fails)
      if (j["benchmark"] == d.kind) {
        json row = failure_record(j, FailureForm::kEval, runs / "base-train" / "items.jsonl");
        row["category"] = d.name;
        text += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
        ++n_fail;
      }
    write_file_atomic(dd / "failures.jsonl", text);
    const fs::path adapter = dd / "modifier.gguf";
    json tr_info;
    if (!fs::exists(adapter)) {
      log_stage(fmt::format("3. {} modifier: {} failures + {}x the domain's training set", d.name, n_fail, o.domain_share));
      TrainOptions to;
      to.model = base;
      to.data = {};
      if (n_fail) to.data.push_back({dd / "failures.jsonl", 1.0});
      to.data.push_back({d.train_sft, o.domain_share});
      if (o.replay > 0) to.data.push_back({data / "mix/train.jsonl", o.replay});
      to.val_data = {d.dev_sft};
      to.out = adapter;
      to.lora.rank = o.lora_rank;
      to.lora.alpha = float(o.lora_rank);
      to.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
      to.sft.max_len = o.seq_len;
      to.pack = true;
      to.batch = o.batch;
      to.max_steps = o.steps;
      to.lr = o.lr;
      to.warmup = 10;
      to.eval_steps = o.eval_steps;
      to.patience = o.patience;
      to.n_threads = o.n_threads;
      to.cpu_only = o.cpu_only;
      to.progress = o.progress;
      auto r = train(to);
      tr_info = {{"steps", r.steps}, {"best_step", r.best_step}, {"best_val_loss", r.best_val_loss},
                 {"stopped_early", r.stopped_early}, {"n_train", r.n_train}};
      write_file_atomic(dd / "train.json", tr_info.dump(2) + "\n");
    } else if (fs::exists(dd / "train.json")) {
      tr_info = json::parse(read_file(dd / "train.json"));
    }
    out["domains"][d.name].update(
        json{{"failures_mined", n_fail}, {"train", tr_info}, {"base_train_accuracy", accuracy(base_train, d.kind)}});
  }

  log_stage("4. base + each modifier on all four " + o.eval_split + " sets");
  for (auto& m : domains) {
    if (!wanted(m.name)) continue;
    const fs::path run = runs / ("with-" + m.name + sfx);
    const fs::path adapter = o.dir / "modifiers" / m.name / "modifier.gguf";
    json with_key = test_key;
    with_key["modifier_sha256"] = sha256_file(adapter);
    stage(run, with_key);
    json s = eval(run, tests, o.test_limit, adapter);
    json row = json::object();
    for (auto& d : domains) {
      row[d.name] = {{"accuracy", accuracy(s, d.kind)}, {"vs_base", wtl(base_run, run, d.kind)}};
    }
    out["domains"][m.name]["with_modifier"] = row;
  }
  out["seconds"] = seconds_since(t0);
  out["eval_split"] = o.eval_split;
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
