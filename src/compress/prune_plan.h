// cogumi/compress (pruning, internal): which neurons, KV groups and layers survive, from the
// importance scores and a parameter budget per kind of structure.
#pragma once

#include <cstdint>
#include <vector>

#include "compress/prune_gguf.h"
#include "compress/prune_stats.h"

namespace cogumi {

struct PruneBudget {
  uint64_t ffn_params = 0;   // parameters to remove as FFN neurons (3 * n_embd each)
  uint64_t head_params = 0;  // parameters to remove as KV groups
  int drop_layers = 0;       // whole layers to remove (lowest block influence first)
  bool uniform = false;      // the same count removed from every layer
  int multiple = 1;          // FFN neurons leave in blocks of this many (widths stay multiples of it)
};

// The FFN granularity: `requested` when it divides every layer's width (else Error), or for 0 the
// largest of 256, 128, ..., 1 that divides every width and leaves at least 8 blocks per layer.
int prune_multiple(const PruneSource& src, int requested);

// Removes the cheapest blocks (sum of their normalised scores) until the budget is spent: per layer
// in the same number when uniform, else globally. Every layer keeps at least one block and one
// group. Throws Error naming the structure when the budget asks for more than the model has.
std::vector<PruneLayerPlan> plan_prune(const PruneSource& src, const PruneScores& scores, const PruneBudget& budget);

}  // namespace cogumi
