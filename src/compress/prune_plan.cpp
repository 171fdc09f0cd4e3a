#include "compress/prune_plan.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace cogumi {

namespace {

// Indices of `score` from least to most important (ties: lower index first).
std::vector<int> ascending(const std::vector<double>& score) {
  std::vector<int> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return score[size_t(a)] < score[size_t(b)]; });
  return idx;
}

// How many units (blocks of `unit` indices, cheapest first) leave each layer: `total` units, the
// same in every layer when uniform, else the globally cheapest next unit each time. Every layer
// keeps at least one unit.
std::vector<int> units_removed(const std::vector<std::vector<double>>& score, int unit, int64_t total, bool uniform,
                               const char* what) {
  const size_t n = score.size();
  std::vector<std::vector<int>> order(n);
  int64_t available = 0;
  for (size_t l = 0; l < n; ++l) {
    order[l] = ascending(score[l]);
    available += int64_t(score[l].size()) / unit - 1;
  }
  if (total > available)
    fail("pruning: the level asks for {} {} blocks, the model has {} to give (every layer keeps one); lower --level "
         "or prune more kinds of structure (--what)", total, what, available);
  std::vector<int> removed(n, 0);
  if (uniform) {
    const int per = int(std::llround(double(total) / double(n)));
    for (size_t l = 0; l < n; ++l) {
      if (per > int(score[l].size()) / unit - 1) fail("pruning: uniform {} pruning cannot remove {} blocks per layer", what, per);
      removed[l] = per;
    }
    return removed;
  }
  for (int64_t k = 0; k < total; ++k) {
    size_t best = n;
    double best_cost = 0;
    for (size_t l = 0; l < n; ++l) {
      if (removed[l] + 1 >= int(score[l].size()) / unit) continue;
      double c = 0;
      for (int i = removed[l] * unit; i < (removed[l] + 1) * unit; ++i) c += score[l][size_t(order[l][size_t(i)])];
      if (best == n || c < best_cost) best = l, best_cost = c;
    }
    removed[best]++;
  }
  return removed;
}

// The indices kept after removing the `n_removed` least important, ascending.
std::vector<int> kept(const std::vector<double>& score, int n_removed) {
  std::vector<int> order = ascending(score);
  std::vector<int> keep(order.begin() + n_removed, order.end());
  std::sort(keep.begin(), keep.end());
  return keep;
}

}  // namespace

int prune_multiple(const PruneSource& src, int requested) {
  auto divides = [&](int m) {
    for (int il = 0; il < src.n_layer(); ++il)
      if (src.n_ff(il) % m != 0) return false;
    return true;
  };
  if (requested > 0) {
    if (!divides(requested)) fail("--multiple {} does not divide every layer's FFN width of '{}'", requested, src.path().string());
    return requested;
  }
  int min_ff = src.n_ff(0);
  for (int il = 0; il < src.n_layer(); ++il) min_ff = std::min(min_ff, src.n_ff(il));
  for (int m = 256; m > 1; m /= 2)
    if (divides(m) && min_ff / m >= 8) return m;
  return 1;
}

std::vector<PruneLayerPlan> plan_prune(const PruneSource& src, const PruneScores& scores, const PruneBudget& b) {
  const int n_layer = src.n_layer();
  if (b.drop_layers >= n_layer) fail("pruning: cannot remove {} of {} layers", b.drop_layers, n_layer);
  std::vector<int> layer_order = ascending(scores.influence);
  std::vector<int> layers(layer_order.begin() + b.drop_layers, layer_order.end());
  std::sort(layers.begin(), layers.end());
  std::vector<std::vector<double>> neuron, group;
  for (int il : layers) {
    neuron.push_back(scores.neuron[size_t(il)]);
    group.push_back(scores.group[size_t(il)]);
  }
  const int il0 = layers[0];
  const uint64_t block = uint64_t(b.multiple) * 3 * uint64_t(src.n_embd());
  const uint64_t per = uint64_t(src.n_head(il0) / src.n_head_kv(il0)), hd = uint64_t(src.head_dim());
  const uint64_t group_params = (2 * per * hd + 2 * hd) * uint64_t(src.n_embd());
  const int64_t n_blocks = int64_t(std::llround(double(b.ffn_params) / double(block)));
  const int64_t n_groups = int64_t(std::llround(double(b.head_params) / double(group_params)));
  const std::vector<int> ffn_out = units_removed(neuron, b.multiple, n_blocks, b.uniform, "FFN");
  const std::vector<int> grp_out = units_removed(group, 1, n_groups, b.uniform, "attention (KV group)");
  std::vector<PruneLayerPlan> plan;
  for (size_t i = 0; i < layers.size(); ++i)
    plan.push_back({layers[i], kept(neuron[i], ffn_out[i] * b.multiple), kept(group[i], grp_out[i])});
  return plan;
}

}  // namespace cogumi
