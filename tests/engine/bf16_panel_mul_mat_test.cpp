// Patch 0017: the CPU multiplies a BF16 weight (a LoRA training graph's base held as BF16) by F32 activations from
// packed panels of the weight. Against a double-precision reference over the BF16-rounded operands: whole and
// partial register tiles (64 rows, 6 columns), the fewest rows and columns the path takes, an even K that is not a
// multiple of 32, 3-D activations, 1 to 3 threads (bit for bit the same result: each output sums its K-pairs in
// order); the path's counter shows each case took it, and that other shapes and unmarked products (inference's)
// keep tinyBLAS. On a build without AVX512-BF16 no product takes it, and the sums must still be right.
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include "engine/mul_mat_reference.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace cogumi {
namespace {

struct Case {
  int k, m, n;           // inner dimension, rows of the weight (dst's first dimension), columns
  int b2 = 1;            // the activations' dim 2
  int a2 = 1;            // the weight's dim 2 (broadcast: not the path's)
  bool marked = true;    // marked by ggml_cogumi_mul_mat_allow_small_k, as the trainer marks its graphs
};

struct Result {
  double worst = 0;      // largest |error| relative to the output's sum of |products|
  int64_t panel_calls = 0;
  std::vector<float> out;
};

Result run(const Case& c, int threads, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ggml_init_params ip{size_t(256) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* w = ggml_new_tensor_3d(ctx, GGML_TYPE_BF16, c.k, c.m, c.a2);
  ggml_tensor* x = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.k, c.n, c.b2);
  for (int64_t i = 0; i < ggml_nelements(w); ++i) ((ggml_bf16_t*)w->data)[i] = ggml_fp32_to_bf16(0.1f * nd(rng));
  for (int64_t i = 0; i < ggml_nelements(x); ++i) ((float*)x->data)[i] = nd(rng);
  ggml_tensor* d = ggml_mul_mat(ctx, w, x);
  if (c.marked) ggml_cogumi_mul_mat_allow_small_k(d);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_bf16_panel_mul_mats();
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  Result r;
  r.panel_calls = ggml_cogumi_bf16_panel_mul_mats() - before;
  r.out.assign((const float*)d->data, (const float*)d->data + ggml_nelements(d));
  r.worst = test::mul_mat_worst_error(w, x, d, /*b_as_bf16=*/true);  // the product reads x as BF16
  ggml_free(ctx);
  return r;
}

TEST(Bf16PanelMulMat, TrainingShapesMatchTheDoubleReferenceOnAnyThreadCount) {
  const bool available = ggml_cogumi_bf16_panel_available();
  if (!available) std::fprintf(stderr, "note: this build has no AVX512-BF16: the products keep tinyBLAS\n");
  const std::vector<Case> cases = {
      {256, 768, 40},        // gate/up: whole 64-row tiles, 6 full column tiles and 4 left over
      {768, 256, 97},        // down: K = 768, a task boundary at 96 columns and one column past it
      {256, 2368, 20},       // the output head: 37 row tiles, the last whole
      {258, 80, 17},         // K not a multiple of 32; 80 = 64 + one panel
      {96, 48, 16, 1},       // three panels (a partial tile), the fewest columns
      {2, 16, 16},           // the smallest K and rows
      {64, 112, 30, 3},      // 3-D activations against one weight; 112 = 64 + 48
  };
  unsigned seed = 1;
  for (const Case& c : cases) {
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      const Result r = run(c, threads, seed);
      EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m << " n " << c.n << " threads " << threads;
      EXPECT_EQ(r.panel_calls, available ? 1 : 0) << "k " << c.k << " m " << c.m << " n " << c.n;
      if (first.empty()) {
        first = r.out;
      } else if (available) {
        EXPECT_EQ(std::memcmp(first.data(), r.out.data(), first.size() * sizeof(float)), 0)
            << "k " << c.k << " m " << c.m << ": " << threads << " threads changed the sums";
      }
    }
    ++seed;
  }
}

TEST(Bf16PanelMulMat, OtherShapesAndUnmarkedProductsKeepTinyBlas) {
  // rows not a multiple of 16, an odd K, fewer than 16 columns, a weight with its own dim 2, or a product not
  // marked (inference): ggml's kernels, still right.
  Case unmarked{256, 768, 40};
  unmarked.marked = false;
  for (const Case& c : std::vector<Case>{{256, 24, 32}, {17, 64, 32}, {256, 64, 15}, {64, 32, 20, 2, 2}, unmarked}) {
    const Result r = run(c, 2, 99);
    EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m << " n " << c.n;
    EXPECT_EQ(r.panel_calls, 0) << "k " << c.k << " m " << c.m << " n " << c.n;
  }
}

TEST(Bf16PanelMulMat, AWeightViewAtAnOddElementKeepsTinyBlas) {
  // The panels read a row's BF16 values in pairs as 32-bit words: a view starting one element into its tensor
  // (rows still 4-byte apart) must not take them, and its product must still be right.
  const int k = 256, m = 64, n = 32;
  ggml_init_params ip{size_t(64) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* whole = ggml_new_tensor_2d(ctx, GGML_TYPE_BF16, k + 2, m);
  ggml_tensor* w = ggml_view_2d(ctx, whole, k, m, whole->nb[1], sizeof(ggml_bf16_t));
  ggml_tensor* x = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, k, n);
  for (int64_t i = 0; i < ggml_nelements(whole); ++i) ((ggml_bf16_t*)whole->data)[i] = ggml_fp32_to_bf16(0.01f * float(i % 89) - 0.4f);
  for (int64_t i = 0; i < ggml_nelements(x); ++i) ((float*)x->data)[i] = 0.02f * float(i % 83) - 0.8f;
  ggml_tensor* d = ggml_mul_mat(ctx, w, x);
  ggml_cogumi_mul_mat_allow_small_k(d);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_bf16_panel_mul_mats();
  ASSERT_EQ(ggml_graph_compute_with_ctx(ctx, g, 2), GGML_STATUS_SUCCESS);
  EXPECT_EQ(ggml_cogumi_bf16_panel_mul_mats() - before, 0);
  const double worst = test::mul_mat_worst_error(w, x, d, /*b_as_bf16=*/true);
  EXPECT_LT(worst, 1e-5);
  ggml_free(ctx);
}

}  // namespace
}  // namespace cogumi
