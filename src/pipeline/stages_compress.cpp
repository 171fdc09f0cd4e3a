// The compress stages (stages_compress.h): prune, imatrix, quantize, lora, eval, pack.
#include "pipeline/stages_compress.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <limits>

#include "compress/imatrix.h"
#include "compress/kld.h"
#include "compress/lora_shrink.h"
#include "compress/pack.h"
#include "compress/prune.h"
#include "compress/quantize.h"
#include "core/error.h"
#include "runtime/eval_system.h"
#include "runtime/system.h"

namespace cogumi::pipeline_detail {

namespace {

// Records per domain taken from the curriculum for calibration text (far more than the chunks read).
constexpr size_t kCurriculumLines = 1000;

const char* const kMetrics[] = {"compress.kld", "compress.kld_p99", "compress.agreement", "compress.ppl_ratio",
                                "compress.size_mb", "compress.packed_mb", "compress.accuracy_delta"};

std::vector<std::string> modifier_names(const Shared& sh) {
  std::vector<std::string> m;
  for (auto& d : sh.domains)
    if (d.modifier) m.push_back(d.name);
  return m;
}

// The stage holding the compressed base ("" when the base is not changed).
std::string model_stage(const Plan& plan) {
  if (plan.has("compress.quantize")) return "compress.quantize";
  if (plan.has("compress.prune")) return "compress.prune";
  return "";
}

json source_id(Plan& plan, const CompressSource& s, const char* split) {
  if (s.curriculum) return fmt::format("curriculum:{}-sft-text-interleaved", split);
  return plan.file_id(s.file);
}

// One SFT record as the model reads it: prompt + completion, instruction + output, or the
// messages' contents (the curriculum's JSONL keys are sorted, so "every string value" would put
// the completion before the prompt).
std::string record_text(const std::string& line) {
  const json j = json::parse(line, nullptr, false);
  if (!j.is_object()) return "";
  auto s = [&](const char* k) { return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string(); };
  if (j.contains("prompt")) return s("prompt") + s("completion");
  if (j.contains("instruction")) return s("instruction") + "\n" + s("output");
  std::string t;
  if (j.contains("messages") && j["messages"].is_array())
    for (auto& m : j["messages"])
      if (m.is_object() && m.contains("content") && m["content"].is_string()) t += m["content"].get<std::string>() + "\n";
  return t;
}

// The text file for a source: a given file, or the curriculum's SFT records of `split` (train or
// dev) as text, the domains interleaved record by record (so a few chunks see every domain).
fs::path source_file(const Shared& sh, const CompressSource& s, const fs::path& dir, bool dev) {
  if (!s.curriculum) return s.file;
  std::vector<std::vector<std::string>> texts;
  size_t longest = 0;
  for (const NanoDomain& d : nano_domains(sh.data)) {
    std::vector<std::string> v;
    const std::string text = read_file(dev ? d.dev_sft : d.train_sft);
    for (size_t at = 0; at < text.size() && v.size() < kCurriculumLines;) {
      size_t nl = text.find('\n', at);
      if (nl == std::string::npos) nl = text.size();
      if (std::string t = record_text(text.substr(at, nl - at)); !t.empty()) v.push_back(std::move(t));
      at = nl + 1;
    }
    longest = std::max(longest, v.size());
    texts.push_back(std::move(v));
  }
  std::string out;
  for (size_t i = 0; i < longest; ++i)
    for (auto& v : texts)
      if (i < v.size()) out += (out.empty() ? "" : "\n\n") + v[i];
  if (out.empty()) fail("compress: the curriculum's {} records hold no text", dev ? "dev" : "train");
  const fs::path f = dir / (dev ? "measure.txt" : "calibration.txt");
  write_file_atomic(f, out);
  return f;
}

void add_prune(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const CompressConfig& c = sh->cfg.compress;
  Stage s{"compress.prune", "7", sh->data_deps("base"), {}, {}, {}, {}};  // 2-7: the trainer's numbers changed (recovery)
  s.settings = {{"prune", c.to_json()["prune"]}, {"calibration", source_id(plan, c.prune_calib, "train")},
                {"ctx", c.calib_ctx}, {"chunks", c.calib_chunks}};
  if (c.recover) {  // recovery data, and the measure text for the quality before and after recovery
    s.settings["recover_data"] = c.recover_data.curriculum ? json("curriculum:mix/train.jsonl") : json(plan.file_id(c.recover_data.file));
    s.settings["measure"] = {{"data", source_id(plan, c.measure, "dev")}, {"ctx", c.measure_ctx}, {"chunks", c.measure_chunks}};
    add_backward_type_setting(s.settings);
  }
  s.run = [sh](const StageContext& ctx) {
    const CompressConfig& cc = sh->cfg.compress;
    PruneOptions o;
    o.model = ctx.result("base")["model"].get<std::string>();
    o.calib = source_file(*sh, cc.prune_calib, ctx.stage.dir, false);
    o.out = ctx.stage.dir / "pruned.gguf";
    o.level = cc.prune_level;
    o.what = cc.prune_what;
    o.uniform = cc.prune_uniform;
    o.multiple = cc.prune_multiple;
    o.ctx = cc.calib_ctx;
    o.max_chunks = cc.calib_chunks;
    o.n_threads = ctx.threads;
    if (cc.recover) {
      o.recover_data = cc.recover_data.curriculum ? sh->data / "mix/train.jsonl" : cc.recover_data.file;
      o.recover_steps = cc.recover_steps;
      o.recover_lr = float(cc.recover_lr);
      o.recover_rank = cc.recover_rank;
      o.recover_batch = cc.recover_batch;
      o.recover_seq_len = cc.recover_seq_len;
      o.recover_full = cc.recover_full;
      o.eval = source_file(*sh, cc.measure, ctx.stage.dir, true);
      o.eval_chunks = cc.measure_chunks;
    }
    PruneResult r = prune_model(o);
    return json{{"model", o.out.string()}, {"bytes", fs::file_size(o.out)}, {"prune", r.to_json()}};
  };
  plan.add(std::move(s));
}

void add_quantize(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const CompressConfig& c = sh->cfg.compress;
  const std::string src = plan.has("compress.prune") ? "compress.prune" : "base";
  if (!c.imatrix.none()) {
    Stage im{"compress.imatrix", "1", sh->data_deps(src.c_str()), {}, {}, {}, {}};
    im.settings = {{"data", source_id(plan, c.imatrix, "train")}, {"ctx", c.calib_ctx}, {"chunks", c.calib_chunks}};
    im.run = [sh, src](const StageContext& ctx) {
      const CompressConfig& cc = sh->cfg.compress;
      ImatrixOptions o;
      o.model = ctx.result(src)["model"].get<std::string>();
      o.data = source_file(*sh, cc.imatrix, ctx.stage.dir, false);
      o.out = ctx.stage.dir / "imatrix.gguf";
      o.chunk = cc.calib_ctx;
      o.chunks = cc.calib_chunks;
      o.n_threads = ctx.threads;
      o.progress = ctx.progress;
      ImatrixResult r = compute_imatrix(o);
      return json{{"imatrix", o.out.string()}, {"entries", r.n_entries}, {"chunks", r.n_chunks}, {"tokens", r.n_tokens}};
    };
    plan.add(std::move(im));
  }
  Stage q{"compress.quantize", "1", {src}, {{"type", c.quantize}, {"tensor_types", c.tensor_types}}, {}, {}, {}};
  if (plan.has("compress.imatrix")) q.deps.push_back("compress.imatrix");
  q.run = [sh, src](const StageContext& ctx) {
    QuantizeOptions o;
    o.in = ctx.result(src)["model"].get<std::string>();
    o.out = ctx.stage.dir / fmt::format("base.{}.gguf", sh->cfg.compress.quantize);
    o.type = sh->cfg.compress.quantize;
    o.tensor_types = sh->cfg.compress.tensor_types;
    if (ctx.plan.has("compress.imatrix")) o.imatrix = ctx.result("compress.imatrix")["imatrix"].get<std::string>();
    o.n_threads = ctx.threads;
    QuantizeResult r = quantize_model(o);
    return json{{"model", o.out.string()}, {"bytes", r.out_bytes}, {"in_bytes", r.in_bytes},
                {"imatrix_entries", r.n_imatrix_entries}};
  };
  plan.add(std::move(q));
}

void add_lora(Plan& plan, const std::shared_ptr<Shared>& sh) {
  // Version 2: Eigen's products single-threaded (EIGEN_DONT_PARALLELIZE), so the cut adapters no longer depend on
  // the machine's core count; their rounding may differ from version 1's.
  Stage s{"compress.lora", "2", {}, {{"rank", sh->cfg.compress.lora_rank}}, {}, {}, {}};
  for (auto& m : modifier_names(*sh)) s.deps.push_back("train." + m);
  s.run = [sh](const StageContext& ctx) {
    LoraShrinkOptions o;
    o.rank = sh->cfg.compress.lora_rank;
    o.n_threads = ctx.threads;
    json out = json::object();
    for (auto& m : modifier_names(*sh)) {
      const fs::path in = ctx.result("train." + m)["adapter"].get<std::string>(), to = ctx.stage.dir / (m + ".gguf");
      LoraShrinkResult r = lora_shrink(in, to, o);
      double kept = 1, err = 0;
      int rank_in = 0;
      for (auto& t : r.tensors) kept = std::min(kept, t.energy_kept), err = std::max(err, t.frob_error), rank_in = std::max(rank_in, t.rank_in);
      out[m] = {{"adapter", to.string()}, {"bytes", r.file_bytes_out}, {"bytes_in", fs::file_size(in)},
                {"rank_in", rank_in},     {"rank", o.rank},             {"min_energy_kept", kept}, {"max_frob_error", err}};
    }
    return json{{"adapters", out}};
  };
  plan.add(std::move(s));
}

// The system file of the compressed system: eval_system's, with the compressed base and adapters.
// A pruned base takes no modifier (their shapes are the unpruned base's): it is the base alone.
fs::path write_system(const StageContext& ctx, const fs::path& model, const std::map<std::string, fs::path>& adapters,
                      bool pruned) {
  YAML::Node y = YAML::LoadFile(ctx.result("eval_system")["system"].get<std::string>());
  y["name"] = y["name"].as<std::string>() + "-compressed";
  y["base"] = model.string();
  if (pruned) {
    y.remove("router");
    YAML::Node choices;
    choices["base"] = YAML::Node(YAML::NodeType::Map);
    y["choices"] = choices;
  }
  // eval_system's choices by the modifier each uses (a domain may be routed to another domain's modifier)
  const json uses = ctx.result("eval_system").value("choice_modifiers", json::object());
  for (auto it = y["choices"].begin(); it != y["choices"].end(); ++it) {
    const std::string c = it->first.as<std::string>();
    const std::string m = uses.contains(c) ? uses[c].get<std::string>() : c;
    if (adapters.count(m)) it->second["adapter"] = adapters.at(m).string();
  }
  YAML::Emitter e;
  e << y;
  const fs::path f = ctx.stage.dir / "system.compressed.yaml";
  write_file_atomic(f, std::string(e.c_str()) + "\n");
  return f;
}

json measure_kld(const Shared& sh, const StageContext& ctx, const fs::path& model) {
  const CompressConfig& c = sh.cfg.compress;
  ReportOptions o;
  o.base = ctx.result("base")["model"].get<std::string>();
  o.candidates = {model};
  o.data = source_file(sh, c.measure, ctx.stage.dir, true);
  o.ctx = c.measure_ctx;
  o.chunks = c.measure_chunks;
  o.n_threads = ctx.threads;
  o.progress = ctx.progress;
  const ReportResult r = compress_report(o);
  const KldStats& k = r.candidates.at(0);
  return {{"kld_mean", k.kld_mean}, {"kld_median", k.kld_median}, {"kld_p99", k.kld_p99}, {"kld_max", k.kld_max},
          {"agreement", k.top1_agreement}, {"ppl", k.ppl}, {"base_ppl", r.base_ppl}, {"ppl_ratio", k.ppl_ratio},
          {"tokens", r.n_scored}, {"chunks", r.n_chunks}, {"ctx", r.ctx}, {"data", o.data.string()}};
}

json eval_compressed(const Shared& sh, const StageContext& ctx, const fs::path& system, bool pruned) {
  EvalOptions e;
  for (auto& d : sh.domains) e.benches.insert(e.benches.end(), d.test.begin(), d.test.end());
  e.out_dir = ctx.stage.dir / "run";
  e.limit = sh.cfg.test_limit;
  e.max_tokens = sh.cfg.max_tokens;
  e.gen.n_parallel = sh.cfg.parallel;
  e.gen.n_threads = ctx.threads;
  e.progress = ctx.progress;
  e.resume = fs::exists(e.out_dir / "items.jsonl");
  e.exec_cache = sh.code_runs();
  e.cancel = ctx.cancel;
  const json summary = eval_system(SystemConfig::load(system), e);
  const json acc = domain_accuracy(summary, sh.domains);
  const char* against = pruned ? "eval_base" : "eval_system";
  const json& ref = ctx.result(against)["domains"];
  json delta = json::object();
  double worst = std::numeric_limits<double>::infinity();
  for (auto& [d, v] : acc.items()) {
    const double x = v["accuracy"].get<double>() - ref[d]["accuracy"].get<double>();
    delta[d] = x;
    worst = std::min(worst, x);
  }
  return {{"run", e.out_dir.string()}, {"against", pruned ? "base" : "routed"}, {"accuracy", acc},
          {"reference", ref}, {"delta", delta}, {"accuracy_delta", worst}};
}

void add_eval(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const CompressConfig& c = sh->cfg.compress;
  Stage s{"compress.eval", "1", sh->data_deps("base"), {}, {}, {}, {}};
  const std::string ms = model_stage(plan);
  if (!ms.empty()) s.deps.push_back(ms);
  if (plan.has("compress.lora")) s.deps.push_back("compress.lora");
  for (auto& m : modifier_names(*sh)) s.deps.push_back("train." + m);
  for (const char* d : {"router", "eval_base", "eval_system"}) s.deps.push_back(d);
  s.settings = {{"measure", source_id(plan, c.measure, "dev")}, {"ctx", c.measure_ctx}, {"chunks", c.measure_chunks},
                {"eval", c.eval}};
  s.run = [sh, ms](const StageContext& ctx) {
    const bool pruned = ctx.plan.has("compress.prune");
    const fs::path model = ms.empty() ? ctx.result("base")["model"].get<std::string>() : ctx.result(ms)["model"].get<std::string>();
    json out = {{"model", model.string()}, {"bytes", fs::file_size(model)}, {"base_bytes", ctx.result("base")["bytes"]},
                {"settings", sh->cfg.compress.to_json()}};
    if (ms.empty()) out["kld_skipped"] = "the base is unchanged (no quantize or prune)";
    else out["kld"] = measure_kld(*sh, ctx, model);
    std::map<std::string, fs::path> adapters;
    double bytes = double(fs::file_size(model));
    if (!pruned)
      for (auto& m : modifiers_in_use(ctx)) {  // the routed system's modifiers only
        const json& r = ctx.plan.has("compress.lora") ? ctx.result("compress.lora")["adapters"][m] : ctx.result("train." + m);
        adapters[m] = r["adapter"].get<std::string>();
        bytes += r["bytes"].get<double>();
      }
    const json& router = ctx.result("router");
    if (!router.contains("skipped") && !pruned) bytes += router["bytes"].get<double>();
    out["system_bytes"] = bytes;
    const fs::path system = write_system(ctx, model, adapters, pruned);
    out["system"] = system.string();
    if (pruned && !modifier_names(*sh).empty())
      out["note"] = "a pruned base takes none of the modifiers (trained on the unpruned shapes): the compressed system is the base alone";
    if (sh->cfg.compress.eval) out["eval"] = eval_compressed(*sh, ctx, system, pruned);
    else out["eval_skipped"] = "compress.eval is false";
    return out;
  };
  plan.add(std::move(s));
}

void add_pack(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const std::string ms = model_stage(plan).empty() ? "base" : model_stage(plan);
  Stage s{"compress.pack", "1", {ms}, {{"level", PackOptions{}.level}, {"split", PackOptions{}.split}}, {}, {}, {}};
  s.run = [ms, sh](const StageContext& ctx) {
    const fs::path in = ctx.result(ms)["model"].get<std::string>(), out = ctx.stage.dir / "base.czst";
    PackOptions po;
    po.threads = std::min(ctx.threads, 256);  // the same bytes at any count, so not part of the key
    const PackResult r = pack_gguf(in, out, po);
    const UnpackResult v = verify_pack(out);
    if (v.sha256 != r.sha256) fail("compress.pack: {} does not verify (sha256 {} vs {})", out.string(), v.sha256, r.sha256);
    return json{{"pack", out.string()}, {"bytes", r.packed_bytes}, {"raw_bytes", r.raw_bytes}, {"ratio", r.ratio()},
                {"sha256", r.sha256}};
  };
  plan.add(std::move(s));
}

}  // namespace

void add_compress_stages(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const CompressConfig& c = sh->cfg.compress;
  if (!c.enabled) return;
  if (c.prune_level > 0) add_prune(plan, sh);
  if (!c.quantize.empty()) add_quantize(plan, sh);
  if (c.lora_rank > 0 && c.prune_level <= 0 && !modifier_names(*sh).empty()) add_lora(plan, sh);
  add_eval(plan, sh);
  if (c.pack) add_pack(plan, sh);
}

std::vector<std::string> compress_deps(const Plan& plan) {
  std::vector<std::string> d;
  for (const char* s : {"compress.eval", "compress.pack"})
    if (plan.has(s)) d.push_back(s);
  return d;
}

void compress_metrics(const StageContext& ctx, GateMetrics& m) {
  if (!ctx.plan.has("compress.eval")) {
    for (const char* k : kMetrics) m.missing_reason[k] = "the config has no compress: section";
    return;
  }
  const json& r = ctx.result("compress.eval");
  if (r.contains("kld")) {
    m.scalars["compress.kld"] = r["kld"]["kld_mean"];
    m.scalars["compress.kld_p99"] = r["kld"]["kld_p99"];
    m.scalars["compress.agreement"] = r["kld"]["agreement"];
    m.scalars["compress.ppl_ratio"] = r["kld"]["ppl_ratio"];
  } else {
    for (const char* k : {"compress.kld", "compress.kld_p99", "compress.agreement", "compress.ppl_ratio"})
      m.missing_reason[k] = r.value("kld_skipped", std::string("not measured"));
  }
  const double bytes = r["system_bytes"].get<double>();
  m.scalars["compress.size_mb"] = bytes / 1e6;
  if (ctx.plan.has("compress.pack"))
    m.scalars["compress.packed_mb"] = (bytes - r["bytes"].get<double>() + ctx.result("compress.pack")["bytes"].get<double>()) / 1e6;
  else
    m.missing_reason["compress.packed_mb"] = "compress.pack is off";
  if (r.contains("eval")) m.scalars["compress.accuracy_delta"] = r["eval"]["accuracy_delta"];
  else m.missing_reason["compress.accuracy_delta"] = r.value("eval_skipped", std::string("not evaluated"));
}

bool compress_gates_passed(const json& gates, std::string* why) {
  for (const json& g : gates.value("gates", json::array())) {
    const std::string text = g.value("gate", "");
    if (text.find("compress.") != std::string::npos && !g.value("passed", false)) {
      if (why) *why = "gate '" + text + "' failed";
      return false;
    }
  }
  return true;
}

json compress_report_part(const StageContext& ctx) {
  if (!ctx.plan.has("compress.eval")) return nullptr;
  json r = ctx.result("compress.eval");
  for (const char* s : {"compress.prune", "compress.imatrix", "compress.quantize", "compress.lora", "compress.pack"})
    if (ctx.plan.has(s)) r[std::string(s).substr(9)] = ctx.result(s);
  std::string why;
  r["published"] = compress_gates_passed(ctx.result("gates"), &why);
  if (!why.empty()) r["not_published"] = why;
  return r;
}

void publish_compressed(const Plan& plan) {
  const fs::path dst = plan.work_dir() / "system.compressed.yaml";
  if (!plan.has("compress.eval") || !plan.finished("compress.eval") || !plan.has("gates") || !plan.finished("gates")) return;
  const json gates = json::parse(read_file(plan.at("gates").dir / "gates.json"), nullptr, false);
  std::error_code ec;
  if (gates.is_discarded() || !compress_gates_passed(gates)) {
    fs::remove(dst, ec);
    return;
  }
  write_file_atomic(dst, read_file(plan.at("compress.eval").dir / "system.compressed.yaml"));
}

}  // namespace cogumi::pipeline_detail
