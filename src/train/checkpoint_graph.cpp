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
    c->flags = t->flags & ~kKeptFlags;
    for (int j = 0; j < GGML_MAX_SRC; ++j) c->src[j] = (*this)(t->src[j]);
    // A view reads its root's memory: the root is recomputed (or kept) with it.
    if (t->view_src) {
      c->view_src = (*this)(t->view_src);
      c->view_offs = t->view_offs;
    }
    ggml_format_name(c, "%s (recomputed)", t->name);
    copies_[t] = c;
    return c;
  }

  int count() const { return int(copies_.size()); }

 private:
  ggml_context* ctx_;
  std::unordered_set<ggml_tensor*> recomputable_;
  std::unordered_map<ggml_tensor*, ggml_tensor*> copies_;
};

}  // namespace

CheckpointedGraph build_checkpointed_backward(ggml_context* ctx, ggml_cgraph* gf, ggml_cgraph* gb,
                                              const std::vector<ggml_tensor*>& checkpoints, size_t graph_size) {
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
  if (size_t(n_all) + size_t(out.n_recomputed) > graph_size)
    fail("internal: the checkpointed training graph has {} nodes, over the graph size {}", n_all + out.n_recomputed,
         graph_size);
  out.graph = ggml_new_graph_custom(ctx, graph_size, false);
  // Forward nodes in their order; then each gradient node, which expansion places after the
  // recomputed tensors it reads that no earlier node needed, i.e. just before their first use.
  for (int i = 0; i < n_all; ++i) ggml_build_forward_expand(out.graph, ggml_graph_node(gb, i));
  return out;
}

}  // namespace cogumi
