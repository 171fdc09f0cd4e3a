// cogumi/train: activation checkpointing on a ggml training graph.
//
// A plain backward graph reads the forward pass's activations, so ggml's graph allocator keeps
// every layer's activations alive from the forward pass until the backward pass is done with them:
// the compute buffer grows with layers x sequence length. With checkpointing only a few tensors
// (each block's input, the "checkpoints") outlive the forward pass; every other forward tensor a
// gradient needs is recomputed from the nearest checkpoint just before the first gradient that
// reads it, so the allocator frees the originals during the forward pass and holds one block's
// recomputed activations at a time in the backward pass. The cost is one more forward pass.
// The recomputed tensors are the same ops on the same inputs in the same order, so the gradients
// are the plain graph's, bit for bit on the CPU (tests/train/checkpoint_graph_test.cpp).
#pragma once

#include <ggml.h>

#include <vector>

namespace cogumi {

struct CheckpointedGraph {
  ggml_cgraph* graph = nullptr;  // the forward nodes in order, then the gradient nodes, each after its recomputations
  int n_recomputed = 0;          // nodes that recompute a forward tensor
  ggml_cgraph* forward = nullptr;  // with replacements: the forward graph through them (else null: `gf` as it was)
};

// A forward tensor and what the step computes in its place: a tensor of the same shape and
// meaning from other forward tensors (flash attention for an attention's output). The gradient
// still flows through the original's ops (their recomputed copies); a backward node that read the
// kept original reads the replacement.
struct GraphReplacement {
  ggml_tensor* original = nullptr;
  ggml_tensor* replacement = nullptr;
};

// `gf`: the forward graph; `gb`: forward + backward, as ggml_build_backward_expand left it on a
// duplicate of `gf` (its first nodes are gf's). `checkpoints`: forward tensors the backward pass
// may read as they are. Parameters, inputs, leafs and outputs (the loss, the kept softmax) are
// read as they are too; every other forward tensor a gradient node reads is replaced there by a
// recomputed copy (ops, parameters, shapes and strides of the original, its own sources recomputed
// the same way down to kept tensors). REQUIRES: `gb`'s gradient nodes are not in any other graph
// that will run (their sources are rewritten). The new graph, of `graph_size` nodes, is made in
// `ctx` and carries no gradient table (ggml_graph_get_grad): ggml's allocator, scheduler and
// backends read only its nodes and leafs.
// `replacements`: every node that read an original reads its replacement instead, in the forward
// pass and in the backward one (forward nodes are shared with `gf`, which must not run again:
// the result's `forward` is its rebuilt version); forward nodes no longer needed are dropped.
CheckpointedGraph build_checkpointed_backward(ggml_context* ctx, ggml_cgraph* gf, ggml_cgraph* gb,
                                              const std::vector<ggml_tensor*>& checkpoints, size_t graph_size,
                                              const std::vector<GraphReplacement>& replacements = {});

}  // namespace cogumi
