// cogumi/analysis: cluster labels written by an LLM behind any OpenAI-compatible endpoint
// (POST {base_url}/chat/completions). Optional: c-TF-IDF labels are the default.
#pragma once

#include <string>
#include <vector>

namespace cogumi {

struct LabelerOptions {
  std::string base_url;            // e.g. http://127.0.0.1:8080/v1
  std::string model = "default";
  std::string api_key;             // sent as a Bearer token when set
  double timeout_s = 60.0;
};

// Asks for a 3-6 word label for a group of failed problems (examples + distinctive terms).
// Throws Error naming the endpoint on connection failures or unexpected responses.
std::string llm_label(const LabelerOptions& opts, const std::vector<std::string>& examples,
                      const std::vector<std::string>& terms);

}  // namespace cogumi
