#include "data/openai_client.h"

#ifdef COGUMI_HAVE_HTTPLIB
#include <httplib.h>
#endif

#include <optional>

#include "core/error.h"

namespace cogumi {

namespace {

// A message's text. OpenAI sends content null when there is none (a content filter, a reply
// that is only tool calls): that is "", not a malformed reply. Some servers send a list of
// parts ([{"type":"text","text":...}]).
[[maybe_unused]] std::string message_text(const nlohmann::json& msg, const std::string& url) {
  auto c = msg.find("content");
  if (c == msg.end() || c->is_null()) return "";
  if (c->is_string()) return c->get<std::string>();
  if (c->is_array()) {
    std::string text;
    for (const auto& part : *c)
      if (part.is_object() && part.contains("text") && part["text"].is_string()) text += part["text"].get<std::string>();
    return text;
  }
  fail("endpoint '{}' sent choices[0].message.content of type {}, not text", url, c->type_name());
}

}  // namespace

std::string openai_chat(const OpenAIEndpoint& ep, const nlohmann::json& messages, int max_tokens, double temperature) {
  if (ep.base_url.empty()) fail("no endpoint URL given");
#ifndef COGUMI_HAVE_HTTPLIB
  (void)messages, (void)max_tokens, (void)temperature;
  fail("this build of cogumi has no HTTP client (cpp-httplib); cannot reach '{}'", ep.base_url);
#else
  // Split "http://host:port/prefix" into the client address and the path prefix.
  const std::string& url = ep.base_url;
  size_t scheme = url.find("://");
  size_t path_at = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  std::string host = path_at == std::string::npos ? url : url.substr(0, path_at);
  std::string prefix = path_at == std::string::npos ? "" : url.substr(path_at);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  nlohmann::json body = {{"model", ep.model}, {"messages", messages}, {"temperature", temperature}, {"max_tokens", max_tokens}};
  // A model's output can hold invalid UTF-8 (byte tokens): replace it rather than throw.
  std::string payload = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::optional<httplib::Client> client;
  try {
    client.emplace(host);
  } catch (const std::exception& e) {  // an unsupported scheme
    fail("endpoint '{}': {}", ep.base_url, e.what());
  }
  httplib::Client& cli = *client;
  auto ms = std::chrono::milliseconds(int64_t(ep.timeout_s * 1000));
  cli.set_connection_timeout(ms);
  cli.set_read_timeout(ms);
  httplib::Headers headers;
  if (!ep.api_key.empty()) headers.emplace("Authorization", "Bearer " + ep.api_key);
  auto res = cli.Post(prefix + "/chat/completions", headers, payload, "application/json");
  if (!res) fail("endpoint '{}' unreachable: {}", ep.base_url, httplib::to_string(res.error()));
  if (res->status != 200) fail("endpoint '{}' answered HTTP {}: {}", ep.base_url, res->status, res->body.substr(0, 200));
  auto r = nlohmann::json::parse(res->body, nullptr, false);
  if (r.is_discarded() || !r.is_object() || !r.contains("choices") || !r["choices"].is_array() ||
      r["choices"].empty() || !r["choices"][0].is_object() || !r["choices"][0].contains("message") ||
      !r["choices"][0]["message"].is_object())
    fail("endpoint '{}' sent a reply without choices[0].message", ep.base_url);
  return message_text(r["choices"][0]["message"], ep.base_url);
#endif
}

}  // namespace cogumi
