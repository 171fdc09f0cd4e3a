// cogumi/analysis: cluster labels written by an LLM behind any OpenAI-compatible endpoint.
// Optional: c-TF-IDF labels are the default.
#pragma once

#include <string>
#include <vector>

#include "data/openai_client.h"

namespace cogumi {

using LabelerOptions = OpenAIEndpoint;

// Asks for a 3-6 word label for a group of failed problems (examples + distinctive terms).
// Throws Error naming the endpoint on connection failures or unexpected responses.
std::string llm_label(const LabelerOptions& opts, const std::vector<std::string>& examples,
                      const std::vector<std::string>& terms);

}  // namespace cogumi
