// cogumi/engine: llama.cpp's logits for every position of a token sequence (log-likelihood
// scoring, perplexity, and the reference the trainer's own graph is checked against).
#pragma once

#include <string>
#include <vector>

#include "engine/model.h"

namespace cogumi {

// Row-major [tokens.size()][n_vocab]. `adapter`: a name loaded on the model, or "" for none.
std::vector<float> model_logits(const Model& model, const std::vector<Token>& tokens, const std::string& adapter = "",
                                float adapter_scale = 1.0f, int n_threads = 0);

}  // namespace cogumi
