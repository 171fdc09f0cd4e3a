// Test helper: the trainer's forward graph (ModelGraph::build_logits) computed on its own, for the
// tests that compare it with llama.cpp (model_graph_test) and with the trainer's loss
// (train_step_test).
#pragma once

#include <ggml-alloc.h>
#include <ggml-backend.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "train/model_graph.h"

namespace cogumi::test {

// Logits [S * T][n_vocab] of S rows of T tokens: the causal path (mask == nullptr, pos 0..T-1) or
// the masked path used for packed rows (pos per token, mask [S][T][T]).
inline std::vector<float> graph_logits(ModelGraph& mg, ggml_backend_t be, int T, int S, const int32_t* toks,
                                       const int32_t* pos_data, const float* mask_data) {
  ggml_init_params ip{ggml_tensor_overhead() * 16384 + ggml_graph_overhead_custom(16384, false), nullptr, true};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* tokens = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, T, S);
  ggml_tensor* pos = ggml_new_tensor_1d(ctx, GGML_TYPE_I32, mask_data ? int64_t(T) * S : T);
  ggml_tensor* mask = mask_data ? ggml_new_tensor_4d(ctx, GGML_TYPE_F32, T, T, 1, S) : nullptr;
  for (auto* t : {tokens, pos, mask})
    if (t) ggml_set_input(t);
  ggml_tensor* logits = mg.build_logits(ctx, tokens, pos, mask);
  ggml_set_output(logits);
  ggml_cgraph* gf = ggml_new_graph_custom(ctx, 16384, false);
  ggml_build_forward_expand(gf, logits);
  ggml_gallocr_t alloc = ggml_gallocr_new(ggml_backend_get_default_buffer_type(be));
  EXPECT_TRUE(ggml_gallocr_alloc_graph(alloc, gf));
  ggml_backend_tensor_set(tokens, toks, 0, ggml_nbytes(tokens));
  ggml_backend_tensor_set(pos, pos_data, 0, ggml_nbytes(pos));
  if (mask) ggml_backend_tensor_set(mask, mask_data, 0, ggml_nbytes(mask));
  ggml_backend_graph_compute(be, gf);
  std::vector<float> out(ggml_nelements(logits));
  ggml_backend_tensor_get(logits, out.data(), 0, ggml_nbytes(logits));
  ggml_gallocr_free(alloc);
  ggml_free(ctx);
  return out;
}

}  // namespace cogumi::test
