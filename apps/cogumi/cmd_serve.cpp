// cogumi serve: the OpenAI-compatible HTTP server over the modular runtime.
#include <cstdlib>
#include <sstream>

#include "commands.h"
#include "core/error.h"
#include "engine/model.h"
#if COGUMI_HAVE_HTTPLIB
#include "serve/server.h"
#endif

namespace cogumi::cli {

void setup_serve(CLI::App& sub) {
#if COGUMI_HAVE_HTTPLIB
  static serve::ServeOptions o;
  static std::string system = o.system.string(), model;
  static size_t max_body = o.max_body;
  sub.add_option("-s,--system", system, "System file (YAML) to serve")->capture_default_str();
  sub.add_option("-m,--model", model, "Serve a bare GGUF model instead of a system");
  sub.add_option("--host", o.host, "Address to listen on")->capture_default_str();
  sub.add_option("--port", o.port, "Port (0: any free port, printed)")->capture_default_str();
  sub.add_option("--api-key", o.api_keys,
                 "A key clients must send as 'Authorization: Bearer KEY' (repeatable; also COGUMI_API_KEYS, comma-separated)");
  sub.add_option("--rate-limit", o.rate_limit, "Requests per minute per key (0: off)")->capture_default_str();
  sub.add_option("--max-body", max_body, "Largest request body in bytes")->capture_default_str();
  sub.add_option("--timeout", o.timeout_s, "Seconds a request may take, queueing included")
      ->check(finite_number())
      ->capture_default_str();
  sub.add_option("--drain", o.drain_s,
                 "On SIGTERM, seconds requests in flight may take to finish before they are cut with 503 "
                 "(0: --timeout + 5)")
      ->capture_default_str();
  sub.add_option("--parallel", o.parallel, "Engine sequence slots (0: the system's)")->capture_default_str();
  sub.add_option("--threads", o.threads, "Engine CPU threads (0: the system's generation.threads)")
      ->capture_default_str();
  sub.add_option("--http-threads", o.http_threads, "Connections served at once (0: 2 x slots + 8)")
      ->capture_default_str();
  sub.add_option("--max-batch", o.max_batch, "Answers per engine batch")->capture_default_str();
  sub.add_option("--prepare", o.prepare,
                 "Where a request's prompt is made (history, routing, chat template, tokens): on its HTTP thread "
                 "(on), on the engine's (off), or on when the engine leaves CPU to spare: a GPU, or --threads "
                 "under the cores (auto)")
      ->capture_default_str();
  sub.add_flag("--static-batches", o.static_batches,
               "One batch at a time: requests arriving during a batch wait for its end (default: they join it "
               "at the next decode step)");
  sub.add_flag_callback(
      "--no-prefix-cache", [] { o.prefix_cache = false; },
      "Decode every prompt whole: no KV cache reused from earlier requests (for comparisons)");
  sub.callback([&] {
    engine_set_verbose(globals().verbose);
    o.system = system;
    o.model = model;
    o.max_body = max_body;
    if (const char* env = std::getenv("COGUMI_API_KEYS")) {
      std::stringstream ss(env);
      for (std::string k; std::getline(ss, k, ',');)
        if (!k.empty()) o.api_keys.push_back(k);
    }
    o.validate();
    if (int rc = serve::serve(o)) throw CLI::RuntimeError(rc);
  });
#else
  sub.callback([] { throw cogumi::Error("cogumi serve: this build has no cpp-httplib (install libcpp-httplib-dev, rebuild)"); });
#endif
}

}  // namespace cogumi::cli
