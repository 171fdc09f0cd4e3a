// cogumi/compress (pruning, internal): recovery after pruning. The pruned model is fine-tuned on
// SFT data by the trainer (it reads the llama and deci GGUFs pruning writes): a LoRA on every
// linear module merged back into the weights (default), or full-parameter SFT; either way the
// result has the pruned model's shapes, architecture and tensor type, so it is as fast as the
// pruned model and stock llama.cpp loads it.
#pragma once

#include <filesystem>
#include <string>

#include "compress/prune.h"

namespace cogumi {

// Fine-tunes `pruned` as o.recover_* say and writes the recovered model to `out` (atomic). The
// LoRA adapter (or the full run's F32 weights) and the trainer's log, loss curve and summary are
// kept beside `out` (OUT stem + ".recovery.*"). Throws Error from the trainer (bad data, no memory).
PruneRecovery recover_pruned(const fs::path& pruned, const fs::path& out, const PruneOptions& o);

// Where prune_model keeps the model before recovery: OUT's stem + ".unrecovered.gguf".
fs::path unrecovered_path(const fs::path& out);

}  // namespace cogumi
