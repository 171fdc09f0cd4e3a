// cogumi/data: teacher and judge endpoints, and the request pool that asks them. Behind
// `cogumi data generate` (data/cascade.h) and `cogumi data judge` (data/judge.h).
//
// An endpoint is any OpenAI-compatible server (http or https, a CA file for private
// certificates), asked through its chat API or its legacy completions API (a base model served
// raw). The pool keeps `concurrency` requests in flight, spaces them to a rate limit, retries
// 429, 5xx, timeouts and dropped connections with exponential backoff and full jitter (at least
// as long as the server's Retry-After), stops issuing at a spend cap in tokens, and appends every
// reply to a JSONL log the moment it arrives. Each request is keyed by a hash of its tier and its
// prompt: a rerun over the same log asks only what the log does not hold (resume after a kill,
// nothing received lost). A torn last line (a kill mid-write) is dropped and asked again.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/io.h"

namespace cogumi {

struct TeacherEndpoint {
  std::string name = "teacher";  // the tier's name in records and reports
  std::string base_url;          // http(s)://host[:port]/prefix, e.g. https://api.openai.com/v1
  std::string model = "default";
  std::string api = "chat";      // chat: POST /chat/completions; completions: POST /completions
  std::string api_key_env;       // environment variable holding the key ("": none sent)
  std::string ca_file;           // PEM CA certificates for https ("": the system's store)
  int concurrency = 4;           // requests in flight, 1..256
  double rate_limit = 0;         // requests per minute, 0 = off
  int max_retries = 6;           // per request, on 429/5xx/timeouts/dropped connections, 0..100
  double backoff_s = 0.5;        // first retry delay (doubles each attempt, full jitter)
  double backoff_max_s = 60;     // the largest delay between attempts
  double timeout_s = 120;        // connect and read timeout per attempt
  int max_tokens = 512;          // per reply, 1..1,000,000
  double temperature = 0.0;      // 0..2
  std::filesystem::path prompt_template;  // a file of configs/prompts/ (placeholders: its README)
  // Throws Error naming `where` (a config file and tier, or the command's options) and the field.
  void validate(const std::string& where) const;
  std::string api_key() const;  // from api_key_env; Error when it names an unset variable
};

// Reads endpoints from YAML: a list under `tiers:` (or `judge:`, one map), each a map of the
// fields above (base_url, model, api, api_key_env, ca_file, concurrency, rate_limit,
// max_retries, backoff_s, backoff_max_s, timeout_s, max_tokens, temperature, template). Relative
// template and CA paths are resolved against the config's directory. Errors name file:line and key.
std::vector<TeacherEndpoint> load_teacher_config(const std::filesystem::path& path, const std::string& section,
                                                 int64_t* spend_cap_tokens);

// One HTTP exchange, never retried here. status 0: no HTTP answer (transport_error says why).
struct HttpReply {
  int status = 0;
  std::string body;
  double retry_after_s = -1;  // the Retry-After header, seconds; -1 when absent
  std::string transport_error;
  bool tls_error = false;     // the TLS handshake or the certificate check failed: never retried
};
HttpReply teacher_post(const TeacherEndpoint& ep, const std::string& api_key, const std::string& path,
                       const std::string& payload);

// The delay before retry `attempt` (1-based): uniform in [0, min(max, base * 2^(attempt-1))]
// (full jitter), never less than the server's Retry-After. `u` is a uniform draw in [0, 1).
double backoff_delay(const TeacherEndpoint& ep, int attempt, double retry_after_s, double u);

// sha256 hex of tier name, model and prompt: a request's identity in the log.
std::string request_key(const TeacherEndpoint& ep, const std::string& prompt);

// The JSONL log of replies. Opening reads what a previous run wrote (dropping a torn last line);
// append() is thread-safe and flushed per line.
class RequestLog {
 public:
  explicit RequestLog(const std::filesystem::path& path);
  const nlohmann::json* find(const std::string& key) const;  // a successful reply, or null
  void append(const nlohmann::json& line);
  int64_t tokens() const { return tokens_; }                 // prompt + completion, all lines read
  size_t size() const { return done_.size(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::map<std::string, nlohmann::json> done_;
  int64_t tokens_ = 0;
  std::mutex mu_;
  std::unique_ptr<JsonlWriter> out_;
};

struct TeacherRequest {
  std::string prompt;
  nlohmann::json meta = nlohmann::json::object();  // copied into the log line (item, cluster, ...)
};

// The spend cap shared by every tier of a run: requests stop being issued once `spent` reaches
// `cap` (0 = no cap). A request already in flight still lands in the log.
struct SpendMeter {
  int64_t cap = 0;
  std::atomic<int64_t> spent{0};
  std::atomic<bool> capped{false};
  bool exhausted() const { return cap > 0 && spent.load() >= cap; }
};

// Asks every request not already in the log, `ep.concurrency` at a time, and appends each reply
// as it arrives: {"key","tier","model","prompt","reply","finish_reason","usage":{prompt_tokens,
// completion_tokens},"retries","status","seconds", meta..., and what `annotate` adds}. `annotate`
// runs on the worker before the line is written (a check of the reply) and may add fields.
// Returns the log line of each request (null when it was not asked: spend cap, or a failure after
// every retry, which the log records with "error" and a rerun asks again). Throws Error for what
// no retry can mend (bad URL, TLS, 4xx other than 429), after the replies received are written.
std::vector<nlohmann::json> ask_all(const TeacherEndpoint& ep, const std::vector<TeacherRequest>& reqs,
                                    RequestLog& log, SpendMeter& spend,
                                    const std::function<void(nlohmann::json&)>& annotate = {},
                                    bool progress = true);

}  // namespace cogumi
