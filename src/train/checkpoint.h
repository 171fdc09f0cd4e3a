// cogumi/train: training checkpoints. One GGUF file holds the trainable tensors, the AdamW
// moments, the best validated weights (when kept) and the loop's state as JSON (step, epoch,
// data order, position in the epoch, RNG, early-stopping counters, a fingerprint of the run's
// options). It is written to a temporary file, synced and renamed over the previous one, so a
// process killed at any moment, or a full disk, leaves either the old checkpoint or the new one,
// never half; tensors holding NaN or inf are refused, so a checkpoint is always resumable.
#pragma once

#include <ggml.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace cogumi {

struct CheckpointTensors {
  std::map<std::string, ggml_tensor*> device;            // read from / written to backend tensors
  std::map<std::string, std::vector<char>*> host;        // F32 bytes kept on the host (optional on load)
};

// Throws Error (the previous file untouched) on a write failure or a non-finite value.
void save_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t, const nlohmann::json& state);
// The loop state alone (no tensors): to check a checkpoint belongs to this run before loading it.
nlohmann::json checkpoint_state(const std::filesystem::path& path);
// Restores every tensor named in `t` and returns the state. Host vectors are resized, or cleared
// when the checkpoint does not hold them. Throws Error naming the file and a missing or mis-sized
// device tensor.
nlohmann::json load_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t);

}  // namespace cogumi
