// How a LoRA's frozen F16/BF16 base matrices are held while training (TrainOptions::base_weights,
// `cogumi train --base-weights`).
#pragma once

namespace cogumi {

enum class BaseWeights {
  file,  // the file's types
  f32,   // widened to F32 at load (the same values)
  bf16,  // F16 rounded to the nearest BF16 at load (BF16 kept)
};

inline const char* to_string(BaseWeights w) {
  switch (w) {
    case BaseWeights::f32: return "f32";
    case BaseWeights::bf16: return "bf16";
    case BaseWeights::file: break;
  }
  return "file";
}

}  // namespace cogumi
