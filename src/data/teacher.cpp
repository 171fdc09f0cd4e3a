// The request pool and its log (data/teacher.h).
#include "data/teacher.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <random>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"

namespace cogumi {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double backoff_delay(const TeacherEndpoint& ep, int attempt, double retry_after_s, double u) {
  const double cap = std::min(ep.backoff_max_s, ep.backoff_s * std::pow(2.0, std::max(0, attempt - 1)));
  return std::max(u * cap, retry_after_s);
}

std::string request_key(const TeacherEndpoint& ep, const std::string& prompt) {
  return sha256_hex(ep.name + '\n' + ep.model + '\n' + prompt);
}

RequestLog::RequestLog(const std::filesystem::path& path) : path_(path) {
  if (std::filesystem::exists(path)) {
    std::string text = read_file(path);
    // A kill mid-write leaves a last line without its newline: drop it, that request is asked again.
    if (!text.empty() && text.back() != '\n') {
      const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
      std::filesystem::resize_file(path, keep);
      text.resize(keep);
    }
    size_t line_no = 0, at = 0;
    while (at < text.size()) {
      const size_t nl = text.find('\n', at);
      const std::string line = text.substr(at, nl - at);
      at = nl + 1;
      ++line_no;
      if (line.empty()) continue;
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.is_object() || !j.contains("key") || !j["key"].is_string())
        fail("{}:{}: not a teacher reply line (a JSON object with \"key\")", path.string(), line_no);
      if (j.contains("error")) continue;  // asked again
      if (auto u = j.find("usage"); u != j.end() && u->is_object())
        tokens_ += u->value("prompt_tokens", int64_t(0)) + u->value("completion_tokens", int64_t(0));
      const std::string key = j["key"].get<std::string>();  // before the move: json's operator= takes its argument by value
      done_[key] = std::move(j);
    }
  }
  out_ = std::make_unique<JsonlWriter>(path, /*append=*/true);
}

const json* RequestLog::find(const std::string& key) const {
  auto it = done_.find(key);
  return it == done_.end() ? nullptr : &it->second;
}

void RequestLog::append(const json& line) {
  std::lock_guard lk(mu_);
  out_->write(line);
}

namespace {

std::string message_text(const json& msg) {
  auto c = msg.find("content");
  if (c == msg.end() || c->is_null()) return "";
  if (c->is_string()) return c->get<std::string>();
  std::string text;
  if (c->is_array())
    for (const auto& part : *c)
      if (part.is_object() && part.contains("text") && part["text"].is_string()) text += part["text"].get<std::string>();
  return text;
}

// Fills reply, finish_reason and usage from a 200 body; false when it is not a completion.
bool parse_reply(const TeacherEndpoint& ep, const std::string& body, json& line) {
  json r = json::parse(body, nullptr, false);
  if (r.is_discarded() || !r.is_object() || !r.contains("choices") || !r["choices"].is_array() ||
      r["choices"].empty() || !r["choices"][0].is_object())
    return false;
  const json& c = r["choices"][0];
  if (ep.api == "chat") {
    if (!c.contains("message") || !c["message"].is_object()) return false;
    line["reply"] = message_text(c["message"]);
  } else {
    line["reply"] = c.contains("text") && c["text"].is_string() ? c["text"].get<std::string>() : "";
  }
  line["finish_reason"] = c.contains("finish_reason") && c["finish_reason"].is_string() ? c["finish_reason"] : json("");
  json usage = {{"prompt_tokens", 0}, {"completion_tokens", 0}};
  if (auto u = r.find("usage"); u != r.end() && u->is_object())
    for (const char* k : {"prompt_tokens", "completion_tokens"})
      if (u->contains(k) && (*u)[k].is_number_integer()) usage[k] = (*u)[k];
  line["usage"] = usage;
  return true;
}

std::string payload_for(const TeacherEndpoint& ep, const std::string& prompt) {
  json body = {{"model", ep.model}, {"max_tokens", ep.max_tokens}, {"temperature", ep.temperature}};
  if (ep.api == "chat") body["messages"] = json::array({{{"role", "user"}, {"content", prompt}}});
  else body["prompt"] = prompt;
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Everything the workers of one ask_all share.
struct Pool {
  const TeacherEndpoint& ep;
  std::string api_key, path;
  RequestLog& log;
  SpendMeter& spend;
  const std::function<void(json&)>& annotate;
  std::mutex mu;  // rate slots, abort message, progress
  Clock::time_point next_slot = Clock::now();
  std::atomic<bool> abort{false};
  std::string abort_why;
  std::mt19937_64 rng{std::random_device{}()};

  void stop(const std::string& why) {
    std::lock_guard lk(mu);
    if (!abort.exchange(true)) abort_why = why;
  }
  void wait_for_slot() {
    if (ep.rate_limit <= 0) return;
    Clock::time_point at;
    {
      std::lock_guard lk(mu);
      at = std::max(next_slot, Clock::now());
      next_slot = at + std::chrono::microseconds(int64_t(60e6 / ep.rate_limit));
    }
    std::this_thread::sleep_until(at);
  }
  void sleep_unless_aborted(double s) {
    const auto until = Clock::now() + std::chrono::microseconds(int64_t(s * 1e6));
    while (!abort && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  double uniform() {
    std::lock_guard lk(mu);
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  }
  json ask(const TeacherRequest& req, const std::string& key);
};

json Pool::ask(const TeacherRequest& req, const std::string& key) {
  json line = req.meta;
  line["key"] = key;
  line["tier"] = ep.name;
  line["model"] = ep.model;
  line["prompt"] = req.prompt;
  const auto t0 = Clock::now();
  const std::string payload = payload_for(ep, req.prompt);
  json retried = json::array();
  for (int attempt = 0;; ++attempt) {
    if (abort) return nullptr;
    wait_for_slot();
    HttpReply r;
    try {
      r = teacher_post(ep, api_key, path, payload);
    } catch (const Error& e) {
      stop(e.what());
      return nullptr;
    }
    if (r.tls_error) {
      stop(fmt::format("tier '{}': TLS with {} failed: {}{}", ep.name, ep.base_url, r.transport_error,
                       ep.ca_file.empty() ? " (a private certificate? give its CA file: --ca-file / ca_file:)" : ""));
      return nullptr;
    }
    line["status"] = r.status;
    if (r.status == 200 && parse_reply(ep, r.body, line)) break;
    const bool retryable = r.status == 0 || r.status == 429 || r.status >= 500 || r.status == 200;
    if (!retryable) {
      stop(fmt::format("tier '{}' ({}) answered HTTP {}: {}", ep.name, ep.base_url, r.status, r.body.substr(0, 300)));
      return nullptr;
    }
    retried.push_back(r.status == 0 ? json(r.transport_error) : json(r.status));
    if (attempt >= ep.max_retries) {
      line["error"] = r.status == 0 ? r.transport_error
                    : r.status == 200 ? "a reply that is not a completion: " + r.body.substr(0, 200)
                                      : fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
      break;
    }
    sleep_unless_aborted(backoff_delay(ep, attempt + 1, r.retry_after_s, uniform()));
  }
  line["retries"] = retried.size();
  line["retried"] = retried;
  line["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!line.contains("error")) {
    spend.spent += line["usage"]["prompt_tokens"].get<int64_t>() + line["usage"]["completion_tokens"].get<int64_t>();
    if (annotate) annotate(line);
  }
  log.append(line);
  return line.contains("error") ? json(nullptr) : line;
}

}  // namespace

std::vector<json> ask_all(const TeacherEndpoint& ep, const std::vector<TeacherRequest>& reqs, RequestLog& log,
                          SpendMeter& spend, const std::function<void(json&)>& annotate, bool progress) {
  std::vector<json> out(reqs.size(), nullptr);
  std::vector<std::string> keys(reqs.size());
  std::unordered_map<std::string, size_t> first;  // one request per key
  std::vector<size_t> todo;
  for (size_t i = 0; i < reqs.size(); ++i) {
    keys[i] = request_key(ep, reqs[i].prompt);
    if (const json* done = log.find(keys[i])) {
      out[i] = *done;
      out[i]["resumed"] = true;
    } else if (first.emplace(keys[i], i).second) {
      todo.push_back(i);
    }
  }
  if (!todo.empty()) {
    Pool pool{ep, ep.api_key(), ep.api == "chat" ? "/chat/completions" : "/completions", log, spend, annotate};
    Progress bar(fmt::format("{} ({})", ep.name, ep.model), int64_t(todo.size()), progress);
    std::atomic<size_t> done{0};
    parallel_for(todo.size(), std::min<int>(ep.concurrency, int(todo.size())), [&](size_t t) {
      if (pool.abort) return;
      if (spend.exhausted()) {
        spend.capped = true;
        return;
      }
      const size_t i = todo[t];
      try {  // the first failure (a failed check in the sandbox, a full disk for the log) stops the others
        out[i] = pool.ask(reqs[i], keys[i]);
      } catch (const std::exception& e) {
        pool.stop(e.what());
        return;
      }
      std::lock_guard lk(pool.mu);
      bar.update(int64_t(++done));
    });
    bar.finish();
    if (pool.abort) throw Error(pool.abort_why);
  }
  for (size_t i = 0; i < reqs.size(); ++i)  // repeats of a prompt share its answer
    if (out[i].is_null()) {
      auto it = first.find(keys[i]);
      if (it != first.end() && it->second != i) out[i] = out[it->second];
    }
  return out;
}

}  // namespace cogumi
