// cogumi/serve: `cogumi serve`, an OpenAI-compatible HTTP server over the Runtime (the path
// `cogumi ask` and `cogumi eval --system` take). It owns the HTTP side: the routes of the
// OpenAI API (openai_api.h builds the bodies), API keys and per-key rate limits, the body size
// limit, request timeouts, cancellation of a generation whose client left, and draining on
// SIGTERM. Generation goes through the Scheduler (scheduler.h): concurrent requests share
// engine batches.
//
// Other modules add their own routes on http() before listen() (metrics, the web UI, sessions);
// paths under /v1/ and /api/ pass the API-key and rate-limit check (admit()) before any handler.
// Every API request that ends calls the observers added with on_request().
//
// Thread safety: handlers run on httplib's thread pool; runtime() itself is driven only by the
// scheduler thread; sessions() (SQLite, a connection per thread) may be used from handlers.
#pragma once

#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "serve/scheduler.h"

namespace cogumi {
class SessionStore;
class Embedder;
}  // namespace cogumi

namespace cogumi::serve {

struct ServeOptions {
  std::filesystem::path system = "models/nano-system.yaml";  // the system file to serve
  std::filesystem::path model;           // a bare GGUF instead of a system ("" = use `system`)
  std::string host = "127.0.0.1";
  int port = 8080;                       // 0: any free port (serve() prints the one it got)
  std::vector<std::string> api_keys;     // empty: no key needed; else "Authorization: Bearer KEY"
  int rate_limit = 0;                    // requests per minute per key (per address without keys); 0: off; <= 1e6
  size_t max_body = 4 << 20;             // bytes per request body; 1 KiB .. 1 GiB
  double timeout_s = 300;                // per request, queueing included; (0, 86400]
  // stop() lets requests in flight finish this long, then cuts them (503 shutting_down, in an
  // SSE error event once a stream began). 0: timeout_s + 5 (each request's own deadline first).
  double drain_s = 0;                    // [0, 86400]
  int parallel = 0;                      // engine slots (0: the system's generation.parallel); 0..255
  int threads = 0;                       // engine CPU threads (0: the system's generation.threads); 0..1024
  int http_threads = 0;                  // connections served at once (0: 2 * slots + 8); 0..4096
  int max_batch = 64;                    // answers per engine batch; 1..4096
  // One Runtime batch at a time: a request arriving while a batch generates waits for all of it
  // (the scheduler before continuous admission; kept for comparisons, bench/serve_arrivals.sh).
  bool static_batches = false;
  // Requests reuse the KV cache an earlier request left when their prompts begin alike (a
  // conversation's next turn); off: every prompt decoded whole (kept for comparisons).
  bool prefix_cache = true;
  // Where a request is prepared (Runtime::prepare: history, decision, the prompt rendered and tokenized): "on" its
  // HTTP thread as it arrives, so the engine loop only starts its samples; "off" on the engine's thread when it is
  // admitted; "auto" on when the engine leaves CPU to spare (Runtime::cpu_to_spare: a GPU, or fewer engine threads
  // than cores). A thread working beside a ggml pool that holds every core slows the pool more than it saves.
  std::string prepare = "auto";
  void validate() const;                 // throws Error naming the option (--port, --timeout, ...)
};

// One finished API request, for observers (metrics).
struct RequestRecord {
  std::string endpoint;  // "/v1/chat/completions", ...
  int status = 200;
  std::string model, choice, mode;
  bool stream = false, escalated = false;
  bool overridden = false;        // the client named the choice (a modifier as model, cogumi.choice)
  double router_probability = -1;  // the router's probability of the choice it made (-1: not routed)
  std::string escalated_by, error_type;
  int prompt_tokens = 0, completion_tokens = 0;
  int cached_tokens = 0;     // prompt tokens taken from the KV cache of an earlier request
  double seconds = 0;        // receipt to last byte of the answer
  double queue_seconds = 0;  // waiting for the engine
  double ttft_seconds = -1;  // to the first generated piece (-1: none)
};

class Server {
 public:
  // Loads the system (or bare model) and starts the scheduler. Throws Error for bad options or
  // an unloadable system.
  explicit Server(ServeOptions opts);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  httplib::Server& http() { return http_; }
  Runtime& runtime() { return *rt_; }
  Scheduler& scheduler() { return *sched_; }
  // The system's session memory (throws Error when the system file names none).
  SessionStore& sessions();
  const ServeOptions& options() const { return opts_; }
  // The name `model` takes for the routed system, and every name /v1/models lists.
  const std::string& system_name() const { return rt_->config().name; }
  std::vector<std::string> model_names() const;

  void on_request(std::function<void(const RequestRecord&)> fn);
  // API-key and rate-limit check; on refusal writes the 401/429 error into `res` and returns false.
  bool admit(const httplib::Request& req, httplib::Response& res);

  int bind();     // binds host:port; returns the port (the free one for port 0). Throws Error.
  void listen();  // serves until stop(); call bind() first
  // Drains: new API requests get 503, requests in flight finish (up to drain_s), those still
  // running then are cut (the client gets 503 shutting_down), then listen() returns. Safe from
  // any thread, idempotent.
  void stop();
  bool draining() const { return draining_.load(); }
  int in_flight() const { return in_flight_.load(); }

 private:
  ServeOptions opts_;
  std::unique_ptr<Runtime> rt_;
  std::unique_ptr<Scheduler> sched_;
  httplib::Server http_;
  std::vector<std::function<void(const RequestRecord&)>> observers_;
  std::mutex observers_mu_;
  std::atomic<bool> draining_{false};
  std::atomic<int> in_flight_{0};
  std::mutex drain_mu_;
  std::condition_variable drain_cv_;
  std::mutex embed_mu_;
  std::unique_ptr<Embedder> embedder_;
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::mutex rate_mu_;
  std::map<std::string, Bucket> buckets_;

  // Counts a request in flight for draining; a stream's guard lives as long as its writer.
  struct InFlight {
    Server* s;
    explicit InFlight(Server* s);
    ~InFlight();
  };
  void routes();
  void notify(const RequestRecord& r);
  void handle_completion(const httplib::Request& req, httplib::Response& res, bool chat);
  void handle_embeddings(const httplib::Request& req, httplib::Response& res);
  void handle_models(const httplib::Request& req, httplib::Response& res);
};

// `cogumi serve`: runs a Server until SIGTERM or SIGINT, then drains and returns 0. Prints
// "cogumi serve: listening on http://HOST:PORT" on stdout once it accepts requests.
int serve(const ServeOptions& opts);

}  // namespace cogumi::serve
