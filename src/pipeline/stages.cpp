#include "pipeline/stages.h"

#include <fmt/format.h>

#include <cstdlib>
#include <memory>
#include <set>
#include <string_view>

#include "analysis/failure_clusters.h"
#include "analysis/failures.h"
#include "core/error.h"
#include "data/synth.h"
#include "eval/run.h"
#include "pipeline/stages_data.h"
#include "pipeline/stages_detail.h"
#include "train/trainer.h"

namespace cogumi {

namespace pipeline_detail {

DomainFiles files_of(const DomainConfig& d, const fs::path& data) {
  if (!d.from_curriculum) return {d.name, d.modifier, d.test, d.mine, d.sft, d.val, d.dev};
  for (const NanoDomain& nd : nano_domains(data))
    if (nd.name == d.name)
      return {d.name, d.modifier, {{nd.kind, nd.test}}, {{nd.kind, nd.train}}, {nd.train_sft}, {nd.dev_sft}, {{nd.kind, nd.dev}}};
  fail("domain '{}' is not a curriculum domain", d.name);
}

json domain_accuracy(const json& summary, const std::vector<DomainFiles>& domains, bool dev) {
  json out = json::object();
  for (auto& d : domains) {
    long n = 0, c = 0;
    for (auto& b : dev ? d.dev : d.test)
      if (summary["benchmarks"].contains(b.kind)) {
        n += summary["benchmarks"][b.kind]["n"].get<long>();
        c += summary["benchmarks"][b.kind]["correct"].get<long>();
      }
    out[d.name] = {{"n", n}, {"correct", c}, {"accuracy", n ? 100.0 * double(c) / double(n) : 0.0}};
  }
  return out;
}

json eval_stage(const Shared& sh, const StageContext& ctx, const std::vector<BenchSpec>& benches, size_t limit,
                const std::vector<std::pair<std::string, fs::path>>& adapters, const std::string& sub, bool dev,
                size_t skip) {
  EvalOptions e;
  e.model = ctx.result("base")["model"].get<std::string>();
  e.benches = benches;
  e.out_dir = ctx.stage.dir / sub;
  e.skip = skip;
  e.limit = limit;
  e.max_tokens = sh.cfg.max_tokens;
  e.gen.n_parallel = sh.cfg.parallel;
  e.gen.n_threads = ctx.threads;
  e.progress = ctx.progress;
  e.resume = fs::exists(e.out_dir / "items.jsonl");
  e.cancel = ctx.cancel;
  e.exec_cache = sh.code_runs();
  if (!adapters.empty()) {
    e.adapters = adapters;
    e.adapter = adapters[0].first;
  }
  json s = run_eval(e);
  return {{"run", e.out_dir.string()}, {"summary", s}, {"domains", domain_accuracy(s, sh.domains, dev)}};
}

// The identity of input files for keys: curriculum files by their place in the (keyed) curriculum
// directory, everything else by sha256.
json file_ids(Plan& plan, const Shared& sh, const std::vector<fs::path>& files) {
  json out = json::array();
  for (auto& f : files) {
    const std::string rel = sh.data.empty() ? "" : fs::relative(f, sh.data).string();
    out.push_back(!sh.data.empty() && rel.rfind("..", 0) != 0 ? "curriculum:" + rel : plan.file_id(f));
  }
  return out;
}
json bench_ids(Plan& plan, const Shared& sh, const std::vector<BenchSpec>& b) {
  json out = json::object();
  for (auto& s : b) out[s.kind] = file_ids(plan, sh, {s.path})[0];
  return out;
}

void add_backward_type_setting(json& settings) {
  if (const std::string t = backward_weight_type_switch(); !t.empty()) settings["backward_weight_type"] = t;
  if (lora_forward_split_switch()) settings["lora_group_forward"] = "split";
}

}  // namespace pipeline_detail

using namespace pipeline_detail;

namespace {

std::vector<BenchSpec> all_tests(const Shared& sh) {
  std::vector<BenchSpec> t;
  for (auto& d : sh.domains) t.insert(t.end(), d.test.begin(), d.test.end());
  return t;
}
std::vector<BenchSpec> all_mine(const Shared& sh) {
  std::vector<BenchSpec> t;
  for (auto& d : sh.domains)
    if (d.modifier) t.insert(t.end(), d.mine.begin(), d.mine.end());
  return t;
}

void add_base(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  Stage s{"base", "1", {}, {}, {}, {}, {}};
  if (c.base_train) {
    const NanoBaseOptions& b = c.base_options;
    s.settings = {{"train", {{"seed", b.seed}, {"difficulty", b.difficulty}, {"n_train", b.n_train}, {"n_dev", b.n_dev},
                             {"n_test", b.n_test}, {"n_mix", b.n_mix}, {"vocab_merges", b.vocab_merges}, {"n_embd", b.n_embd},
                             {"n_layer", b.n_layer}, {"n_head", b.n_head}, {"n_ff", b.n_ff}, {"steps", b.steps},
                             {"seq_len", b.seq_len}, {"batch", b.batch}, {"warmup", b.warmup}, {"lr", b.lr}}}};
    if (b.n_copy > 0) s.settings["train"]["n_copy"] = b.n_copy;  // absent at 0: earlier runs' keys stay valid
    if (b.n_choice > 0) s.settings["train"]["n_choice"] = b.n_choice;
    if (b.vocab_split_punct) s.settings["train"]["vocab_split_punct"] = true;
    s.grows = true;  // its training follows threads_live
    s.run = [sh](const StageContext& ctx) {
      NanoBaseOptions o = sh->cfg.base_options;
      o.dir = ctx.stage.dir;
      o.n_threads = ctx.threads;
      o.threads_live = ctx.threads_live;
      o.cpu_only = sh->cfg.cpu_only;
      o.progress = ctx.progress;
      json recipe = nano_base(o);
      const fs::path m = ctx.stage.dir / "base.gguf";
      return json{{"model", m.string()}, {"sha256", recipe["sha256"]}, {"bytes", fs::file_size(m)}, {"recipe", recipe}};
    };
  } else {
    const fs::path m = fs::absolute(c.base_gguf);
    s.settings = {{"gguf", plan.file_id(m)}};
    s.run = [m](const StageContext&) {
      if (!fs::exists(m)) fail("base model '{}' does not exist", m.string());
      return json{{"model", m.string()}, {"sha256", sha256_file(m)}, {"bytes", fs::file_size(m)}};
    };
  }
  plan.add(std::move(s));
}

void add_data(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const CurriculumConfig cc = sh->cfg.curriculum;
  Stage s{"data", "1", {}, {{"curriculum", cc.to_json()}}, {}, {}, {}};
  s.run = [cc](const StageContext& ctx) {
    SynthOptions so;
    so.seed = cc.seed, so.n_train = cc.n_train, so.n_dev = cc.n_dev, so.n_test = cc.n_test, so.n_mix = cc.n_mix;
    so.n_copy = cc.n_copy;
    so.n_choice = cc.n_choice;
    so.set_difficulty(cc.difficulty);
    SynthStats st = synth_write(ctx.stage.dir / "data", so);
    json counts = json::object();
    for (auto& [d, n] : st.counts) counts[d] = {{"train", n[0]}, {"dev", n[1]}, {"test", n[2]}};
    return json{{"data", (ctx.stage.dir / "data").string()}, {"counts", counts}};
  };
  plan.add(std::move(s));
}

void add_evals(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  const json eval_settings = {{"max_tokens", c.max_tokens}, {"parallel", c.parallel}};
  Stage eb{"eval_base", "1", sh->data_deps("base"), {}, {}, {}, {}};
  eb.settings = {{"tests", bench_ids(plan, *sh, all_tests(*sh))}, {"limit", c.test_limit}, {"eval", eval_settings}};
  eb.run = [sh](const StageContext& ctx) { return eval_stage(*sh, ctx, all_tests(*sh), sh->cfg.test_limit, {}); };
  plan.add(std::move(eb));
  if (all_mine(*sh).empty()) return;  // modifiers train on their own data only
  Stage mi{"mine", "1", sh->data_deps("base"), {}, {}, {}, {}};
  mi.settings = {{"mine", bench_ids(plan, *sh, all_mine(*sh))}, {"limit", c.mine_limit}, {"eval", eval_settings}};
  const size_t skip = c.mine_skip_items();
  if (skip > 0) mi.settings["skip"] = skip;  // absent at 0: earlier runs' keys stay valid
  mi.run = [sh, skip](const StageContext& ctx) {
    return eval_stage(*sh, ctx, all_mine(*sh), sh->cfg.mine_limit, {}, "run", false, skip);
  };
  plan.add(std::move(mi));

  Stage fa{"failures", "1", {"mine"}, json::object(), {}, {}, {}};
  fa.run = [sh](const StageContext& ctx) {
    const fs::path run = ctx.result("mine")["run"].get<std::string>();
    std::map<std::string, std::string> domain_of;
    for (auto& d : sh->domains)
      for (auto& b : d.mine) domain_of[b.kind] = d.name;
    std::map<std::string, std::string> text;
    json counts = json::object(), types = json::object();
    for (const json& j : load_failures(run)) {
      const std::string& d = domain_of.at(j["benchmark"].get<std::string>());
      json row = failure_record(j, FailureForm::kEval, run / "items.jsonl");
      row["category"] = d;
      text[d] += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
      counts[d] = counts.value(d, 0) + 1;
      const std::string t = j.value("failure_type", "unknown");
      types[t] = types.value(t, 0) + 1;
    }
    json files = json::object();
    for (auto& d : sh->domains) {
      if (!d.modifier || d.mine.empty()) continue;
      const fs::path f = ctx.stage.dir / (d.name + ".jsonl");
      write_file_atomic(f, text[d.name]);
      files[d.name] = f.string();
      if (!counts.contains(d.name)) counts[d.name] = 0;
    }
    return json{{"files", files}, {"counts", counts}, {"by_type", types}};
  };
  plan.add(std::move(fa));

  if (!c.cluster) return;
  // Version 2: the text features' principal coordinates through Eigen's products and the Gram matrix applied
  // implicitly (the same clusters on the main job's failures; rounding may move a borderline member elsewhere).
  Stage cl{"cluster", "2", {"base", "mine", "failures"},
           {{"k", c.k}, {"k_max", c.k_max}, {"embeddings", c.embeddings}, {"labeler", c.labeler_url},
            {"labeler_model", c.labeler_model}},
           {}, {}, {}};
  cl.run = [sh](const StageContext& ctx) {
    long n = 0;
    for (auto& [d, k] : ctx.result("failures")["counts"].items()) n += k.get<long>();
    if (n < 2) return json{{"skipped", fmt::format("{} failures: clustering needs at least 2", n)}};
    FailureClusterOptions o;
    o.run = ctx.result("mine")["run"].get<std::string>();
    o.model = ctx.result("base")["model"].get<std::string>();
    o.out_dir = ctx.stage.dir;
    o.features.w_embed = sh->cfg.embeddings;
    o.partition.k = sh->cfg.k;
    o.partition.k_max = sh->cfg.k_max;
    o.labeler.base_url = sh->cfg.labeler_url;
    o.labeler.model = sh->cfg.labeler_model;
    o.labeler_key_env = sh->cfg.labeler_key_env;
    o.n_threads = ctx.threads;
    o.progress = ctx.progress;
    FailureClusterResult r = cluster_failures(o);
    json clusters = json::array();
    read_jsonl(ctx.stage.dir / "clusters.jsonl", [&](const json& j, size_t) {
      clusters.push_back({{"label", j.value("label", "")}, {"size", j.value("size", 0)}});
    });
    return json{{"n_failures", r.n_failures}, {"summary", r.summary}, {"clusters", clusters},
                {"report", (ctx.stage.dir / "report.html").string()}};
  };
  plan.add(std::move(cl));
}

// trainset.D: domain D's training sources and weights (its failures, its own data, the replay mix).
void add_trainsets(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  const fs::path replay = !c.replay.empty() ? c.replay : sh->data.empty() ? fs::path() : sh->data / "mix/train.jsonl";
  for (const DomainFiles& d : sh->domains) {
    if (!d.modifier) continue;
    const ModifierSettings ms = c.domain(d.name).train;
    if (ms.patience > 0 && d.val.empty() && ms.val_split <= 0)
      fail("{}: domains.{}.train.patience needs validation data: 'val' files or train.val_split > 0", c.file.string(), d.name);
    // Known before anything runs: no source can give this modifier an example.
    const bool can_fail = ms.failure_weight > 0 && !d.mine.empty(), can_own = ms.domain_share > 0 && !d.sft.empty();
    if (!can_fail && !can_own && (replay.empty() || ms.replay <= 0) && data_stage_of(*sh, d.name).empty())
      fail("{}: domains.{}: the modifier has no training data: failures need 'mine' files and train.failure_weight > 0, "
           "its own data 'sft' files and train.domain_share > 0, replay a mix and train.replay > 0, generated data a "
           "'data:' entry (or modifier: false)",
           c.file.string(), d.name);
    const std::string ts = "trainset." + d.name;
    Stage t{ts, "1", sh->data_deps(), {}, {}, {}, {}};
    if (plan.has("failures") && !d.mine.empty()) t.deps.push_back("failures");
    if (const std::string ds = data_stage_of(*sh, d.name); !ds.empty()) t.deps.push_back(ds);
    t.settings = {{"sft", file_ids(plan, *sh, d.sft)}, {"val", file_ids(plan, *sh, d.val)},
                  {"replay", replay.empty() || ms.replay <= 0 ? json(nullptr) : file_ids(plan, *sh, {replay})[0]},
                  {"failure_weight", ms.failure_weight}, {"domain_share", ms.domain_share}, {"replay_weight", ms.replay},
                  {"val_split", ms.val_split}};
    t.run = [sh, d, ms, replay](const StageContext& ctx) {
      json sources = json::array();
      long n_fail = 0;
      if (std::find(ctx.stage.deps.begin(), ctx.stage.deps.end(), "failures") != ctx.stage.deps.end()) {
        const json& fr = ctx.result("failures");
        n_fail = fr["counts"].value(d.name, 0L);
        if (n_fail > 0 && ms.failure_weight > 0)
          sources.push_back({{"path", fr["files"][d.name]}, {"weight", ms.failure_weight}, {"what", "failures"}});
      }
      if (ms.domain_share > 0)
        for (auto& f : d.sft) sources.push_back({{"path", f.string()}, {"weight", ms.domain_share}, {"what", "domain data"}});
      if (!replay.empty() && ms.replay > 0) sources.push_back({{"path", replay.string()}, {"weight", ms.replay}, {"what", "replay"}});
      add_data_source(ctx, d.name, sources);
      if (sources.empty())
        fail("domain '{}': no training data: the base failed none of its mined items, and the domain has no other "
             "source (its own 'sft' files with train.domain_share > 0, or train.replay > 0). Mine more items "
             "(eval.mine_limit), give it data of its own, or set domains.{}.modifier: false to leave it with the base",
             d.name, d.name);
      json val = json::array();
      for (auto& f : d.val) val.push_back(f.string());
      json r = {{"sources", sources}, {"val", val}, {"val_split", d.val.empty() ? ms.val_split : 0.0}, {"n_failures", n_fail}};
      write_file_atomic(ctx.stage.dir / "trainset.json", r.dump(2) + "\n");
      return r;
    };
    plan.add(std::move(t));
  }
}

// train.D: the LoRA modifier, early stopping on the validation data; resumes from its checkpoint.
void add_trains(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  for (const DomainFiles& d : sh->domains) {
    if (!d.modifier) continue;
    const ModifierSettings ms = c.domain(d.name).train;
    // Version 2: the trainer's numbers changed (a padded loss vocabulary; BF16 backward copies by default for BF16
    // bases, which the unset GGML_COGUMI_BACKWARD_WEIGHT_TYPE below does not record), so version 1 results rerun.
    // Version 3: LoRA's scale on A x, one A tensor per shared-input group, flash attention on a GPU (rounding).
    // Version 4: a quantized base multiplied as BF16 copies on a GPU (--dequant-forward's default).
    // Version 5: F32 matmuls' gradients as OUT_PROD GEMMs on a GPU (--out-prod-grads's default; rounding).
    // Version 6: a frozen weight's input gradient as one BF16 OUT_PROD on a GPU (patch 0008; rounding).
    // Version 7: on the CPU, short inner dimensions summed as scaled rows (patch 0011) and a 16-bit base held in
    // F32 (--f32-weights's default): summation order and activations no longer rounded to F16.
    // Version 8: on a CPU with AVX512-BF16 a 16-bit base held in BF16 (--base-weights's default; rounding).
    // Version 9: there, the BF16 base's products from packed panels (patch 0017): another summation order.
    // Since then every stage's key also names the llama.cpp build (Plan's engine: the patches' sha256), so a
    // changed patch reruns the stages by itself; bump the version for changes to Cogumi's own trainer.
    Stage tr{"train." + d.name, "9", {"base", "trainset." + d.name}, {{"modifier", ms.to_json()}}, {}, {}, {}};
    add_backward_type_setting(tr.settings);
    tr.grows = true;
    tr.run = [sh, ms](const StageContext& ctx) {
      const json& set = ctx.result(ctx.stage.deps[1]);
      TrainOptions to;
      to.model = ctx.result("base")["model"].get<std::string>();
      for (auto& s : set["sources"]) to.data.push_back({s["path"].get<std::string>(), s["weight"].get<double>()});
      for (auto& v : set["val"]) to.val_data.push_back(v.get<std::string>());
      to.val_split = set["val_split"].get<double>();
      to.out = ctx.stage.dir / "modifier.gguf";
      to.lora.rank = ms.rank;
      to.lora.alpha = float(ms.rank);
      to.lora.targets = {"q", "k", "v", "o", "gate", "up", "down"};
      to.sft.max_len = ms.seq_len;
      to.pack = true;
      to.batch = ms.batch;
      to.max_steps = ms.steps;
      to.lr = float(ms.lr);
      to.warmup = std::min(ms.warmup, std::max(0, ms.steps - 1));
      to.eval_steps = ms.eval_steps;
      to.patience = ms.patience;
      to.n_threads = ctx.threads;
      to.threads_live = ctx.threads_live;
      to.cpu_only = sh->cfg.cpu_only;
      to.device = ms.device == "auto" ? "" : ms.device;  // auto: the first GPU when the build has one
      to.checkpoint_activations = ms.checkpoint_activations;
      to.checkpoint_blocks = ms.checkpoint_blocks;
      to.progress = ctx.progress;
      to.cancel = ctx.cancel;
      // An interrupted stage continues from its checkpoint along the same loss curve.
      to.save_steps = std::max(1, std::min(100, ms.steps / 4));
      const fs::path ckpt = to.out.string() + ".ckpt.gguf";
      to.resume = fs::exists(ckpt);
      TrainResult r;
      try {
        r = train(to);
      } catch (const CheckpointMismatch& e) {
        // Written by other code or another device (a checkpoint keeps the float order of its run): nothing to
        // continue here, so the stage trains afresh rather than failing on every rerun. The checkpoint is kept
        // aside, for the device that wrote it.
        const fs::path aside = ckpt.string() + ".other-run";
        fmt::print(stderr, "{}: training afresh ({} kept as {}): {}\n", ctx.stage.name, ckpt.filename().string(),
                   aside.filename().string(), e.what());
        fs::rename(ckpt, aside);
        to.resume = false;
        r = train(to);
      }
      if (r.interrupted) fail("training of {} was interrupted; run again to resume", ctx.stage.name);
      return json{{"adapter", to.out.string()},   {"bytes", fs::file_size(to.out)},  {"log", to.out.string() + ".log.jsonl"},
                  {"steps", r.steps},            {"best_step", r.best_step},        {"best_val_loss", r.best_val_loss},
                  {"stopped_early", r.stopped_early}, {"n_train", r.n_train},      {"n_val", r.n_val},
                  {"first_loss", r.first_loss},  {"last_loss", r.last_loss},        {"tokens_per_s", r.tokens_per_s}};
    };
    plan.add(std::move(tr));
  }
}

// eval.D: base + D's modifier on every test set.
void add_modifier_evals(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  const json eval_settings = {{"max_tokens", c.max_tokens}, {"parallel", c.parallel}};
  for (const DomainFiles& d : sh->domains) {
    if (!d.modifier) continue;
    Stage ev{"eval." + d.name, "1", sh->data_deps("base"), {}, {}, {}, {}};
    ev.deps.push_back("train." + d.name);
    ev.settings = {{"tests", bench_ids(plan, *sh, all_tests(*sh))}, {"limit", c.test_limit}, {"eval", eval_settings}};
    ev.run = [sh, name = d.name](const StageContext& ctx) {
      const fs::path adapter = ctx.result("train." + name)["adapter"].get<std::string>();
      return eval_stage(*sh, ctx, all_tests(*sh), sh->cfg.test_limit, {{name, adapter}});
    };
    plan.add(std::move(ev));
  }
}

}  // namespace

void plan_pipeline(const PipelineConfig& cfg, Plan& plan) {
  cfg.validate();
  auto sh = std::make_shared<Shared>(Shared{cfg, {}, {}, {}});
  if (cfg.exec_cache) sh->exec_cache = plan.work_dir() / "exec-cache.sqlite";
  add_base(plan, sh);
  if (cfg.curriculum.enabled) {
    add_data(plan, sh);
    sh->data = plan.at("data").dir / "data";
    sh->data_stage = "data";
  } else if (cfg.base_train) {
    sh->data = plan.at("base").dir / "data";
    sh->data_stage = "base";
  }
  for (auto& d : cfg.domains) sh->domains.push_back(files_of(d, sh->data));
  add_evals(plan, sh);
  add_data_stages(plan, sh);
  add_trainsets(plan, sh);
  add_trains(plan, sh);
  add_modifier_evals(plan, sh);
  add_system_stages(plan, sh);
}

std::vector<std::string> Shared::data_deps(const char* first) const {
  std::vector<std::string> d;
  if (first) d.push_back(first);
  if (!data_stage.empty() && data_stage != (first ? first : "")) d.push_back(data_stage);
  return d;
}

std::shared_ptr<ExecCache> Shared::code_runs() const { return exec_cache.empty() ? nullptr : ExecCache::open(exec_cache); }

PipelineRun run_pipeline(const PipelineConfig& cfg, const RunOptions& o) {
  PipelineRun r;
  Plan plan(cfg.work_dir);
  plan_pipeline(cfg, plan);
  r.missing = plan.missing();
  RunOptions ro = o;
  if (ro.jobs == 0) ro.jobs = cfg.jobs;
  ro.threads = cfg.threads;
  r.summary = run_plan(plan, ro);
  if (o.dry_run) return r;
  publish_outputs(plan);
  return r;
}

}  // namespace cogumi
