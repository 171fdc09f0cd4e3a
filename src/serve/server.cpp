#include "serve/server.h"

#include <fmt/format.h>
#include <pthread.h>
#include <signal.h>

#include <cmath>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "engine/embed.h"
#include "runtime/memory.h"
#include "serve/openai_api.h"
#include "serve/sessions_api.h"
#include "serve/ui.h"
#include "serve/server_metrics.h"

namespace cogumi::serve {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void ServeOptions::validate() const {
  if (model.empty() && system.empty()) fail("--system: a system file is required (or -m MODEL.gguf)");
  if (host.empty()) fail("--host must not be empty");
  if (port < 0 || port > 65535) fail("--port must be 0..65535 (0: any free port), got {}", port);
  for (auto& k : api_keys)
    if (k.empty() || k.find_first_of(" \t\r\n") != std::string::npos)
      fail("--api-key: keys must be non-empty and hold no whitespace");
  if (rate_limit < 0 || rate_limit > 1000000) fail("--rate-limit must be 0..1000000 requests/min (0: off), got {}", rate_limit);
  if (max_body < 1024 || max_body > (size_t(1) << 30)) fail("--max-body must be 1024..1073741824 bytes, got {}", max_body);
  if (!(timeout_s > 0 && timeout_s <= 86400)) fail("--timeout must be in (0, 86400] seconds, got {}", timeout_s);
  if (!(drain_s >= 0 && drain_s <= 86400)) fail("--drain must be in [0, 86400] seconds (0: --timeout + 5), got {}", drain_s);
  if (parallel < 0 || parallel > 255) fail("--parallel must be 0..255 (0: the system's), got {}", parallel);
  if (threads < 0 || threads > 1024) fail("--threads must be 0..1024 (0: the system's), got {}", threads);
  if (prepare != "auto" && prepare != "on" && prepare != "off")
    fail("--prepare must be auto, on or off, got '{}'", prepare);
  if (http_threads < 0 || http_threads > 4096) fail("--http-threads must be 0..4096, got {}", http_threads);
  if (max_batch < 1 || max_batch > 4096) fail("--max-batch must be 1..4096, got {}", max_batch);
}

namespace {

SystemConfig load_config(const ServeOptions& o) {
  SystemConfig cfg = o.model.empty() ? SystemConfig::load(o.system) : SystemConfig::bare_model(o.model);
  if (o.parallel > 0) cfg.parallel = o.parallel;
  if (o.threads > 0) cfg.threads = o.threads;
  cfg.prefix_cache = o.prefix_cache;
  cfg.spare_sequence = o.static_batches;  // continuous serving never decodes a batch's common prefix
  return cfg;
}

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(wire(e.body()), "application/json");
}

double secs(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

}  // namespace

Server::InFlight::InFlight(Server* s) : s(s) { ++s->in_flight_; }

Server::InFlight::~InFlight() {
  if (--s->in_flight_ == 0) {
    std::lock_guard lk(s->drain_mu_);
    s->drain_cv_.notify_all();
  }
}

Server::Server(ServeOptions opts) : opts_(std::move(opts)) {
  opts_.validate();
  rt_ = std::make_unique<Runtime>(load_config(opts_));
  if (!rt_->config().memory.empty()) (void)rt_->memory();  // opened here, not racing in handlers
  const bool ahead = opts_.prepare == "on" || (opts_.prepare == "auto" && rt_->cpu_to_spare());
  sched_ = std::make_unique<Scheduler>(*rt_, size_t(opts_.max_batch), !opts_.static_batches, ahead);
  const int threads = opts_.http_threads > 0 ? opts_.http_threads : 2 * rt_->config().parallel + 8;
  http_.new_task_queue = [threads] { return new httplib::ThreadPool(size_t(threads)); };
  http_.set_payload_max_length(opts_.max_body);
  routes();
}

Server::~Server() {
  stop();
  sched_.reset();  // the batch in flight ends before the runtime goes
}

SessionStore& Server::sessions() { return rt_->memory(); }

std::vector<std::string> Server::model_names() const {
  std::vector<std::string> out = {system_name()};
  for (auto& c : rt_->config().choices)
    if (c.name != system_name()) out.push_back(c.name);
  return out;
}

void Server::on_request(std::function<void(const RequestRecord&)> fn) {
  std::lock_guard lk(observers_mu_);
  observers_.push_back(std::move(fn));
}

void Server::notify(const RequestRecord& r) {
  std::lock_guard lk(observers_mu_);
  for (auto& f : observers_) f(r);
}

bool Server::admit(const httplib::Request& req, httplib::Response& res) {
  std::string key = req.remote_addr;
  if (!opts_.api_keys.empty()) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string bearer = "Bearer ";
    const std::string given = auth.rfind(bearer, 0) == 0 ? auth.substr(bearer.size()) : "";
    bool ok = false;
    for (auto& k : opts_.api_keys) ok = ok || (!given.empty() && given == k);
    if (!ok) {
      send_error(res, ApiError(401,
                               given.empty() ? "no API key: send 'Authorization: Bearer KEY'"
                                             : "the API key is not valid for this server",
                               "invalid_request_error", "", "invalid_api_key"));
      return false;
    }
    key = given;
  }
  if (opts_.rate_limit > 0) {  // a token bucket per key: rate_limit per minute, bursts up to it
    std::lock_guard lk(rate_mu_);
    const auto now = Clock::now();
    auto [it, fresh] = buckets_.try_emplace(key, Bucket{double(opts_.rate_limit), now});
    Bucket& b = it->second;
    b.tokens = std::min(double(opts_.rate_limit), b.tokens + secs(b.at, now) * opts_.rate_limit / 60.0);
    b.at = now;
    if (b.tokens < 1.0) {
      const int wait = int(std::ceil((1.0 - b.tokens) * 60.0 / opts_.rate_limit));
      res.set_header("Retry-After", std::to_string(wait));
      send_error(res, ApiError(429,
                               fmt::format("rate limit of {} requests per minute reached; retry in {} s",
                                           opts_.rate_limit, wait),
                               "rate_limit_error", "", "rate_limit_exceeded"));
      return false;
    }
    b.tokens -= 1.0;
  }
  return true;
}

void Server::routes() {
  http_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    const bool api = req.path.rfind("/v1/", 0) == 0 || req.path.rfind("/api/", 0) == 0;
    if (!api) return httplib::Server::HandlerResponse::Unhandled;
    if (draining_.load()) {
      send_error(res, ApiError(503, "the server is shutting down", "server_error", "", "shutting_down"));
    } else if (admit(req, res)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    RequestRecord rec;  // refused before any handler: observers still count it
    rec.endpoint = req.path;
    rec.status = res.status;
    const json code = json::parse(res.body)["error"]["code"];
    rec.error_type = code.is_string() ? code.get<std::string>() : "shutting_down";
    notify(rec);
    return httplib::Server::HandlerResponse::Handled;
  });
  // Errors httplib itself answers (unknown path, body over the limit) in OpenAI's shape.
  httplib::Server::HandlerWithResponse on_error = [this](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 413)
      send_error(res, ApiError(413, fmt::format("the request body is over the limit of {} bytes (--max-body)", opts_.max_body),
                               "invalid_request_error", "", "request_too_large"));
    else if (res.status == 404)
      send_error(res, ApiError(404, fmt::format("no route {} {}", req.method, req.path), "invalid_request_error", "",
                               "unknown_url"));
    else
      send_error(res, ApiError(res.status, fmt::format("HTTP {}", res.status), "invalid_request_error"));
    if (res.status == 413) {
      RequestRecord rec;
      rec.endpoint = req.path;
      rec.status = 413;
      rec.error_type = "request_too_large";
      notify(rec);
    }
    return httplib::Server::HandlerResponse::Handled;
  };
  http_.set_error_handler(std::move(on_error));
  http_.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_error(res, ApiError(500, "internal error: " + what, "server_error"));
  });
  http_.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    json j = {{"status", draining_.load() ? "draining" : "ok"},
              {"system", system_name()},
              {"waiting", sched_->waiting()},
              {"running", sched_->running()},
              {"in_flight", in_flight_.load()},
              {"batches", sched_->batches()},
              {"largest_batch", sched_->largest_batch()},
              {"cancelled", sched_->cancelled()}};
    res.status = draining_.load() ? 503 : 200;
    res.set_content(wire(j), "application/json");
  });
  http_.Get("/v1/models", [this](const httplib::Request& q, httplib::Response& r) { handle_models(q, r); });
  http_.Get(R"(/v1/models/(.+))", [this](const httplib::Request& q, httplib::Response& r) { handle_models(q, r); });
  http_.Post("/v1/chat/completions",
             [this](const httplib::Request& q, httplib::Response& r) { handle_completion(q, r, true); });
  http_.Post("/v1/completions", [this](const httplib::Request& q, httplib::Response& r) { handle_completion(q, r, false); });
  http_.Post("/v1/embeddings", [this](const httplib::Request& q, httplib::Response& r) { handle_embeddings(q, r); });
}

void Server::handle_models(const httplib::Request& req, httplib::Response& res) {
  const auto& cfg = rt_->config();
  auto entry = [&](const std::string& id) {
    json j = {{"id", id}, {"object", "model"}, {"created", 0}, {"owned_by", "cogumi"}};
    if (id == system_name()) {
      j["cogumi"] = {{"kind", "system"}, {"default", cfg.default_choice}, {"routed", rt_->router().has_value()}};
    } else {
      const SystemChoice& c = cfg.choice(id);
      j["cogumi"] = {{"kind", c.adapter.empty() ? "base" : "modifier"}, {"ask_as", c.ask_as}};
      j["parent"] = c.adapter.empty() ? json() : json(system_name());
    }
    return j;
  };
  if (req.matches.size() > 1) {
    const std::string id = req.matches[1];
    auto names = model_names();
    if (std::find(names.begin(), names.end(), id) == names.end())
      return send_error(res, ApiError(404, fmt::format("The model '{}' does not exist", id), "invalid_request_error",
                                      "model", "model_not_found"));
    return res.set_content(wire(entry(id)), "application/json");
  }
  json data = json::array();
  for (auto& n : model_names()) data.push_back(entry(n));
  res.set_content(wire(json{{"object", "list"}, {"data", data}}), "application/json");
}

void Server::listen() {
  if (!http_.listen_after_bind() && !draining_.load()) fail("cogumi serve: the listener stopped unexpectedly");
}

int Server::bind() {
  const int port = opts_.port == 0 ? http_.bind_to_any_port(opts_.host) : (http_.bind_to_port(opts_.host, opts_.port) ? opts_.port : -1);
  if (port < 0) fail("--host {} --port {}: cannot listen there (in use, or not an address of this machine)", opts_.host, opts_.port);
  return port;
}

void Server::stop() {
  if (draining_.exchange(true)) {
    http_.stop();
    return;
  }
  const double drain = opts_.drain_s > 0 ? opts_.drain_s : opts_.timeout_s + 5;
  auto drained_within = [&](double s) {
    std::unique_lock lk(drain_mu_);
    return drain_cv_.wait_for(lk, std::chrono::duration<double>(s), [&] { return in_flight_.load() == 0; });
  };
  if (!drained_within(drain)) {
    sched_->cut();  // the rest end at the engine's next step, answered 503
    (void)drained_within(10);
  }
  http_.stop();
}

int serve(const ServeOptions& opts) {
  // Signals wait in one thread: blocked everywhere before any thread starts.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  ServeMetrics metrics;  // outlives the server's handlers
  Server server(opts);
  add_metrics(server, metrics);  // GET /metrics
  // The web UI and the session routes it shows history and stores thumbs through. Session
  // memory opens here, before handler threads could race to open it first.
  if (!server.runtime().config().memory.empty()) server.sessions();
  add_ui_routes(server.http());
  add_session_routes(server.http(), [&server]() -> SessionStore& { return server.sessions(); },
                     {.on_feedback = [&metrics](int score) { metrics.feedback(score); }});
  const int port = server.bind();
  std::atomic<bool> by_signal{false};
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&set, &sig);
    if (server.draining()) return;  // woken by the main thread below
    by_signal = true;
    fmt::print(stderr, "cogumi serve: {}: draining {} request(s) in flight\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
               server.in_flight());
    server.stop();
  });
  fmt::print("cogumi serve: {} ({} models) listening on http://{}:{}\n", server.system_name(), server.model_names().size(),
             opts.host, port);
  std::fflush(stdout);
  try {
    server.listen();
  } catch (...) {
    server.stop();
    kill(getpid(), SIGTERM);
    waiter.join();
    throw;
  }
  if (!by_signal) {
    server.stop();
    kill(getpid(), SIGTERM);  // pending (blocked): wakes the waiter
  }
  waiter.join();
  fmt::print(stderr, "cogumi serve: stopped\n");
  return 0;
}

}  // namespace cogumi::serve
