#include "runtime/eval_system.h"

#include <optional>

#include "core/error.h"
#include "core/io.h"
#include "engine/model.h"
#include "route/data.h"
#include "route/router.h"
#include "runtime/fewshot.h"

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
    const std::string choice =
        router ? router->choices()[size_t(router->route(query_text(it)).choice)] : cfg.default_choice;
    return demonstration_text(bank->demonstrations(choice, prompt));
  };
  o.route_id += fmt::format(" fewshot {} k {} max_chars {} {}", bank->sha256(), cfg.fewshot.k,
                            cfg.fewshot.max_chars, bank->embedder().signature().dump());
}

}  // namespace

json eval_system(const SystemConfig& cfg, EvalOptions o) {
  cfg.validate();
  if (!o.model.empty() || !o.adapter.empty() || !o.adapters.empty())
    fail(
        "eval --system takes the model and adapters from the system file: drop -m, --lora and "
        "--adapter");
  o.model = cfg.base;
  for (const auto& c : cfg.choices)
    if (!c.adapter.empty()) o.adapters.emplace_back(c.name, c.adapter);
  std::optional<Router> router;
  if (!cfg.router.empty()) router = Router::load(cfg.router);
  if (router)
    for (const auto& n : router->choices()) (void)cfg.choice(n);  // every routable choice exists
  o.route = [&cfg, router](const EvalItem& it) {
    if (!router) return cfg.adapter_name(cfg.default_choice);
    const RouteDecision d = router->route(query_text(it));
    return cfg.adapter_name(router->choices()[size_t(d.choice)]);
  };
  // What calibration reads (route/calibration.h): the routed choice, the router's probability
  // of each choice, and the answer's token log-probabilities.
  o.logprobs = true;
  o.route_signals = [&cfg, router](const EvalItem& it) {
    if (!router) return json{{"route_choice", cfg.default_choice}};
    const RouteDecision d = router->route(query_text(it));
    json probs = json::object();
    for (size_t i = 0; i < d.probs.size(); ++i) probs[router->choices()[i]] = d.probs[i];
    return json{{"route_choice", router->choices()[size_t(d.choice)]},
                {"route_probability", d.probability},
                {"route_probs", probs}};
  };
  const std::string file = cfg.file.empty() ? "(in memory)" : cfg.file.string();
  o.route_id = file + (cfg.file.empty() ? "" : " " + sha256_file(cfg.file)) +
               (cfg.router.empty() ? "" : " router " + sha256_file(cfg.router));
  if (!cfg.fewshot.bank.empty()) add_demonstrations(cfg, router, o);
  return run_eval(o);
}

}  // namespace cogumi
