#include "data/openai_client.h"

#ifdef COGUMI_HAVE_HTTPLIB
#include <httplib.h>
#endif

#include "core/error.h"

namespace cogumi {

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
  httplib::Client cli(host);
  auto ms = std::chrono::milliseconds(int64_t(ep.timeout_s * 1000));
  cli.set_connection_timeout(ms);
  cli.set_read_timeout(ms);
  httplib::Headers headers;
  if (!ep.api_key.empty()) headers.emplace("Authorization", "Bearer " + ep.api_key);
  auto res = cli.Post(prefix + "/chat/completions", headers, body.dump(), "application/json");
  if (!res) fail("endpoint '{}' unreachable: {}", ep.base_url, httplib::to_string(res.error()));
  if (res->status != 200) fail("endpoint '{}' answered HTTP {}: {}", ep.base_url, res->status, res->body.substr(0, 200));
  auto r = nlohmann::json::parse(res->body, nullptr, false);
  if (r.is_discarded() || !r.contains("choices") || !r["choices"].is_array() || r["choices"].empty() ||
      !r["choices"][0].contains("message"))
    fail("endpoint '{}' sent a reply without choices[0].message", ep.base_url);
  return r["choices"][0]["message"].value("content", "");
#endif
}

}  // namespace cogumi
