#include "serve/server_metrics.h"

#include "serve/server.h"

namespace cogumi::serve {

std::string error_type_of(const RequestRecord& r) {
  if (r.status < 400 && r.error_type.empty()) return "";
  const std::string& t = r.error_type;
  if (r.status == 401 || t == "invalid_api_key") return "unauthorized";
  if (r.status == 429 || t == "rate_limit_exceeded") return "rate_limited";
  if (r.status == 413 || t == "request_too_large") return "body_too_large";
  if (r.status == 504 || t == "timeout") return "timeout";
  if (r.status == 499 || t == "cancelled") return "client_disconnect";
  if (r.status == 503 || t == "shutting_down") return "unavailable";
  if (t == "model_not_found") return "unknown_model";
  if (t == "context_length_exceeded") return "context_length";
  if (t.find("schema") != std::string::npos) return "invalid_schema";
  if (r.status >= 500) return "internal";
  return "bad_request";
}

void add_metrics(Server& server, ServeMetrics& metrics) {
  std::vector<std::string> choices;
  for (const auto& c : server.runtime().config().choices) choices.push_back(c.name);
  metrics.declare(choices, server.model_names());
  server.on_request([&metrics](const RequestRecord& r) {
    metrics.request_finished(r.endpoint, r.model, r.status, r.seconds, r.prompt_tokens,
                             r.completion_tokens, r.ttft_seconds,
                             r.status < 400 ? r.queue_seconds : -1);
    if (r.cached_tokens > 0) metrics.cached_prompt_tokens(r.model, r.cached_tokens);
    if (!r.choice.empty() && r.status < 400) metrics.routed(r.choice, r.escalated_by, r.router_probability, r.overridden);
    if (const std::string type = error_type_of(r); !type.empty()) metrics.error(type);
  });
  server.http().Get("/metrics", [&server, &metrics](const httplib::Request&, httplib::Response& res) {
    metrics.set_queue_depth(int64_t(server.scheduler().waiting()));
    metrics.set_in_flight(server.in_flight());
    metrics.set_kv_used(server.runtime().kv_cells_used(), server.runtime().kv_cells_total());
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace cogumi::serve
