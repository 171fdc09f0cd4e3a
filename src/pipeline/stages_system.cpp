// The stages after the modifiers: routes, router, calibrate, eval_system, gates, report.
#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "core/error.h"
#include "eval/compare.h"
#include "eval/score.h"
#include "pipeline/report_html.h"
#include "pipeline/stages_compress.h"
#include "pipeline/stages_data.h"
#include "pipeline/stages_detail.h"
#include "route/data.h"
#include "route/router_job.h"
#if __has_include("route/calibration.h")
#include "route/calibration.h"
#endif
#include "runtime/eval_system.h"

namespace cogumi::pipeline_detail {

namespace {

const std::set<std::string> kAskAs = {"gsm8k", "humaneval", "mmlu", "bfcl", "bbh", "mbpp"};

std::vector<std::string> modifier_names(const Shared& sh) {
  std::vector<std::string> m;
  for (auto& d : sh.domains)
    if (d.modifier) m.push_back(d.name);
  return m;
}

}  // namespace

std::string default_route(const DomainFiles& d) { return d.modifier ? d.name : "base"; }

std::set<std::string> modifiers_in_use(const StageContext& ctx) {
  std::set<std::string> out;
  const json uses = ctx.result("eval_system").value("choice_modifiers", json::object());  // a copy: items() needs it alive
  for (auto& [choice, m] : uses.items()) out.insert(m.get<std::string>());
  return out;
}

json choose_routes(const std::vector<DomainFiles>& domains, const json& dev_accuracy, const json& dev_vs_base,
                   double alpha) {
  json routes = json::object();
  for (auto& d : domains) {
    const auto acc = [&](const std::string& config) {
      const json& a = dev_accuracy.contains(config) ? dev_accuracy[config] : json::object();
      return a.contains(d.name) && a[d.name].value("n", 0L) > 0 ? a[d.name]["accuracy"].get<double>() : -1.0;
    };
    // with the test on and the base measured, a modifier must beat the base significantly to be a candidate
    const bool test = alpha < 1 && acc("base") >= 0;
    const auto allowed = [&](const std::string& config) {
      if (!test || config == "base") return true;
      const json* v = dev_vs_base.contains(config) ? &dev_vs_base[config] : nullptr;
      return v && v->contains(d.name) && (*v)[d.name].value("wins", 0) > (*v)[d.name].value("losses", 0) &&
             (*v)[d.name].value("p", 1.0) < alpha;
    };
    std::string best = default_route(d);
    if (!d.dev.empty() && !allowed(best)) best = "base";
    double best_acc = acc(best);
    if (!d.dev.empty()) {
      if (acc("base") > best_acc) best = "base", best_acc = acc("base");  // the base first among equal alternatives
      for (auto& [config, _] : dev_accuracy.items())
        if (acc(config) > best_acc && allowed(config)) best = config, best_acc = acc(config);
    }
    routes[d.name] = best;
  }
  return routes;
}

json compare_by_domain(const std::vector<DomainFiles>& domains, const fs::path& a, const fs::path& b, bool dev) {
  const json cmp = compare_runs(a, b);
  json out = json::object();
  for (auto& d : domains) {
    const std::vector<BenchSpec>& benches = dev ? d.dev : d.test;
    if (dev && benches.empty()) continue;
    int w = 0, t = 0, l = 0;
    for (auto& [cat, v] : cmp["categories"].items())
      for (auto& bench : benches)
        if (cat.rfind(bench.kind + "/", 0) == 0) w += v["wins"].get<int>(), t += v["ties"].get<int>(), l += v["losses"].get<int>();
    out[d.name] = {{"wins", w}, {"ties", t}, {"losses", l}, {"mcnemar_p", mcnemar_p(w, l)}};
  }
  return out;
}

json dev_against_base(const std::vector<DomainFiles>& domains, const fs::path& base_run, const fs::path& run) {
  const json cmp = compare_by_domain(domains, base_run, run, true);  // alive for items()
  json out = json::object();
  for (auto& [domain, v] : cmp.items())
    out[domain] = {{"wins", v["wins"]}, {"losses", v["losses"]}, {"p", v["mcnemar_p"]}};
  return out;
}

namespace {

// Domain d's route in a `routes` result: the base or a modifier this plan trains; anything else (a result from a
// plan with other modifiers) falls back to the default route.
std::string route_of(const Shared& sh, const json& routes, const DomainFiles& d) {
  if (routes.is_object() && routes.contains(d.name) && routes[d.name].is_string()) {
    const std::string r = routes[d.name].get<std::string>();
    if (r == "base") return r;
    for (auto& m : sh.domains)
      if (m.modifier && m.name == r) return r;
  }
  return default_route(d);
}

std::vector<BenchSpec> all_dev(const Shared& sh) {
  std::vector<BenchSpec> t;
  for (auto& d : sh.domains) t.insert(t.end(), d.dev.begin(), d.dev.end());
  return t;
}

// Each domain's route: the base and every modifier evaluated on the dev splits (a stage each: dev.base,
// dev.MODIFIER, so one retrained modifier re-evaluates only itself), then `routes` takes the configuration best
// on each domain's dev split among those router.route_alpha admits (choose_routes, dev_against_base). Without a dev split, with router.choose_on_dev off or with no
// modifier there are no dev stages and `routes` keeps the defaults. Result {routes: {domain: base | modifier},
// dev_accuracy: {config: {domain: {n, correct, accuracy}}}, dev_vs_base: {modifier: {domain: {wins, losses, p}}},
// route_alpha} or {routes, reason}.
void add_routes(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  const std::vector<BenchSpec> dev = all_dev(*sh);
  const std::vector<std::string> mods = modifier_names(*sh);
  const char* reason = !c.router          ? "router.enabled is false: every request takes the base"
                       : !c.choose_on_dev ? "router.choose_on_dev is false"
                       : dev.empty()      ? "no domain has a dev split"
                       : mods.empty()     ? "no modifiers"
                                          : nullptr;
  // The key covers each domain's default route and dev kinds: a modifier turned on or off, or a renamed domain,
  // chooses again.
  json defaults = json::object(), dev_kinds = json::object();
  for (auto& d : sh->domains) {
    defaults[d.name] = default_route(d);
    dev_kinds[d.name] = json::array();
    for (auto& b : d.dev) dev_kinds[d.name].push_back(b.kind);
  }
  Stage s{"routes", "3", {}, {{"choose_on_dev", c.choose_on_dev}, {"router", c.router}, {"defaults", defaults}}, {}, {}, {}};
  if (!reason) {
    s.settings["route_alpha"] = c.route_alpha;  // only where a choice is made: elsewhere it changes nothing
    const json settings = {{"dev", bench_ids(plan, *sh, dev)},
                           {"dev_kinds", dev_kinds},
                           {"limit", c.dev_limit},
                           {"eval", {{"max_tokens", c.max_tokens}, {"parallel", c.parallel}}}};
    std::vector<std::string> configs = {"base"};
    configs.insert(configs.end(), mods.begin(), mods.end());
    for (const std::string& config : configs) {
      Stage ev{"dev." + config, "1", sh->data_deps("base"), settings, {}, {}, {}};
      if (config != "base") ev.deps.push_back("train." + config);
      ev.run = [sh, config](const StageContext& ctx) {
        std::vector<std::pair<std::string, fs::path>> adapters;
        if (config != "base") adapters = {{config, ctx.result("train." + config)["adapter"].get<std::string>()}};
        return eval_stage(*sh, ctx, all_dev(*sh), sh->cfg.dev_limit, adapters, "run", true);
      };
      plan.add(std::move(ev));
      s.deps.push_back("dev." + config);
    }
  }
  s.run = [sh, reason](const StageContext& ctx) {
    if (reason) return json{{"routes", choose_routes(sh->domains, json::object())}, {"reason", reason}};
    json acc = json::object(), vs_base = json::object();
    for (auto& dep : ctx.stage.deps) acc[dep.substr(4)] = ctx.result(dep)["domains"];
    const fs::path base_run = ctx.result("dev.base")["run"].get<std::string>();
    for (auto& dep : ctx.stage.deps)
      if (dep != "dev.base")
        vs_base[dep.substr(4)] = dev_against_base(sh->domains, base_run, ctx.result(dep)["run"].get<std::string>());
    const json routes = choose_routes(sh->domains, acc, vs_base, sh->cfg.route_alpha);
    return json{{"routes", routes}, {"dev_accuracy", acc}, {"dev_vs_base", vs_base}, {"route_alpha", sh->cfg.route_alpha}};
  };
  plan.add(std::move(s));
}

// Router choices: a domain routed to the base (the `routes` stage) takes the "base" choice; one routed to a
// modifier, its own or another domain's, a choice named after the domain (that modifier, asked in the
// domain's format). A domain's queries are its mining sets (training splits), or its own training data.
struct RouteSrc {
  std::string choice, kind;  // kind empty: a JSONL of requests
  fs::path path;
  std::string spec() const { return kind.empty() ? choice + "=" + path.string() : choice + "=" + kind + ":" + path.string(); }
};
std::vector<RouteSrc> route_sources(const Shared& sh, const json& routes = json()) {
  std::vector<RouteSrc> out;
  for (auto& d : sh.domains) {
    const std::string choice = route_of(sh, routes, d) == "base" ? "base" : d.name;
    for (auto& b : d.mine) out.push_back({choice, b.kind, b.path});
    if (d.mine.empty())
      for (auto& f : d.sft) out.push_back({choice, "", f});
  }
  return out;
}

void add_router(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  Stage s{"router", "2", sh->data_deps(), {}, {}, {}, {}};
  s.deps.push_back("routes");
  json sources = json::array();
  for (auto& src : route_sources(*sh)) {
    const std::string rel = sh->data.empty() ? "" : fs::relative(src.path, sh->data).string();
    const std::string id = !sh->data.empty() && rel.rfind("..", 0) != 0 ? "curriculum:" + rel : plan.file_id(src.path);
    sources.push_back({{"choice", src.choice}, {"kind", src.kind}, {"file", id}});
  }
  s.settings = {{"enabled", c.router}, {"sources", sources}, {"holdout", c.router_holdout}, {"epochs", c.router_epochs},
                {"lr", c.router_lr}, {"limit", c.router_limit}};
  s.run = [sh](const StageContext& ctx) {
    if (!sh->cfg.router) return json{{"skipped", "router.enabled is false: every request takes the base"}};
    const json& routes = ctx.result("routes")["routes"];
    RouterJob job;
    for (auto& src : route_sources(*sh, routes)) job.data.push_back(src.spec());
    job.holdout = sh->cfg.router_holdout;
    job.limit = sh->cfg.router_limit;
    job.train.epochs = sh->cfg.router_epochs;
    job.train.lr = sh->cfg.router_lr;
    job.out = ctx.stage.dir / "router.json";
    std::set<std::string> choices;
    for (auto& src : route_sources(*sh, routes)) choices.insert(src.choice);
    if (choices.size() < 2) return json{{"skipped", "fewer than two choices to route between"}};
    RouterJobResult r = train_router_job(job);
    json rep = r.heldout.to_json(r.router.choices());
    return json{{"router", job.out.string()}, {"bytes", fs::file_size(job.out)}, {"n_train", r.n_train},
                {"n_heldout", r.n_heldout}, {"heldout", rep}, {"routes", routes}};
  };
  plan.add(std::move(s));
}

#if __has_include("route/calibration.h")
// The router's confidence (its top probability) against whether its pick was right, on the
// held-out queries: temperature fitted on one half (even positions), ECE measured on the other.
json calibrate_router(const Shared& sh, const json& router_result, const fs::path& dir) {
  std::vector<std::string> specs;
  for (auto& src : route_sources(sh, router_result["routes"])) specs.push_back(src.spec());
  RouteData d = load_route_data(specs, sh.cfg.router_holdout, sh.cfg.router_limit);
  Router router = Router::load(router_result["router"].get<std::string>());
  std::vector<std::vector<double>> fit_p, test_p;
  std::vector<int> fit_y, test_y;
  for (size_t i = 0; i < d.heldout.size(); ++i) {
    const RouteDecision rd = router.route(d.heldout[i].text);
    const std::string& truth = d.choices[size_t(d.heldout[i].label)];
    const auto it = std::find(router.choices().begin(), router.choices().end(), truth);
    std::vector<double> p(rd.probs.begin(), rd.probs.end());
    ((i % 2) ? test_p : fit_p).push_back(p);
    ((i % 2) ? test_y : fit_y).push_back(int(it - router.choices().begin()));
  }
  if (fit_p.size() < 2 || test_p.size() < 2) return json{{"skipped", "fewer than 4 held-out router queries"}};
  const double t = fit_temperature(fit_p, fit_y);
  auto report = [&](double temp) {
    std::vector<double> conf;
    std::vector<bool> ok;
    for (size_t i = 0; i < test_p.size(); ++i) {
      const auto q = apply_temperature(test_p[i], temp);
      const size_t top = size_t(std::max_element(q.begin(), q.end()) - q.begin());
      conf.push_back(q[top]);
      ok.push_back(int(top) == test_y[i]);
    }
    return calibration_report(conf, ok, 10);
  };
  const CalibrationReport before = report(1.0), after = report(t);
  router.set_temperature(float(t));
  router.save(dir / "router.calibrated.json");
  write_file_atomic(dir / "reliability.svg", reliability_svg({{"before", before}, {"after", after}}, "router confidence"));
  json bins = json::array();
  for (auto& b : after.bins)
    if (b.n) bins.push_back({{"confidence", b.confidence}, {"accuracy", b.accuracy}, {"count", b.n}});
  return json{{"temperature", t},         {"ece", after.ece},      {"ece_before", before.ece}, {"n_fit", fit_p.size()},
              {"n_measured", test_p.size()}, {"bins", bins}, {"router", (dir / "router.calibrated.json").string()}};
}
#endif

void add_calibrate(Plan& plan, const std::shared_ptr<Shared>& sh) {
#if __has_include("route/calibration.h")
  const bool present = true;
#else
  const bool present = false;
#endif
  Stage s{"calibrate", "1", {"router"}, {{"calibration_module", present}}, {}, {}, {}};
  s.run = [sh, present](const StageContext& ctx) {
    const json& router = ctx.result("router");
    if (router.contains("skipped")) return json{{"skipped", "no router was trained"}};
#if __has_include("route/calibration.h")
    return calibrate_router(*sh, router, ctx.stage.dir);
#else
    (void)present;
    return json{{"skipped", "route/calibration is not part of this build"}};
#endif
  };
  plan.add(std::move(s));
}

std::string yaml_str(const std::string& s) { return json(s).dump(); }  // a JSON string is a YAML scalar

void add_eval_system(Plan& plan, const std::shared_ptr<Shared>& sh) {
  const PipelineConfig& c = sh->cfg;
  Stage s{"eval_system", "3", sh->data_deps("base"), {}, {}, {}, {}};
  s.deps.push_back("router");
  s.deps.push_back("routes");
  for (auto& m : modifier_names(*sh)) s.deps.push_back("train." + m);
  json tests = json::object();
  for (auto& d : sh->domains)
    for (auto& b : d.test) tests[b.kind] = d.name;
  s.settings = {{"eval_of", "eval_base"}, {"limit", c.test_limit}, {"max_tokens", c.max_tokens}, {"parallel", c.parallel},
                {"threshold", c.threshold}, {"escalation", c.escalation}, {"tests", tests}};
  // The test files' identities come with eval_base's key.
  s.deps.push_back("eval_base");
  s.run = [sh](const StageContext& ctx) {
    const Shared& h = *sh;
    std::string y = fmt::format("name: {}\nbase: {}\n", yaml_str(h.cfg.name), yaml_str(ctx.result("base")["model"]));
    const json& router = ctx.result("router");
    if (!router.contains("skipped")) y += fmt::format("router: {}\n", yaml_str(router["router"]));
    y += "default: base\nchoices:\n  base: {}\n";  // without a router, every request takes the base
    // A choice per domain routed to a modifier (its own or another's): that adapter, the domain's format.
    const json& routes = ctx.result("routes")["routes"];
    json choice_modifiers = json::object();
    for (auto& d : h.domains) {
      const std::string m = route_of(h, routes, d);
      if (m == "base") continue;
      const std::string ask = !d.test.empty() && kAskAs.count(d.test[0].kind) ? d.test[0].kind : "chat";
      y += fmt::format("  {}: {{adapter: {}, ask_as: {}}}\n", d.name, yaml_str(ctx.result("train." + m)["adapter"]), ask);
      choice_modifiers[d.name] = m;
    }
    y += fmt::format("threshold: {}\nescalation: {}\ngeneration: {{max_tokens: {}, parallel: {}, threads: {}}}\n",
                     h.cfg.threshold, h.cfg.escalation, h.cfg.max_tokens, h.cfg.parallel, h.cfg.threads);
    const fs::path file = ctx.stage.dir / "system.yaml";
    write_file_atomic(file, y);
    SystemConfig sys = SystemConfig::load(file);
    EvalOptions e;
    for (auto& d : h.domains) e.benches.insert(e.benches.end(), d.test.begin(), d.test.end());
    e.out_dir = ctx.stage.dir / "run";
    e.limit = h.cfg.test_limit;
    e.max_tokens = h.cfg.max_tokens;
    e.gen.n_parallel = h.cfg.parallel;
    e.gen.n_threads = ctx.threads;
    e.progress = ctx.progress;
    e.resume = fs::exists(e.out_dir / "items.jsonl");
    e.exec_cache = h.code_runs();
    e.cancel = ctx.cancel;
    json summary = eval_system(sys, e);
    // How the router sent each domain's test items.
    json routes_taken = json::object();
    std::map<std::string, std::string> domain_of;
    for (auto& d : h.domains)
      for (auto& b : d.test) domain_of[b.kind] = d.name;
    read_jsonl(e.out_dir / "items.jsonl", [&](const json& j, size_t) {
      const std::string d = domain_of[j.value("benchmark", "")];
      // the choice (route_choice), not the adapter it loads (route: shared by choices with one adapter file)
      const char* key = j.contains("route_choice") ? "route_choice" : "route";
      const std::string r = j.contains(key) && j[key].is_string() && !j[key].get<std::string>().empty()
                                ? j[key].get<std::string>() : "base";
      json& row = routes_taken[d];
      row[r] = (row.is_object() && row.contains(r) ? row[r].get<int>() : 0) + 1;
    });
    return json{{"run", e.out_dir.string()}, {"system", file.string()}, {"summary", summary},
                {"domains", domain_accuracy(summary, h.domains)}, {"routes", routes_taken}, {"choice_modifiers", choice_modifiers}};
  };
  plan.add(std::move(s));
}

GateMetrics gate_metrics(const Shared& sh, const StageContext& ctx) {
  GateMetrics m;
  for (auto& [d, v] : ctx.result("eval_base")["domains"].items()) m.base[d] = v["accuracy"];
  for (auto& [d, v] : ctx.result("eval_system")["domains"].items()) m.routed[d] = v["accuracy"];
  double bytes = ctx.result("base")["bytes"].get<double>();
  const std::set<std::string> used = modifiers_in_use(ctx);
  for (auto& mod : modifier_names(sh)) {
    for (auto& [d, v] : ctx.result("eval." + mod)["domains"].items()) m.with[mod][d] = v["accuracy"];
    if (used.count(mod)) bytes += ctx.result("train." + mod)["bytes"].get<double>();  // the system's modifiers only
  }
  const json& router = ctx.result("router");
  if (router.contains("skipped")) {
    m.missing_reason["router.accuracy"] = router["skipped"];
  } else {
    bytes += router["bytes"].get<double>();
    if (router["n_heldout"].get<long>() > 0) m.scalars["router.accuracy"] = router["heldout"]["accuracy"];
    else m.missing_reason["router.accuracy"] = "no held-out queries";
  }
  const json& cal = ctx.result("calibrate");
  if (cal.contains("ece")) m.scalars["ece"] = cal["ece"];
  else m.missing_reason["ece"] = cal.value("skipped", std::string("calibration did not report it"));
  m.scalars["size_mb"] = bytes / 1e6;
  compress_metrics(ctx, m);
  data_gate_metrics(sh, ctx, m);
  return m;
}

std::vector<std::string> final_deps(const Shared& sh) {
  std::vector<std::string> d = {"base", "eval_base", "routes", "router", "calibrate", "eval_system"};
  for (auto& m : modifier_names(sh)) d.push_back("eval." + m), d.push_back("train." + m);
  for (auto& s : data_final_deps(sh)) d.push_back(s);
  return d;
}

void add_gates(Plan& plan, const std::shared_ptr<Shared>& sh) {
  json texts = json::array();
  for (auto& g : sh->cfg.gates) texts.push_back(g.text);
  Stage s{"gates", "1", final_deps(*sh), {{"gates", texts}}, {}, {}, {}};
  for (auto& d : compress_deps(plan)) s.deps.push_back(d);
  s.run = [sh](const StageContext& ctx) {
    GateMetrics m = gate_metrics(*sh, ctx);
    json gates = json::array();
    bool all = true;
    for (auto& r : evaluate_gates(sh->cfg.gates, m)) {
      gates.push_back(r.to_json());
      all = all && r.passed;
    }
    json out = {{"passed", all}, {"gates", gates}, {"metrics", m.to_json()}};
    write_file_atomic(ctx.stage.dir / "gates.json", out.dump(2) + "\n");
    return out;
  };
  plan.add(std::move(s));
}

json loss_curve(const fs::path& log) {
  json loss = json::array(), val = json::array();
  if (fs::exists(log))
    read_jsonl(log, [&](const json& j, size_t) {
      if (j.contains("loss")) loss.push_back({j.value("step", 0), j["loss"]});
      if (j.contains("val_loss")) val.push_back({j.value("step", 0), j["val_loss"]});
    });
  return {{"loss", loss}, {"val", val}};
}

void add_report(Plan& plan, const std::shared_ptr<Shared>& sh) {
  std::vector<std::string> deps = final_deps(*sh);
  deps.push_back("gates");
  for (const char* opt : {"mine", "failures", "cluster"})
    if (plan.has(opt)) deps.push_back(opt);
  for (auto& m : modifier_names(*sh)) deps.push_back("trainset." + m);
  for (auto& d : compress_deps(plan)) deps.push_back(d);
  Stage s{"report", "3", deps, json::object(), {}, {}, {}};
  s.run = [sh](const StageContext& ctx) {
    const Shared& h = *sh;
    const fs::path base_run = ctx.result("eval_base")["run"].get<std::string>();
    json r = {{"name", h.cfg.name}, {"config", h.cfg.file.string()}, {"base", ctx.result("base")}};
    json domains = json::array();
    for (auto& d : h.domains) {
      json kinds = json::array();
      for (auto& b : d.test) kinds.push_back(b.kind);
      domains.push_back({{"name", d.name}, {"kinds", kinds}, {"modifier", d.modifier}});
    }
    r["domains"] = domains;
    r["base_accuracy"] = ctx.result("eval_base")["domains"];
    r["routed_accuracy"] = ctx.result("eval_system")["domains"];
    r["routes"] = ctx.result("eval_system")["routes"];
    r["route_choice"] = ctx.result("routes");
    r["routed_vs_base"] = compare_by_domain(h.domains, base_run, ctx.result("eval_system")["run"].get<std::string>());
    json mods = json::object();
    for (auto& m : modifier_names(h)) {
      const json& tr = ctx.result("train." + m);
      mods[m] = {{"accuracy", ctx.result("eval." + m)["domains"]},
                 {"vs_base", compare_by_domain(h.domains, base_run, ctx.result("eval." + m)["run"].get<std::string>())},
                 {"train", tr},
                 {"settings", h.cfg.domain(m).train.to_json()},
                 {"trainset", ctx.result("trainset." + m)["sources"]},
                 {"curve", loss_curve(tr["log"].get<std::string>())}};
    }
    r["modifiers"] = mods;
    if (ctx.plan.has("failures")) r["failures"] = ctx.result("failures");
    if (ctx.plan.has("cluster")) r["clusters"] = ctx.result("cluster");
    r["router"] = ctx.result("router");
    r["calibration"] = ctx.result("calibrate");
    r["gates"] = ctx.result("gates");
    if (json c = compress_report_part(ctx); !c.is_null()) r["compress"] = std::move(c);
    if (json d = data_report(h, ctx); !d.is_null()) r["data"] = std::move(d);
    json stages = json::array();
    for (auto& st : ctx.plan.stages())
      if (st.name != "report") {
        const fs::path f = st.dir / "done.json";
        const json done = fs::exists(f) ? json::parse(read_file(f), nullptr, false) : json();
        const double secs = done.is_object() ? done.value("seconds", 0.0) : 0.0;
        stages.push_back({{"name", st.name}, {"key", st.key.substr(0, 12)}, {"seconds", secs}});
      }
    r["stages"] = stages;
    write_file_atomic(ctx.stage.dir / "report.json", r.dump(2) + "\n");
    write_file_atomic(ctx.stage.dir / "report.html", report_html(r));
    write_file_atomic(ctx.stage.dir / "report.md", report_markdown(r));
    return json{{"html", (ctx.stage.dir / "report.html").string()}, {"markdown", (ctx.stage.dir / "report.md").string()}};
  };
  plan.add(std::move(s));
}

}  // namespace

void add_system_stages(Plan& plan, const std::shared_ptr<Shared>& sh) {
  add_routes(plan, sh);
  add_router(plan, sh);
  add_calibrate(plan, sh);
  add_eval_system(plan, sh);
  add_compress_stages(plan, sh);
  add_gates(plan, sh);
  add_report(plan, sh);
}

void publish_outputs(const Plan& plan) {
  json run = json::object();
  auto copy = [&](const char* stage, const char* file) {
    if (!plan.has(stage) || !plan.finished(stage)) return;
    const fs::path f = plan.at(stage).dir / file;
    if (fs::exists(f)) write_file_atomic(plan.work_dir() / file, read_file(f));
  };
  copy("report", "report.html");
  copy("report", "report.md");
  copy("report", "report.json");
  copy("gates", "gates.json");
  copy("eval_system", "system.yaml");
  publish_compressed(plan);
  for (auto& s : plan.stages())
    run[s.name] = {{"key", s.key}, {"dir", s.dir.string()}, {"finished", plan.finished(s.name)}};
  write_file_atomic(plan.work_dir() / "run.json", json{{"stages", run}}.dump(2) + "\n");
}

}  // namespace cogumi::pipeline_detail
