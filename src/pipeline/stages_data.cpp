// The `data:` stages: teach.D, judge.D, curate.D (pipeline/stages_data.h).
#include "pipeline/stages_data.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "analysis/failures.h"
#include "core/error.h"
#include "data/cascade.h"
#include "data/dedup.h"
#include "data/judge.h"
#include "data/pairs.h"

namespace cogumi {

namespace pipeline_detail {

namespace {

const DomainFiles& files(const Shared& sh, const std::string& name) {
  for (auto& d : sh.domains)
    if (d.name == name) return d;
  fail("no domain named '{}'", name);
}

// A benchmark file's identity for keys: curriculum files by their place in the (keyed)
// curriculum directory, others by sha256.
json bench_id(Plan& plan, const Shared& sh, const BenchSpec& b) {
  const std::string rel = sh.data.empty() ? "" : fs::relative(b.path, sh.data).string();
  return {b.kind, !sh.data.empty() && rel.rfind("..", 0) != 0 ? "curriculum:" + rel : plan.file_id(b.path)};
}

// What an endpoint contributes to a key: what changes the answers, not how they are fetched.
json endpoint_id(Plan& plan, const TeacherEndpoint& e) {
  return {{"name", e.name},
          {"base_url", e.base_url},
          {"model", e.model},
          {"api", e.api},
          {"api_key_env", e.api_key_env},
          {"template", e.prompt_template.empty() ? json(nullptr) : json(plan.file_id(e.prompt_template))},
          {"max_tokens", e.max_tokens},
          {"temperature", e.temperature}};
}

// Every test set the config names, and the extra decontamination sets.
std::vector<BenchSpec> decontam_benches(const Shared& sh) {
  std::vector<BenchSpec> b;
  for (auto& d : sh.domains) b.insert(b.end(), d.test.begin(), d.test.end());
  b.insert(b.end(), sh.cfg.data.decontam_extra.begin(), sh.cfg.data.decontam_extra.end());
  return b;
}

std::string jsonl_line(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

// D's failure clusters as the cascade reads them (group = D), in `out`; returns D's failures.
// The cluster stage's clusters of D's mining benchmarks when it ran; else one cluster per
// benchmark holding all of its failures.
size_t write_domain_clusters(const StageContext& ctx, const DomainFiles& d, const fs::path& run, const fs::path& out) {
  std::set<std::string> kinds;
  for (auto& b : d.mine) kinds.insert(b.kind);
  std::string text;
  size_t n = 0;
  const bool clustered = ctx.plan.has("cluster") && !ctx.result("cluster").contains("skipped");
  if (clustered) {
    read_jsonl(ctx.dir("cluster") / "clusters.jsonl", [&](const json& c, size_t) {
      if (!kinds.count(c.value("group", ""))) return;
      json line = c;
      line["group"] = d.name;
      n += line.value("members", json::array()).size();
      text += jsonl_line(line);
    });
  } else {
    std::map<std::string, json> by_kind;
    for (const json& f : load_failures(run)) {
      const std::string k = f.value("benchmark", "");
      if (!kinds.count(k)) continue;
      json& c = by_kind[k];
      if (c.is_null())
        c = {{"group", d.name}, {"label", k + " failures (not clustered)"}, {"members", json::array()},
             {"representatives", json::array()}, {"failure_types", json::object()}};
      c["members"].push_back(f.value("id", ""));
      if (c["representatives"].size() < 3) c["representatives"].push_back(f.value("id", ""));
      const std::string t = f.value("failure_type", "unknown");
      c["failure_types"][t] = c["failure_types"].value(t, 0) + 1;
      ++n;
    }
    int i = 0;
    for (auto& [k, c] : by_kind) {
      c["cluster"] = i++;
      text += jsonl_line(c);
    }
  }
  write_file_atomic(out, text);
  return n;
}

json teach_run(const Shared& sh, const DomainFiles& d, const StageContext& ctx) {
  const fs::path run = ctx.result("mine")["run"].get<std::string>();
  const fs::path clusters = ctx.stage.dir / "clusters.jsonl";
  const size_t n = write_domain_clusters(ctx, d, run, clusters);
  if (n == 0)
    return json{{"domain", d.name}, {"failures", 0}, {"kept", 0}, {"open", 0}, {"tiers", json::array()},
                {"spent_tokens", 0}, {"kept_file", ""}, {"skipped", fmt::format("no failures of {} were mined", d.name)}};
  GenerateOptions g;
  g.tiers = sh.cfg.data.tiers;
  g.clusters = clusters;
  g.run = run;
  g.domain = d.name;
  g.benches = d.mine;
  g.out = ctx.stage.dir / "teacher.jsonl";
  g.spend_cap_tokens = sh.cfg.data.spend_cap_tokens;
  g.limit = sh.cfg.data.limit;
  g.progress = ctx.progress;
  const CascadeResult r = run_cascade(g);
  json out = r.report;
  out["table"] = cascade_table(r);
  return out;
}

json judge_run(const Shared& sh, const DomainFiles& d, const StageContext& ctx) {
  const json& t = ctx.result("teach." + d.name);
  const fs::path kept = ctx.stage.dir / "kept.jsonl";
  if (t.value("kept", 0) == 0) {
    write_file_atomic(kept, "");
    json r = JudgeReport{}.to_json();
    r["kept_file"] = kept.string();
    return r;
  }
  JudgeOptions j;
  j.endpoint = sh.cfg.data.judge_endpoint;
  j.in = t["kept_file"].get<std::string>();
  j.out = kept;
  j.threshold = sh.cfg.data.judge_threshold;
  j.benches = d.mine;
  j.spend_cap_tokens = sh.cfg.data.spend_cap_tokens;
  j.progress = ctx.progress;
  json r = run_judge(j).to_json();
  r["kept_file"] = kept.string();
  r["judged_file"] = sibling_path(kept, ".judged.jsonl").string();
  return r;
}

// Pairs in the mined failures' own form (data.pairs.form: eval): each kept example's failed item as
// the eval prompted it, the teacher's answer as the completion; reverse pairs (instruction form) after.
PairsStats write_eval_form_pairs(const fs::path& examples, const fs::path& run, const fs::path& out, bool reverse) {
  std::map<std::string, std::string> prompt_of;
  read_jsonl(run / "items.jsonl", [&](const json& j, size_t) {
    if (j.contains("prompt") && j["prompt"].is_string()) prompt_of.emplace(j.value("id", ""), j["prompt"].get<std::string>());
  });
  PairsStats st;
  std::string text;
  read_jsonl(examples, [&](const json& ex, size_t line) {
    ++st.n_records;
    const std::string id = ex.value("item", "");
    const auto it = prompt_of.find(id);
    if (it == prompt_of.end())
      fail("{}:{}: item '{}' is not an item of the mining run '{}'", examples.string(), line, id, run.string());
    text += jsonl_line({{"prompt", it->second}, {"completion", " " + ex.value("output", "")}, {"direction", "forward"},
                        {"item", id}, {"tier", ex.value("tier", json(nullptr))}});
    ++st.n_forward;
  });
  if (reverse) {
    PairsOptions po;
    po.forward = false;
    po.reverse = true;
    const fs::path tmp = out.string() + ".reverse";
    st.n_reverse = write_pairs(examples, tmp, po).n_reverse;
    text += read_file(tmp);
    fs::remove(tmp);
  }
  write_file_atomic(out, text);
  return st;
}

json curate_run(const Shared& sh, const std::string& from, const StageContext& ctx) {
  const DataConfig& dc = sh.cfg.data;
  const json& prev = ctx.result(from);
  const fs::path examples = ctx.stage.dir / "examples.jsonl", train = ctx.stage.dir / "train.jsonl";
  json out = {{"from", from}, {"form", dc.form}, {"weight", dc.weight}, {"train_file", train.string()}, {"examples_file", examples.string()}};
  const std::string in = prev.value("kept_file", "");
  if (in.empty() || prev.value("kept", 0) == 0) {
    write_file_atomic(examples, "");
    write_file_atomic(train, "");
    out.update(json{{"in", 0}, {"kept", 0}, {"exact", 0}, {"near", 0}, {"contaminated", 0}, {"pairs", 0}});
    return out;
  }
  DedupOptions o;
  o.inputs = {in};
  o.output = examples;
  o.report = ctx.stage.dir / "dedup.report.json";
  o.removed = ctx.stage.dir / "removed.jsonl";
  o.exact = dc.exact;
  o.near = dc.near;
  o.threshold = dc.dedup_threshold;
  o.decontam.benches = decontam_benches(sh);
  o.decontam.ngram = dc.ngram;
  o.decontam.min_words = dc.min_words;
  o.threads = std::min(ctx.threads, 256);
  o.progress = false;
  o.cancel = ctx.cancel;
  const DedupResult r = run_dedup(o);
  PairsOptions po;
  po.reverse = dc.reverse;
  const PairsStats ps = dc.form == "eval"
                            ? write_eval_form_pairs(examples, ctx.result("mine")["run"].get<std::string>(), train, dc.reverse)
                            : write_pairs(examples, train, po);
  json contaminated = json::array();
  if (r.report.contains("decontamination"))
    for (auto& c : r.report["decontamination"]["records"])
      if (contaminated.size() < 20) contaminated.push_back(c);
  out.update(json{{"in", r.n_in}, {"kept", r.n_kept}, {"exact", r.n_exact}, {"near", r.n_near},
                  {"contaminated", r.n_contaminated}, {"pairs", ps.n_forward + ps.n_reverse},
                  {"forward", ps.n_forward}, {"reverse", ps.n_reverse}, {"contaminated_records", contaminated},
                  {"removed_examples", r.report.value("examples", json::object())},
                  {"removed_by_benchmark", r.report.contains("decontamination")
                                               ? r.report["decontamination"]["removed_by_benchmark"] : json::object()}});
  return out;
}

}  // namespace

std::vector<std::string> data_domains(const Shared& sh) {
  if (!sh.cfg.data.enabled) return {};
  if (!sh.cfg.data.domains.empty()) return sh.cfg.data.domains;
  std::vector<std::string> out;
  for (auto& d : sh.domains)
    if (d.modifier && !d.mine.empty()) out.push_back(d.name);
  return out;
}

void add_data_stages(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const DataConfig& dc = sh->cfg.data;
  if (!dc.enabled) return;
  if (!plan.has("mine") || !plan.has("failures"))
    fail("{}: data: the teachers answer mined failures, but no domain mines any", sh->cfg.file.string());
  json tiers = json::array();
  for (auto& t : dc.tiers) tiers.push_back(endpoint_id(plan, t));
  json tests = json::array();
  for (auto& b : decontam_benches(*sh)) tests.push_back(bench_id(plan, *sh, b));
  for (const std::string& name : data_domains(*sh)) {
    const DomainFiles& d = files(*sh, name);
    if (d.mine.empty()) fail("{}: data.domains: '{}' mines no failures for the teachers to answer", sh->cfg.file.string(), name);
    Stage t{"teach." + name, "1", {"mine", "failures"}, {}, {}, {}, {}};
    if (plan.has("cluster")) t.deps.push_back("cluster");
    t.settings = {{"tiers", tiers}, {"limit", dc.limit}, {"spend_cap_tokens", dc.spend_cap_tokens}};
    t.run = [sh, d](const StageContext& ctx) { return teach_run(*sh, d, ctx); };
    plan.add(std::move(t));
    std::string from = "teach." + name;
    if (dc.judge) {
      Stage j{"judge." + name, "1", {from}, {{"judge", endpoint_id(plan, dc.judge_endpoint)}, {"threshold", dc.judge_threshold},
                                             {"spend_cap_tokens", dc.spend_cap_tokens}}, {}, {}, {}};
      j.run = [sh, d](const StageContext& ctx) { return judge_run(*sh, d, ctx); };
      plan.add(std::move(j));
      from = "judge." + name;
    }
    Stage c{"curate." + name, "1", {from, "mine"}, {}, {}, {}, {}};
    if (!sh->data_stage.empty()) c.deps.push_back(sh->data_stage);  // curriculum test sets: keyed by it
    c.settings = {{"exact", dc.exact}, {"near", dc.near}, {"threshold", dc.dedup_threshold}, {"ngram", dc.ngram},
                  {"min_words", dc.min_words}, {"tests", tests}, {"reverse", dc.reverse}, {"form", dc.form},
                  {"weight", dc.weight}};
    c.run = [sh, from](const StageContext& ctx) { return curate_run(*sh, from, ctx); };
    plan.add(std::move(c));
  }
}

std::string data_stage_of(const Shared& sh, const std::string& domain) {
  const auto d = data_domains(sh);
  return std::find(d.begin(), d.end(), domain) == d.end() ? "" : "curate." + domain;
}

void add_data_source(const StageContext& ctx, const std::string& domain, json& sources) {
  const std::string stage = "curate." + domain;
  if (std::find(ctx.stage.deps.begin(), ctx.stage.deps.end(), stage) == ctx.stage.deps.end()) return;
  const json& c = ctx.result(stage);
  if (c.value("pairs", 0) > 0)
    sources.push_back({{"path", c["train_file"]}, {"weight", c["weight"]}, {"what", "teacher data"}});
}

std::vector<std::string> data_final_deps(const Shared& sh) {
  std::vector<std::string> out;
  for (auto& d : data_domains(sh)) {
    out.push_back("teach." + d);
    if (sh.cfg.data.judge) out.push_back("judge." + d);
    out.push_back("curate." + d);
  }
  return out;
}

void data_gate_metrics(const Shared& sh, const StageContext& ctx, GateMetrics& m) {
  const auto domains = data_domains(sh);
  const char* names[] = {"data.kept", "data.contaminated", "data.duplicates", "data.asked", "data.agreement"};
  if (domains.empty()) {
    for (const char* n : names) m.missing_reason[n] = "the config has no data: section";
    return;
  }
  double kept = 0, contaminated = 0, dups = 0, asked = 0, both = 0, agree = 0;
  for (auto& d : domains) {
    const json& t = ctx.result("teach." + d);
    if (!t["tiers"].empty()) asked += t["tiers"][0].value("asked", 0.0);
    const json& c = ctx.result("curate." + d);
    kept += c.value("kept", 0.0);
    contaminated += c.value("contaminated", 0.0);
    dups += c.value("exact", 0.0) + c.value("near", 0.0);
    if (sh.cfg.data.judge) {
      const json& j = ctx.result("judge." + d);
      both += j.value("judged_and_checked", 0.0);
      agree += j.value("agree", 0.0);
    }
  }
  m.scalars["data.kept"] = kept;
  m.scalars["data.contaminated"] = contaminated;
  m.scalars["data.duplicates"] = dups;
  m.scalars["data.asked"] = asked;
  if (both > 0) m.scalars["data.agreement"] = agree / both;
  else m.missing_reason["data.agreement"] = sh.cfg.data.judge ? "no example was both judged and checked" : "no data.judge";
}

json data_report(const Shared& sh, const StageContext& ctx) {
  const auto domains = data_domains(sh);
  if (domains.empty()) return nullptr;
  json out = json::object();
  for (auto& d : domains) {
    json row = {{"teach", ctx.result("teach." + d)}, {"curate", ctx.result("curate." + d)}};
    row["teach"].erase("table");
    if (sh.cfg.data.judge) row["judge"] = ctx.result("judge." + d);
    out[d] = row;
  }
  return out;
}

}  // namespace pipeline_detail
}  // namespace cogumi
