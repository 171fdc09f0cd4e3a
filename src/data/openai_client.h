// cogumi/data: a client for any OpenAI-compatible chat endpoint (POST {base_url}/chat/completions):
// teachers, judges, cluster labelers. Blocking, one request per call.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace cogumi {

struct OpenAIEndpoint {
  std::string base_url;      // e.g. http://127.0.0.1:8080/v1
  std::string model = "default";
  std::string api_key;       // sent as a Bearer token when set
  double timeout_s = 60.0;
};

// Sends `messages` ([{"role","content"}]) and returns the first choice's message content ("" when
// the reply's content is null or absent). Throws Error naming the endpoint on connection
// failures, HTTP errors and malformed replies; never any other exception.
std::string openai_chat(const OpenAIEndpoint& ep, const nlohmann::json& messages, int max_tokens,
                        double temperature = 0.0);

}  // namespace cogumi
