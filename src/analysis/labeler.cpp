#include "analysis/labeler.h"

#ifdef COGUMI_HAVE_HTTPLIB
#include <httplib.h>
#endif

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

std::string llm_label(const LabelerOptions& o, const std::vector<std::string>& examples,
                      const std::vector<std::string>& terms) {
#ifndef COGUMI_HAVE_HTTPLIB
  (void)examples, (void)terms;
  fail("this build of cogumi has no HTTP client (cpp-httplib); cannot reach the labeler at '{}'", o.base_url);
#else
  // Split "http://host:port/prefix" into the client address and the path prefix.
  std::string url = o.base_url;
  size_t scheme = url.find("://");
  size_t path_at = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  std::string host = path_at == std::string::npos ? url : url.substr(0, path_at);
  std::string prefix = path_at == std::string::npos ? "" : url.substr(path_at);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();

  std::string prompt = "These problems were all answered wrongly by a model. Give a short label (3 to 6 words) for "
                       "what they have in common. Reply with the label only.\n\nDistinctive terms: ";
  for (size_t i = 0; i < terms.size(); ++i) prompt += (i ? ", " : "") + terms[i];
  prompt += "\n\nExamples:\n";
  for (const auto& e : examples) prompt += "- " + (e.size() > 400 ? e.substr(0, 400) + "..." : e) + "\n";
  json body = {{"model", o.model},
               {"messages", json::array({{{"role", "user"}, {"content", prompt}}})},
               {"temperature", 0.0},
               {"max_tokens", 24}};

  httplib::Client cli(host);
  cli.set_connection_timeout(std::chrono::milliseconds(int64_t(o.timeout_s * 1000)));
  cli.set_read_timeout(std::chrono::milliseconds(int64_t(o.timeout_s * 1000)));
  httplib::Headers headers;
  if (!o.api_key.empty()) headers.emplace("Authorization", "Bearer " + o.api_key);
  auto res = cli.Post(prefix + "/chat/completions", headers, body.dump(), "application/json");
  if (!res) fail("labeler at '{}' unreachable: {}", o.base_url, httplib::to_string(res.error()));
  if (res->status != 200) fail("labeler at '{}' answered HTTP {}: {}", o.base_url, res->status, res->body.substr(0, 200));
  json r = json::parse(res->body, nullptr, false);
  if (r.is_discarded() || !r.contains("choices") || r["choices"].empty())
    fail("labeler at '{}' sent a response without choices", o.base_url);
  std::string label = r["choices"][0]["message"].value("content", "");
  while (!label.empty() && (label.back() == '\n' || label.back() == ' ' || label.back() == '.')) label.pop_back();
  size_t a = label.find_first_not_of(" \n\"");
  return a == std::string::npos ? "" : label.substr(a);
#endif
}

}  // namespace cogumi
