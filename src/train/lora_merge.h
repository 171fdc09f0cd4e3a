// cogumi/train: LoRA adapters as files: describe one, or merge it into its base model.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>

namespace cogumi {

// {"alpha","rank","n_params","arch","tensors":[{"name","rank","n_in","n_out"}],"modules":[...]}.
nlohmann::json lora_info(const std::filesystem::path& adapter);

// Writes base + scale * (alpha / rank) * B A as a new GGUF with the base's metadata and tensor
// types (F32 or F16 bases; quantize the result afterwards). Throws Error when the adapter does
// not fit the base (missing tensor, shape mismatch) or the base is quantized.
void lora_merge(const std::filesystem::path& base, const std::filesystem::path& adapter,
                const std::filesystem::path& out, float scale = 1.0f);

}  // namespace cogumi
