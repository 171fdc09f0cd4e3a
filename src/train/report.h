// cogumi/train: the training report. From the run's JSONL log: an SVG with the training and
// validation loss curves over steps, and a summary JSON (steps, losses, best validation, speed,
// data counts, early stop, divergence, the options used).
#pragma once

#include <filesystem>

#include "train/trainer.h"

namespace cogumi {

void write_train_report(const std::filesystem::path& log, const std::filesystem::path& svg,
                        const std::filesystem::path& summary, const TrainResult& res, const TrainOptions& o);

}  // namespace cogumi
