// cogumi/train: what a LoRA adapter trains (no ggml types; safe for apps/).
#pragma once

#include <string>
#include <vector>

namespace cogumi {

struct LoraSpec {
  int rank = 0;  // 0: no LoRA
  float alpha = 16.0f;
  std::vector<std::string> targets;  // q, k, v, o, gate, up, down
};

}  // namespace cogumi
