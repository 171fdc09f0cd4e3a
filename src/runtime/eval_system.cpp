#include "runtime/eval_system.h"

#include <optional>

#include "core/error.h"
#include "core/io.h"
#include "engine/model.h"
#include "route/data.h"
#include "route/router.h"
#include "runtime/fewshot.h"
#include "runtime/runtime.h"

namespace cogumi {

namespace {

// The system's few-shot bank puts each item's nearest examples (of the routed choice's domain)
// before its prompt, as the runtime does for a request.
void add_demonstrations(const SystemConfig& cfg, const std::optional<Router>& router, EvalOptions& o) {
  std::shared_ptr<Model> model;
  if (cfg.fewshot.embedding == Embedding::model) {
    engine_init();
    model = Model::load(cfg.base);
  }
  auto bank = std::make_shared<FewshotBank>(FewshotBank::open(cfg.fewshot, model));
  o.prompt_prefix = [&cfg, router, bank](const EvalItem& it, const std::string& prompt) {
    const std::string choice = route_choice(cfg, router ? &*router : nullptr, query_text(it));
    return demonstration_text(bank->demonstrations(choice, prompt));
  };
  o.route_id += fmt::format(" fewshot {} k {} max_chars {} {}", bank->sha256(), cfg.fewshot.k,
                            cfg.fewshot.max_chars, bank->embedder().signature().dump());
}

// Accurate mode (or fast through the runtime): the runtime answers each chunk of items in one
// batch, each asked as the harness asks it; the line records the vote and the verification.
void answer_with_runtime(const SystemConfig& cfg, const std::string& mode, EvalOptions& o) {
  if (o.chat || o.shots > 0 || o.samples != 1)
    fail("eval --system --mode {}: --chat, --shots and --samples don't apply (the system asks each item in "
         "its benchmark's format and samples {} times itself)",
         mode, cfg.samples);
  SystemConfig batch = cfg;  // the harness's batch settings (--parallel, --threads) drive the engine
  batch.parallel = o.gen.n_parallel;
  batch.threads = o.gen.n_threads;
  batch.keep_cache = false;  // each chunk of items answered as if first
  auto rt = std::make_shared<Runtime>(batch);
  const int max_tokens = o.max_tokens;
  o.answer = [rt, mode, max_tokens](const std::vector<const EvalItem*>& items, std::vector<json>* extra) {
    std::vector<AskRequest> qs(items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      qs[i].text = query_text(*items[i]);
      qs[i].item = *items[i];
      qs[i].mode = mode;
      qs[i].max_tokens = max_tokens;
      qs[i].n_logprobs = 0;
    }
    std::vector<AskResponse> rs = rt->ask(qs);
    std::vector<GenResult> out(rs.size());
    for (size_t i = 0; i < rs.size(); ++i) {
      const AskResponse& r = rs[i];
      out[i].text = r.text;
      out[i].finish = r.finish_reason == "length" ? FinishReason::kLength : FinishReason::kStop;
      out[i].n_prompt_tokens = r.prompt_tokens;
      out[i].n_gen_tokens = r.gen_tokens;  // every sample's
      out[i].logprobs = r.logprobs;
      out[i].latency_ms = r.seconds * 1000;  // the batch's wall time
      extra->push_back({{"mode", r.mode},
                        {"choice", r.choice},
                        {"votes", r.votes},
                        {"samples", r.samples},
                        {"verifier", r.verifier},
                        {"verified", r.verified},
                        {"verify_passed", r.verify_passed}});
    }
    return out;
  };
  o.route_id += fmt::format(" mode {} samples {} temperature {} verify {}", mode, cfg.samples, cfg.temperature,
                            cfg.verify ? "on" : "off");
}

}  // namespace

json eval_system(const SystemConfig& cfg, EvalOptions o, const std::string& mode_in) {
  cfg.validate();
  const std::string mode = mode_in.empty() ? cfg.mode : mode_in;
  if (mode != "fast" && mode != "accurate") fail("eval --system: --mode must be fast or accurate, got '{}'", mode);
  if (!o.model.empty() || !o.adapter.empty() || !o.adapters.empty())
    fail(
        "eval --system takes the model and adapters from the system file: drop -m, --lora and "
        "--adapter");
  o.model = cfg.base;
  for (const auto& c : cfg.choices)
    if (!c.adapter.empty() && cfg.adapter_name(c.name) == c.name) o.adapters.emplace_back(c.name, c.adapter);
  std::optional<Router> router;
  if (!cfg.router.empty()) router = Router::load(cfg.router);
  if (router)
    for (const auto& n : router->choices()) (void)cfg.choice(n);  // every routable choice exists
  o.route = [&cfg, router](const EvalItem& it) {
    return cfg.adapter_name(route_choice(cfg, router ? &*router : nullptr, query_text(it)));
  };
  // What calibration reads (route/calibration.h): the routed choice, the router's probability
  // of each choice, and the answer's token log-probabilities.
  o.logprobs = true;
  o.route_signals = [&cfg, router](const EvalItem& it) {
    RouteDecision d;
    const std::string choice = route_choice(cfg, router ? &*router : nullptr, query_text(it), &d);
    if (!router) return json{{"route_choice", choice}};
    json probs = json::object();
    for (size_t i = 0; i < d.probs.size(); ++i) probs[router->choices()[i]] = d.probs[i];
    return json{{"route_choice", choice}, {"route_probability", d.probability}, {"route_probs", probs}};
  };
  const std::string file = cfg.file.empty() ? "(in memory)" : cfg.file.string();
  o.route_id = file + (cfg.file.empty() ? "" : " " + sha256_file(cfg.file)) +
               (cfg.router.empty() ? "" : " router " + sha256_file(cfg.router));
  if (mode == "accurate") {
    answer_with_runtime(cfg, mode, o);  // the runtime puts the bank's demonstrations itself
  } else if (!cfg.fewshot.bank.empty()) {
    add_demonstrations(cfg, router, o);
  }
  return run_eval(o);
}

}  // namespace cogumi
