#include "train/checkpoint_graph.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace cogumi {

namespace {

constexpr int32_t kKeptFlags =
    GGML_TENSOR_FLAG_PARAM | GGML_TENSOR_FLAG_INPUT | GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_LOSS;

// Recomputed copies of forward tensors, one per original (shared by every gradient node that reads it).
class Recompute {
 public:
  Recompute(ggml_context* ctx, ggml_cgraph* gf, const std::vector<ggml_tensor*>& checkpoints) : ctx_(ctx) {
    const std::unordered_set<ggml_tensor*> keep(checkpoints.begin(), checkpoints.end());
    for (int i = 0; i < ggml_graph_n_nodes(gf); ++i) {
      ggml_tensor* t = ggml_graph_node(gf, i);
      if (t->op != GGML_OP_NONE && !(t->flags & kKeptFlags) && !keep.count(t)) recomputable_.insert(t);
    }
  }

  // `t` itself when the backward pass may read it as it is, else its recomputed copy.
  ggml_tensor* operator()(ggml_tensor* t) {
    if (!t || !recomputable_.count(t)) return t;
    auto it = copies_.find(t);
    if (it != copies_.end()) return it->second;
    ggml_tensor* c = ggml_new_tensor(ctx_, t->type, GGML_MAX_DIMS, t->ne);
    std::copy(std::begin(t->nb), std::end(t->nb), std::begin(c->nb));
    c->op = t->op;
    std::memcpy(c->op_params, t->op_params, sizeof t->op_params);
    // A non-view op writing into another tensor (ggml_cpy into a kept tensor, an in-place op) would write
    // there a second time when recomputed: not something a model graph marks, so refused.
    if (t->view_src && t->op != GGML_OP_VIEW && t->op != GGML_OP_RESHAPE && t->op != GGML_OP_PERMUTE &&
        t->op != GGML_OP_TRANSPOSE)
      fail("internal: '{}' ({}) writes into another tensor and cannot be recomputed", t->name, ggml_op_desc(t));
    c->flags = t->flags & ~kKeptFlags;
    copies_[t] = c;  // before the sources: ggml_cast's CPY names itself as its destination (src[1])
    for (int j = 0; j < GGML_MAX_SRC; ++j) c->src[j] = (*this)(t->src[j]);
    // A view reads its root's memory: the root is recomputed (or kept) with it.
    if (t->view_src) {
      c->view_src = (*this)(t->view_src);
      c->view_offs = t->view_offs;
    }
    ggml_format_name(c, "%s (recomputed)", t->name);
    return c;
  }

  int count() const { return int(copies_.size()); }

 private:
  ggml_context* ctx_;
  std::unordered_set<ggml_tensor*> recomputable_;
  std::unordered_map<ggml_tensor*, ggml_tensor*> copies_;
};

}  // namespace

namespace {

// The nodes of `g` (in order) that a needed node reads, after the replacements: every node past
// the forward part (gradients and recomputations), outputs, and what they read.
std::vector<bool> needed_nodes(ggml_cgraph* g, const std::unordered_set<ggml_tensor*>& fwd) {
  const int n = ggml_graph_n_nodes(g);
  std::unordered_map<ggml_tensor*, int> index;
  for (int i = 0; i < n; ++i) index[ggml_graph_node(g, i)] = i;
  std::vector<bool> need(size_t(n), false);
  for (int i = n - 1; i >= 0; --i) {
    ggml_tensor* t = ggml_graph_node(g, i);
    if (!fwd.count(t) || (t->flags & (GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_LOSS))) need[size_t(i)] = true;
    if (!need[size_t(i)]) continue;
    auto mark = [&](ggml_tensor* s) {
      auto it = s ? index.find(s) : index.end();
      if (it != index.end()) need[size_t(it->second)] = true;
    };
    for (int j = 0; j < GGML_MAX_SRC; ++j) mark(t->src[j]);
    mark(t->view_src);
  }
  return need;
}

}  // namespace

CheckpointedGraph build_checkpointed_backward(ggml_context* ctx, ggml_cgraph* gf, ggml_cgraph* gb,
                                              const std::vector<ggml_tensor*>& checkpoints, size_t graph_size,
                                              const std::vector<GraphReplacement>& replacements) {
  const int n_fwd = ggml_graph_n_nodes(gf), n_all = ggml_graph_n_nodes(gb);
  if (n_all < n_fwd || (n_fwd > 0 && ggml_graph_node(gb, n_fwd - 1) != ggml_graph_node(gf, n_fwd - 1)))
    fail("internal: the backward graph does not start with the forward graph's nodes");
  Recompute recompute(ctx, gf, checkpoints);
  for (int i = n_fwd; i < n_all; ++i) {
    ggml_tensor* n = ggml_graph_node(gb, i);
    for (int j = 0; j < GGML_MAX_SRC; ++j) n->src[j] = recompute(n->src[j]);
    n->view_src = recompute(n->view_src);
  }
  CheckpointedGraph out;
  out.n_recomputed = recompute.count();
  // A replacement brings a few nodes of its own (flash attention: the F16 casts of K, V and the mask).
  const size_t n_new = size_t(n_all) + size_t(out.n_recomputed) + 8 * replacements.size();
  if (n_new > graph_size)
    fail("internal: the checkpointed training graph has about {} nodes, over the graph size {}", n_new, graph_size);
  out.graph = ggml_new_graph_custom(ctx, graph_size, false);
  // Forward nodes in their order; then each gradient node, which expansion places after the
  // recomputed tensors it reads that no earlier node needed, i.e. just before their first use.
  for (int i = 0; i < n_all; ++i) ggml_build_forward_expand(out.graph, ggml_graph_node(gb, i));
  if (replacements.empty()) return out;

  std::unordered_map<ggml_tensor*, ggml_tensor*> with;
  for (const auto& r : replacements) with[r.original] = r.replacement;
  auto swap = [&](ggml_tensor*& s) {
    auto it = s ? with.find(s) : with.end();
    if (it != with.end()) s = it->second;
  };
  ggml_cgraph* all = out.graph;
  for (int i = 0; i < ggml_graph_n_nodes(all); ++i) {
    ggml_tensor* t = ggml_graph_node(all, i);
    for (int j = 0; j < GGML_MAX_SRC; ++j) swap(t->src[j]);
    swap(t->view_src);
  }
  std::unordered_set<ggml_tensor*> fwd;
  for (int i = 0; i < n_fwd; ++i) fwd.insert(ggml_graph_node(gf, i));
  const std::vector<bool> need = needed_nodes(all, fwd);
  // The replacements (and what only they read) join just before their first reader.
  out.graph = ggml_new_graph_custom(ctx, graph_size, false);
  for (int i = 0; i < ggml_graph_n_nodes(all); ++i)
    if (need[size_t(i)]) ggml_build_forward_expand(out.graph, ggml_graph_node(all, i));
  // The forward graph: what the outputs read, in the order the full graph computes it. The two
  // share these nodes, which keep the addresses of the first graph allocated (the full one, see
  // TrainGraph::compute): a different order (a fresh expansion from the loss visits flash
  // attention's Q before its K) would read tensors that the full graph's plan has reused.
  std::unordered_set<ggml_tensor*> reads;
  std::vector<ggml_tensor*> todo;
  for (int i = 0; i < n_fwd; ++i) {
    ggml_tensor* t = ggml_graph_node(gf, i);
    if (t->flags & (GGML_TENSOR_FLAG_OUTPUT | GGML_TENSOR_FLAG_LOSS)) todo.push_back(t);
  }
  while (!todo.empty()) {
    ggml_tensor* t = todo.back();
    todo.pop_back();
    if (!t || !reads.insert(t).second) continue;
    for (int j = 0; j < GGML_MAX_SRC; ++j) todo.push_back(t->src[j]);
    todo.push_back(t->view_src);
  }
  out.forward = ggml_new_graph_custom(ctx, graph_size, false);
  for (int i = 0; i < ggml_graph_n_nodes(out.graph); ++i)
    if (reads.count(ggml_graph_node(out.graph, i))) ggml_build_forward_expand(out.forward, ggml_graph_node(out.graph, i));
  return out;
}

}  // namespace cogumi
