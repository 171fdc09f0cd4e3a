// A tiny `deci` GGUF as `cogumi compress prune` writes uneven prunes: per-block FFN widths and head
// counts (arrays), the head size stored, made from a random llama model by the pruner's own writer
// with a fixed plan, so every block has a different shape and the trainer's graph must read each.
#pragma once

#include <filesystem>
#include <numeric>
#include <vector>

#include "compress/prune_gguf.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi::test {

// 64 wide, 4 blocks of 4 heads in 2 KV groups (head size 16) and FFN 256 before pruning; after:
// FFN 256 / 96 / 160 / 32 and 4 / 2 / 4 / 2 heads.
inline const std::filesystem::path& tiny_deci_model() {
  static const std::filesystem::path p = [] {
    const auto base = tmp_dir() / "deci-source.gguf";
    ModelInitOptions o;
    o.shape.n_embd = 64, o.shape.n_layer = 4, o.shape.n_head = 4, o.shape.n_head_kv = 2, o.shape.n_ff = 256;
    o.init_std = 0.08f;  // attention far from uniform: a block read at the wrong shape shows in the logits
    o.seed = 21;
    model_init(base, o);
    auto first = [](int n) {
      std::vector<int> v(static_cast<size_t>(n));
      std::iota(v.begin(), v.end(), 0);
      return v;
    };
    std::vector<PruneLayerPlan> plan = {{0, first(256), {0, 1}},
                                        {1, first(96), {1}},
                                        {2, first(160), {0, 1}},
                                        {3, first(32), {0}}};
    for (int& j : plan[1].neurons) j = j * 2 + 1;  // not a prefix: the kept neurons are gathered
    const auto out = tmp_dir() / "deci-tiny.gguf";
    PruneSource(base).write_pruned(out, plan);
    return out;
  }();
  return p;
}

}  // namespace cogumi::test
