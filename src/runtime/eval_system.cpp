#include "runtime/eval_system.h"

#include <optional>

#include "core/error.h"
#include "core/io.h"
#include "route/data.h"
#include "route/router.h"

namespace cogumi {

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
  const std::string file = cfg.file.empty() ? "(in memory)" : cfg.file.string();
  o.route_id = file + (cfg.file.empty() ? "" : " " + sha256_file(cfg.file)) +
               (cfg.router.empty() ? "" : " router " + sha256_file(cfg.router));
  return run_eval(o);
}

}  // namespace cogumi
