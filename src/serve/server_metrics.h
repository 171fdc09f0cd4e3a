// cogumi/serve: the server's metrics wired to the server. add_metrics() counts every finished
// API request (Server::on_request: status, tokens, latency, time to first token, routing,
// escalation, error type) into a ServeMetrics and serves GET /metrics in Prometheus' text format,
// sampling the scheduler's queue and the requests in flight at each scrape.
//
// GET /metrics is outside /v1/ and /api/, so it needs no API key (Prometheus scrapes it on the
// private network; deploy/nginx keeps it off the public side).
#pragma once

#include <string>

#include "serve/metrics.h"

namespace cogumi::serve {

class Server;
struct RequestRecord;

// `metrics` must outlive the server's handlers. Call before Server::listen().
void add_metrics(Server& server, ServeMetrics& metrics);

// The error type a finished request counts under (ServeMetrics::error_types(); "" = no error).
std::string error_type_of(const RequestRecord& r);

}  // namespace cogumi::serve
