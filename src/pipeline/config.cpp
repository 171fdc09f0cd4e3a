#include "pipeline/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <regex>
#include <set>

#include "core/error.h"
#include "data/synth.h"
#include "pipeline/config_reader.h"
#include "train/trainer.h"

namespace cogumi {

namespace {

using pipeline_detail::Reader;

void read_modifier(const Reader& r, const YAML::Node& n, const std::string& key, ModifierSettings& m) {
  r.expect_map(n, key, {"rank", "steps", "batch", "seq_len", "eval_steps", "patience", "warmup", "lr", "val_split",
                        "failure_weight", "domain_share", "replay", "device", "checkpoint_activations",
                        "checkpoint_blocks"});
  auto k = [&](const char* f) { return key + "." + f; };
  if (n["rank"]) m.rank = r.integer(n["rank"], k("rank"), 1, 4096);
  if (n["steps"]) m.steps = r.integer(n["steps"], k("steps"), 1, 10000000);
  if (n["batch"]) m.batch = r.integer(n["batch"], k("batch"), 1, 65536);
  if (n["seq_len"]) m.seq_len = r.integer(n["seq_len"], k("seq_len"), 8, 65536);
  if (n["eval_steps"]) m.eval_steps = r.integer(n["eval_steps"], k("eval_steps"), 1, 10000000);
  if (n["patience"]) m.patience = r.integer(n["patience"], k("patience"), 0, 1000000);
  if (n["warmup"]) m.warmup = r.integer(n["warmup"], k("warmup"), 0, 10000000);
  if (n["lr"]) m.lr = r.number(n["lr"], k("lr"), 0, 1, true);
  if (n["val_split"]) m.val_split = r.number(n["val_split"], k("val_split"), 0, 0.5);
  if (n["failure_weight"]) m.failure_weight = r.number(n["failure_weight"], k("failure_weight"), 0, 100);
  if (n["domain_share"]) m.domain_share = r.number(n["domain_share"], k("domain_share"), 0, 100);
  if (n["replay"]) m.replay = r.number(n["replay"], k("replay"), 0, 100);
  // checkpoint_activations (every block) and checkpoint_blocks (the first N) are one setting: either key here
  // replaces what `training:` gave for both (false or 0 turns checkpointing off); both on in one place is an error.
  if (n["checkpoint_activations"] || n["checkpoint_blocks"]) {
    m.checkpoint_activations = false;
    m.checkpoint_blocks = 0;
  }
  if (n["checkpoint_activations"])
    m.checkpoint_activations = r.boolean(n["checkpoint_activations"], k("checkpoint_activations"));
  if (n["checkpoint_blocks"]) {
    const YAML::Node& cb = n["checkpoint_blocks"];
    m.checkpoint_blocks = cb.IsScalar() && cb.Scalar() == "auto" ? TrainOptions::kCheckpointBlocksAuto
                                                                  : r.integer(cb, k("checkpoint_blocks"), 0, 65536);
    if (m.checkpoint_blocks != 0 && m.checkpoint_activations)
      r.error(n["checkpoint_blocks"], k("checkpoint_blocks"), "and checkpoint_activations are both on: give one");
  }
  if (n["device"]) {
    m.device = r.str(n["device"], k("device"));
    if (!std::regex_match(m.device, std::regex("auto|cpu|gpu(:[0-9]{1,3})?")))
      r.error(n["device"], k("device"), "must be auto (a GPU when there is one), cpu, gpu or gpu:N");
  }
}

void read_base(const Reader& r, const YAML::Node& n, PipelineConfig& c) {
  r.expect_map(n, "base", {"gguf", "train"});
  if (bool(n["gguf"]) == bool(n["train"])) r.error(n, "base", "give exactly one of 'gguf' (a model file) or 'train' (settings)");
  if (n["gguf"]) {
    c.base_gguf = r.path(n["gguf"], "base.gguf");
    return;
  }
  c.base_train = true;
  const YAML::Node t = n["train"];
  if (t.IsNull()) return;
  r.expect_map(t, "base.train", {"seed", "difficulty", "n_train", "n_dev", "n_test", "n_mix", "n_copy", "n_choice",
                                 "vocab_merges", "vocab_split_punct", "n_embd", "n_layer", "n_head", "n_ff", "steps",
                                 "seq_len", "batch", "warmup", "lr"});
  NanoBaseOptions& b = c.base_options;
  auto k = [](const char* f) { return std::string("base.train.") + f; };
  if (t["seed"]) b.seed = uint64_t(r.integer(t["seed"], k("seed"), 0, 2147483647));
  if (t["difficulty"]) b.difficulty = r.str(t["difficulty"], k("difficulty"));
  if (t["n_train"]) b.n_train = r.integer(t["n_train"], k("n_train"), 1, 10000000);
  if (t["n_dev"]) b.n_dev = r.integer(t["n_dev"], k("n_dev"), 1, 10000000);
  if (t["n_test"]) b.n_test = r.integer(t["n_test"], k("n_test"), 1, 10000000);
  if (t["n_mix"]) b.n_mix = r.integer(t["n_mix"], k("n_mix"), 0, 10000000);
  if (t["n_copy"]) b.n_copy = r.integer(t["n_copy"], k("n_copy"), 0, 1000000);
  if (t["n_choice"]) b.n_choice = r.integer(t["n_choice"], k("n_choice"), 0, 1000000);
  if (t["vocab_merges"]) b.vocab_merges = r.integer(t["vocab_merges"], k("vocab_merges"), 0, 1000000);
  if (t["vocab_split_punct"]) b.vocab_split_punct = r.boolean(t["vocab_split_punct"], k("vocab_split_punct"));
  if (t["n_embd"]) b.n_embd = r.integer(t["n_embd"], k("n_embd"), 8, 65536);
  if (t["n_layer"]) b.n_layer = r.integer(t["n_layer"], k("n_layer"), 1, 256);
  if (t["n_head"]) b.n_head = r.integer(t["n_head"], k("n_head"), 1, 1024);
  if (t["n_ff"]) b.n_ff = r.integer(t["n_ff"], k("n_ff"), 1, 1000000);
  if (t["steps"]) b.steps = r.integer(t["steps"], k("steps"), 1, 10000000);
  if (t["seq_len"]) b.seq_len = r.integer(t["seq_len"], k("seq_len"), 8, 65536);
  if (t["batch"]) b.batch = r.integer(t["batch"], k("batch"), 1, 65536);
  if (t["warmup"]) b.warmup = r.integer(t["warmup"], k("warmup"), 0, 10000000);
  if (t["lr"]) b.lr = float(r.number(t["lr"], k("lr"), 0, 1, true));
  try {
    b.validate();
    SynthOptions so;
    so.set_difficulty(b.difficulty);
  } catch (const Error& e) {
    r.error(t, "base.train", e.what());
  }
}

void read_curriculum(const Reader& r, const YAML::Node& n, CurriculumConfig& c) {
  r.expect_map(n, "curriculum", {"seed", "n_train", "n_dev", "n_test", "n_mix", "n_copy", "n_choice", "difficulty"});
  c.enabled = true;
  if (n["seed"]) c.seed = uint64_t(r.integer(n["seed"], "curriculum.seed", 0, 2147483647));
  if (n["n_train"]) c.n_train = r.integer(n["n_train"], "curriculum.n_train", 1, 10000000);
  if (n["n_dev"]) c.n_dev = r.integer(n["n_dev"], "curriculum.n_dev", 1, 10000000);
  if (n["n_test"]) c.n_test = r.integer(n["n_test"], "curriculum.n_test", 1, 10000000);
  if (n["n_mix"]) c.n_mix = r.integer(n["n_mix"], "curriculum.n_mix", 0, 10000000);
  if (n["n_copy"]) c.n_copy = r.integer(n["n_copy"], "curriculum.n_copy", 0, 1000000);
  if (n["n_choice"]) c.n_choice = r.integer(n["n_choice"], "curriculum.n_choice", 0, 1000000);
  if (n["difficulty"]) c.difficulty = r.str(n["difficulty"], "curriculum.difficulty");
  if (c.n_mix > c.n_train) r.error(n, "curriculum.n_mix", "must not exceed n_train");
  try {
    SynthOptions so;
    so.set_difficulty(c.difficulty);
  } catch (const Error& e) {
    r.error(n["difficulty"] ? n["difficulty"] : n, "curriculum.difficulty", e.what());
  }
}

void read_domains(const Reader& r, const YAML::Node& n, PipelineConfig& c, const ModifierSettings& defaults) {
  if (!n.IsMap() || n.size() == 0) r.error(n, "domains", "expected a mapping of domain names (at least one)");
  for (auto it = n.begin(); it != n.end(); ++it) {
    DomainConfig d;
    d.name = it->first.as<std::string>();
    const std::string key = "domains." + d.name;
    const bool ident = !d.name.empty() && (std::isalpha(static_cast<unsigned char>(d.name[0])) || d.name[0] == '_') &&
                       std::all_of(d.name.begin(), d.name.end(),
                                   [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
    if (!ident) r.error(it->first, key, "a domain name is letters, digits and _ (it is used in gates)");
    if (gate_reserved_name(d.name)) r.error(it->first, key, "this name is reserved for gates (base, own, best, ...)");
    d.train = defaults;
    const YAML::Node v = it->second;
    if (!v.IsNull()) {
      r.expect_map(v, key, {"test", "mine", "sft", "val", "dev", "modifier", "train"});
      if (v["test"]) d.test = r.benches(v["test"], key + ".test");
      if (v["mine"]) d.mine = r.benches(v["mine"], key + ".mine");
      if (v["sft"]) d.sft = r.paths(v["sft"], key + ".sft");
      if (v["val"]) d.val = r.paths(v["val"], key + ".val");
      if (v["dev"]) d.dev = r.benches(v["dev"], key + ".dev");
      if (v["modifier"]) d.modifier = r.boolean(v["modifier"], key + ".modifier");
      if (v["train"]) read_modifier(r, v["train"], key + ".train", d.train);
    }
    if (d.test.empty()) {
      const bool nano = d.name == "math" || d.name == "code" || d.name == "reasoning" || d.name == "automation";
      const bool has_curriculum = c.curriculum.enabled || c.base_train;
      if (!nano || !has_curriculum)
        r.error(it->first, key + ".test",
                nano ? "required without a curriculum (add 'curriculum:' or 'base: {train: ...}')"
                     : "required: the benchmark files this domain is evaluated on, e.g. {gsm8k: test.jsonl}");
      if (!d.mine.empty() || !d.sft.empty() || !d.val.empty() || !d.dev.empty())
        r.error(it->first, key, "a curriculum domain takes its files from the curriculum: give all of test/mine/sft/val/dev or none");
      d.from_curriculum = true;
    }
    if (d.modifier && d.mine.empty() && d.sft.empty() && !d.from_curriculum)
      r.error(it->first, key, "a modifier needs training data: 'mine' (failures) and/or 'sft'");
    c.domains.push_back(std::move(d));
  }
}

void read_gates(const Reader& r, const YAML::Node& n, PipelineConfig& c) {
  if (!n.IsSequence()) r.error(n, "gates", "expected a list of gate expressions");
  const auto names = c.domain_names();
  for (size_t i = 0; i < n.size(); ++i) {
    const std::string key = fmt::format("gates[{}]", i);
    const std::string text = r.str(n[i], key);
    try {
      Gate g = parse_gate(text, names);
      g.line = n[i].Mark().line + 1;
      c.gates.push_back(std::move(g));
    } catch (const Error& e) {
      r.error(n[i], key, fmt::format("'{}': {}", text, e.what()));
    }
  }
}

}  // namespace

json ModifierSettings::to_json() const {
  json j = {{"rank", rank},         {"steps", steps},   {"batch", batch}, {"seq_len", seq_len},
          {"eval_steps", eval_steps}, {"patience", patience}, {"warmup", warmup}, {"lr", lr},
          {"val_split", val_split}, {"failure_weight", failure_weight}, {"domain_share", domain_share}, {"replay", replay}};
  if (device != "auto") j["device"] = device;  // auto keeps the stage keys runs had before `device` existed
  if (checkpoint_activations) j["checkpoint_activations"] = true;  // off keeps earlier runs' stage keys
  if (checkpoint_blocks > 0) j["checkpoint_blocks"] = checkpoint_blocks;  // likewise 0
  if (checkpoint_blocks == TrainOptions::kCheckpointBlocksAuto) j["checkpoint_blocks"] = "auto";
  return j;
}

void ModifierSettings::validate(const std::string& where) const {
  auto need = [&](bool ok, const char* key, const std::string& rule, double got) {
    if (!ok) fail("{}.{} must be {}, got {}", where, key, rule, got);
  };
  need(rank >= 1 && rank <= 4096, "rank", "in 1..4096", rank);
  need(steps >= 1, "steps", ">= 1", steps);
  need(batch >= 1 && batch <= 65536, "batch", "in 1..65536", batch);
  need(seq_len >= 8 && seq_len <= 65536, "seq_len", "in 8..65536", seq_len);
  need(eval_steps >= 1, "eval_steps", ">= 1", eval_steps);
  need(patience >= 0, "patience", ">= 0", patience);
  need(warmup >= 0, "warmup", ">= 0", warmup);
  need(std::isfinite(lr) && lr > 0 && lr <= 1, "lr", "in (0, 1]", lr);
  need(val_split >= 0 && val_split <= 0.5, "val_split", "in [0, 0.5]", val_split);
  need(checkpoint_blocks == TrainOptions::kCheckpointBlocksAuto || (checkpoint_blocks >= 0 && checkpoint_blocks <= 65536),
       "checkpoint_blocks", "auto or in 0..65536", checkpoint_blocks);
  need(!(checkpoint_activations && checkpoint_blocks != 0), "checkpoint_blocks", "0 with checkpoint_activations on",
       checkpoint_blocks);
  need(failure_weight >= 0 && failure_weight <= 100, "failure_weight", "in [0, 100]", failure_weight);
  need(domain_share >= 0 && domain_share <= 100, "domain_share", "in [0, 100]", domain_share);
  need(replay >= 0 && replay <= 100, "replay", "in [0, 100]", replay);
}

json CurriculumConfig::to_json() const {
  json j = {{"seed", seed}, {"n_train", n_train}, {"n_dev", n_dev}, {"n_test", n_test}, {"n_mix", n_mix}, {"difficulty", difficulty}};
  if (n_copy > 0) j["n_copy"] = n_copy;  // absent at 0: earlier runs' keys stay valid
  if (n_choice > 0) j["n_choice"] = n_choice;
  return j;
}

size_t PipelineConfig::mine_skip_items() const {
  if (mine_skip >= 0) return size_t(mine_skip);
  for (const DomainConfig& d : domains)
    if (d.modifier && !d.from_curriculum) return 0;  // a file of the user's: nothing known about what the base saw
  if (curriculum.enabled) return items_in_base_mix(curriculum.n_mix, curriculum.n_train);
  if (base_train) return items_in_base_mix(base_options.n_mix, base_options.n_train);
  return 0;
}

size_t items_in_base_mix(long n_mix, long n_train) { return n_mix >= 0 && n_mix < n_train ? size_t(n_mix) : 0; }

std::vector<std::string> PipelineConfig::domain_names() const {
  std::vector<std::string> n;
  for (auto& d : domains) n.push_back(d.name);
  return n;
}

const DomainConfig& PipelineConfig::domain(const std::string& n) const {
  for (auto& d : domains)
    if (d.name == n) return d;
  fail("no domain named '{}'", n);
}

void PipelineConfig::validate() const {
  const std::string where = file.empty() ? "pipeline" : file.string();
  if (base_gguf.empty() == !base_train) fail("{}: base: give exactly one of 'gguf' or 'train'", where);
  if (base_train) base_options.validate();
  if (domains.empty()) fail("{}: 'domains' needs at least one domain", where);
  if (threads < 0 || threads > 1024) fail("{}: threads must be in 0..1024, got {}", where, threads);
  if (jobs < 1 || jobs > 64) fail("{}: jobs must be in 1..64, got {}", where, jobs);
  if (max_tokens < 1 || max_tokens > 32768) fail("{}: eval.max_tokens must be in 1..32768, got {}", where, max_tokens);
  if (parallel < 1 || parallel > 255) fail("{}: eval.parallel must be in 1..255, got {}", where, parallel);
  if (k < 0 || k > 100) fail("{}: failures.k must be in 0..100, got {}", where, k);
  if (k_max < 1 || k_max > 100) fail("{}: failures.k_max must be in 1..100, got {}", where, k_max);
  if (!(embeddings >= 0 && embeddings <= 10)) fail("{}: failures.embeddings must be in [0, 10], got {}", where, embeddings);
  if (!(router_holdout >= 0.05 && router_holdout <= 0.9))
    fail("{}: router.holdout must be in [0.05, 0.9], got {}", where, router_holdout);
  if (router_epochs < 1 || router_epochs > 1000) fail("{}: router.epochs must be in 1..1000, got {}", where, router_epochs);
  if (!(router_lr > 0 && router_lr <= 100)) fail("{}: router.lr must be in (0, 100], got {}", where, router_lr);
  if (!(route_alpha > 0 && route_alpha <= 1))
    fail("{}: router.route_alpha must be in (0, 1], got {}", where, route_alpha);
  if (!(threshold >= 0 && threshold <= 1)) fail("{}: runtime.threshold must be in [0, 1], got {}", where, threshold);
  if (escalation != "accurate" && escalation != "base")
    fail("{}: runtime.escalation must be accurate or base, got '{}'", where, escalation);
  try {
    compress.validate(curriculum.enabled || base_train);
  } catch (const Error& e) {
    fail("{}: {}", where, e.what());
  }
  std::vector<std::string> teachable;  // domains where teacher data can be made and used
  for (auto& d : domains)
    if (d.modifier && (!d.mine.empty() || d.from_curriculum)) teachable.push_back(d.name);
  data.validate(where, teachable);
  std::set<std::string> names, test_kinds, mine_kinds;
  for (auto& d : domains) {
    if (!names.insert(d.name).second) fail("{}: domain '{}' is named twice", where, d.name);
    d.train.validate(where + ": domains." + d.name + ".train");
    // Eval summaries are keyed by benchmark kind: one kind belongs to one domain.
    for (auto& b : d.test)
      if (!test_kinds.insert(b.kind).second)
        fail("{}: domains.{}.test: benchmark kind '{}' is already another domain's (one kind per domain)", where, d.name, b.kind);
    for (auto& b : d.mine)
      if (!mine_kinds.insert(b.kind).second)
        fail("{}: domains.{}.mine: benchmark kind '{}' is already another domain's (one kind per domain)", where, d.name, b.kind);
  }
}

PipelineConfig PipelineConfig::load(const fs::path& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path.string());
  } catch (const YAML::BadFile&) {
    fail("cannot read pipeline config '{}'", path.string());
  } catch (const YAML::Exception& e) {
    fail("{}:{}: not valid YAML: {}", path.string(), e.mark.line + 1, e.msg);
  }
  Reader r(path);
  PipelineConfig c;
  c.file = path;
  c.name = path.stem().string();
  r.expect_map(root, "", {"name", "work_dir", "threads", "jobs", "cpu_only", "base", "curriculum", "eval", "failures", "training",
                          "replay", "domains", "router", "runtime", "gates", "data", "compress"});
  if (root["name"]) c.name = r.str(root["name"], "name");
  if (root["work_dir"]) c.work_dir = r.str(root["work_dir"], "work_dir");
  if (root["threads"]) c.threads = r.integer(root["threads"], "threads", 0, 1024);
  if (root["jobs"]) c.jobs = r.integer(root["jobs"], "jobs", 1, 64);
  if (root["cpu_only"]) c.cpu_only = r.boolean(root["cpu_only"], "cpu_only");
  if (!root["base"]) fail("{}: 'base' is required (gguf: PATH, or train: {{...}})", path.string());
  read_base(r, root["base"], c);
  if (root["curriculum"]) read_curriculum(r, root["curriculum"], c.curriculum);
  if (c.base_train && c.curriculum.enabled)
    r.error(root["curriculum"], "curriculum", "a trained base brings its own curriculum (set it under base.train)");
  if (const YAML::Node e = root["eval"]) {
    r.expect_map(e, "eval", {"test_limit", "mine_limit", "mine_skip", "max_tokens", "parallel", "exec_cache"});
    if (e["test_limit"]) c.test_limit = size_t(r.integer(e["test_limit"], "eval.test_limit", 0, 100000000));
    if (e["mine_limit"]) c.mine_limit = size_t(r.integer(e["mine_limit"], "eval.mine_limit", 0, 100000000));
    if (e["mine_skip"])
      c.mine_skip = e["mine_skip"].IsScalar() && e["mine_skip"].Scalar() == "auto"
                        ? -1
                        : long(r.integer(e["mine_skip"], "eval.mine_skip", 0, 100000000));
    if (e["max_tokens"]) c.max_tokens = r.integer(e["max_tokens"], "eval.max_tokens", 1, 32768);
    if (e["parallel"]) c.parallel = r.integer(e["parallel"], "eval.parallel", 1, 255);
    if (e["exec_cache"]) c.exec_cache = r.boolean(e["exec_cache"], "eval.exec_cache");
  }
  if (const YAML::Node f = root["failures"]) {
    r.expect_map(f, "failures", {"cluster", "k", "k_max", "embeddings", "labeler"});
    if (f["cluster"]) c.cluster = r.boolean(f["cluster"], "failures.cluster");
    if (f["k"]) c.k = r.integer(f["k"], "failures.k", 0, 100);
    if (f["k_max"]) c.k_max = r.integer(f["k_max"], "failures.k_max", 1, 100);
    if (f["embeddings"]) c.embeddings = r.number(f["embeddings"], "failures.embeddings", 0, 10);
    if (const YAML::Node l = f["labeler"]) {
      r.expect_map(l, "failures.labeler", {"url", "model", "key_env"});
      if (!l["url"]) r.error(l, "failures.labeler.url", "required (an OpenAI-compatible base URL)");
      c.labeler_url = r.str(l["url"], "failures.labeler.url");
      if (c.labeler_url.rfind("http://", 0) != 0 && c.labeler_url.rfind("https://", 0) != 0)
        r.error(l["url"], "failures.labeler.url", "expected an http:// or https:// URL");
      if (l["model"]) c.labeler_model = r.str(l["model"], "failures.labeler.model");
      if (l["key_env"]) c.labeler_key_env = r.str(l["key_env"], "failures.labeler.key_env");
    }
  }
  ModifierSettings defaults;
  if (root["training"]) read_modifier(r, root["training"], "training", defaults);
  if (root["replay"]) c.replay = r.path(root["replay"], "replay");
  if (!root["domains"]) fail("{}: 'domains' is required", path.string());
  read_domains(r, root["domains"], c, defaults);
  for (const auto& d : c.domains)
    if (c.cpu_only && d.train.device.rfind("gpu", 0) == 0)
      fail("{}: cpu_only: true and domain {}'s training device '{}' contradict each other; give one", path.string(),
           d.name, d.train.device);
  if (const YAML::Node n = root["router"]) {
    r.expect_map(n, "router", {"enabled", "holdout", "epochs", "lr", "limit", "choose_on_dev", "dev_limit", "route_alpha"});
    if (n["enabled"]) c.router = r.boolean(n["enabled"], "router.enabled");
    if (n["holdout"]) c.router_holdout = r.number(n["holdout"], "router.holdout", 0.05, 0.9);
    if (n["epochs"]) c.router_epochs = r.integer(n["epochs"], "router.epochs", 1, 1000);
    if (n["lr"]) c.router_lr = r.number(n["lr"], "router.lr", 0, 100, true);
    if (n["limit"]) c.router_limit = size_t(r.integer(n["limit"], "router.limit", 0, 100000000));
    if (n["choose_on_dev"]) c.choose_on_dev = r.boolean(n["choose_on_dev"], "router.choose_on_dev");
    if (n["dev_limit"]) c.dev_limit = size_t(r.integer(n["dev_limit"], "router.dev_limit", 0, 100000000));
    if (n["route_alpha"]) c.route_alpha = r.number(n["route_alpha"], "router.route_alpha", 0, 1, true);
  }
  if (const YAML::Node n = root["runtime"]) {
    r.expect_map(n, "runtime", {"threshold", "escalation"});
    if (n["threshold"]) c.threshold = r.number(n["threshold"], "runtime.threshold", 0, 1);
    if (n["escalation"]) {
      c.escalation = r.str(n["escalation"], "runtime.escalation");
      if (c.escalation != "accurate" && c.escalation != "base")
        r.error(n["escalation"], "runtime.escalation", "must be accurate or base");
    }
  }
  if (root["gates"]) read_gates(r, root["gates"], c);
  if (root["data"]) c.data = read_data_config(root["data"], path);
  if (root["compress"]) pipeline_detail::read_compress(r, root["compress"], c.curriculum.enabled || c.base_train, c.compress);
  if (c.work_dir.empty()) c.work_dir = fs::path("runs") / c.name;
  c.validate();
  return c;
}

}  // namespace cogumi
