// A streaming chat request over real HTTP (httplib's client), read as it arrives: the tests of
// the server's continuous admission, accurate-mode streams and serving paths share it.
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace cogumi::serve::test_sse {

// One SSE response as it arrived: data events (parsed, "[DONE]" kept as a string) with their
// arrival times, and comments (": ..." blocks, the server's progress reports).
struct SseLog {
  std::vector<std::pair<nlohmann::json, std::chrono::steady_clock::time_point>> events;
  std::vector<std::string> comments;
  int status = 0;  // -1: no response (connection failed or the read timed out)
  std::string content() const {
    std::string s;
    for (auto& [e, t] : events)
      if (e.is_object() && e.contains("choices") && !e["choices"].empty())
        s += e["choices"][0]["delta"].value("content", "");
    return s;
  }
};

// POSTs `body` to /v1/chat/completions and reads the event stream; `on_event` sees each data
// event as it comes. The read times out after `timeout_s` without a byte.
inline SseLog post_sse(int port, const nlohmann::json& body,
                       const std::function<void(const nlohmann::json&)>& on_event = {}, int timeout_s = 300) {
  SseLog log;
  std::string buf;
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(timeout_s);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/chat/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    buf.append(data, n);
    for (size_t end; (end = buf.find("\n\n")) != std::string::npos; buf.erase(0, end + 2)) {
      const std::string block = buf.substr(0, end);
      if (block.rfind(": ", 0) == 0) {
        log.comments.push_back(block.substr(2));
      } else if (block.rfind("data: ", 0) == 0) {
        const std::string d = block.substr(6);
        nlohmann::json e = d == "[DONE]" ? nlohmann::json(d) : nlohmann::json::parse(d);
        if (on_event) on_event(e);
        log.events.emplace_back(std::move(e), std::chrono::steady_clock::now());
      }
    }
    return true;
  };
  auto r = c.send(req);
  log.status = r ? r->status : -1;
  return log;
}

}  // namespace cogumi::serve::test_sse
