// cogumi/train: what a LoRA adapter trains (no ggml types; safe for apps/).
#pragma once

#include <string>
#include <vector>

namespace cogumi {

// Defaults are `cogumi train`'s: rank 16, alpha 16 (scale 1), all seven linear modules.
struct LoraSpec {
  int rank = 16;
  float alpha = 16.0f;  // > 0 when training; in an adapter file 0 means scale 1 (llama.cpp)
  std::vector<std::string> targets = {"q", "k", "v", "o", "gate", "up", "down"};
};

}  // namespace cogumi
