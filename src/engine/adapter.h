// cogumi/engine: LoRA adapters as files. Target-module names, and random adapters in the
// GGUF layout llama.cpp loads (general.type=adapter, adapter.type=lora, adapter.lora.alpha,
// tensors "<weight>.lora_a" [n_in, r] and "<weight>.lora_b" [r, n_out]; the applied delta is
// scale * alpha / r * B A).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

// "q" -> "attn_q", "k", "v", "o" -> "attn_output", "gate", "up", "down" -> "ffn_*".
// Throws Error for an unknown name, listing the known ones.
std::string lora_target_tensor(const std::string& module);
const std::vector<std::string>& lora_target_modules();

struct AdapterInitOptions {
  int rank = 8;
  float alpha = 16.0f;
  std::vector<std::string> targets = {"q", "k", "v", "o"};
  uint64_t seed = 1;
  float std_a = 0.02f;
  float std_b = 0.0f;  // 0: the usual LoRA start (B = 0, adapter is a no-op)
  void validate() const;  // throws Error naming the flag
};

// Writes a LoRA adapter GGUF for `base` (reads only its header). Returns the parameter count.
uint64_t adapter_init(const fs::path& base, const fs::path& out, const AdapterInitOptions& opts);

}  // namespace cogumi
