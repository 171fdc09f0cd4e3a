// Patch 0011: the CPU's F32 matrix products with a short inner dimension (a LoRA rank; attention's head size
// with a permuted operand) are sums of scaled rows. Against a double-precision reference: ranks 1 to 32,
// row counts that leave a partial block, strided and permuted right-hand sides, broadcasting over dims 2
// and 3, 1 to 3 threads; the path's counter shows each case took it, and that longer inner dimensions and
// unmarked products (inference's) do not. Since session 34, a build with patch 0019's F32 panels (AVX-512, or AVX2
// with FMA) takes K >= 16 with rows a multiple of 16 and 16 or more columns there instead (its counter shows it).
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include "engine/mul_mat_reference.h"

#include <cmath>
#include <random>
#include <vector>

namespace cogumi {
namespace {

struct Case {
  int k, m, n;              // inner dimension, rows of src0 (dst's first dimension), columns
  int a2 = 1, a3 = 1;       // src0's dims 2 and 3 (broadcast to src1's)
  int b2 = 1, b3 = 1;       // src1's dims 2 and 3
  bool permuted = false;    // src1 a permuted view (not contiguous): [k, n, b2, b3] read from [k, b2, n, b3]
  bool allowed = true;      // marked by ggml_cogumi_mul_mat_allow_small_k (as the trainer marks its graphs)
};

struct Result {
  double worst = 0;         // largest |error| relative to the row's magnitude
  int64_t small_k_calls = 0;
  int64_t panel_calls = 0;  // patch 0019's
};

Result run(const Case& c, int threads, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ggml_init_params ip{size_t(256) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_4d(ctx, GGML_TYPE_F32, c.k, c.m, c.a2, c.a3);
  ggml_tensor* b = c.permuted ? ggml_permute(ctx, ggml_new_tensor_4d(ctx, GGML_TYPE_F32, c.k, c.b2, c.n, c.b3), 0, 2, 1, 3)
                              : ggml_new_tensor_4d(ctx, GGML_TYPE_F32, c.k, c.n, c.b2, c.b3);
  ggml_tensor* bsrc = b->view_src ? b->view_src : b;
  for (int64_t i = 0; i < ggml_nelements(a); ++i) ((float*)a->data)[i] = nd(rng);
  for (int64_t i = 0; i < ggml_nelements(bsrc); ++i) ((float*)bsrc->data)[i] = nd(rng);
  ggml_tensor* d = ggml_mul_mat(ctx, a, b);
  if (c.allowed) ggml_cogumi_mul_mat_allow_small_k(d);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_small_k_mul_mats(), panels_before = ggml_cogumi_f32_panel_mul_mats();
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  Result r;
  r.small_k_calls = ggml_cogumi_small_k_mul_mats() - before;
  r.panel_calls = ggml_cogumi_f32_panel_mul_mats() - panels_before;
  r.worst = test::mul_mat_worst_error(a, b, d);
  ggml_free(ctx);
  return r;
}

TEST(SmallKMulMat, ShortInnerDimensionsMatchTheDoubleReference) {
  const std::vector<Case> cases = {
      {16, 768, 40},                           // a LoRA's B x: rank 16, a whole number of row blocks
      {16, 256, 33},                           // q/k/v/o's B x, an odd column count
      {1, 70, 9},                              // rank 1, a partial row block (70 = 64 + 6)
      {5, 16, 7},                              // the fewest rows the path takes
      {32, 100, 65},                           // the longest contiguous K; 100 = 64 + 36
      {24, 130, 17, 2, 1, 4, 3},               // broadcasting src0 over dims 2 and 3
      {40, 128, 20, 4, 2, 4, 2, true},         // attention's shape, permuted src1 (patch 0019's panels on a build
                                               // that has them, K = 64 too)
      {48, 70, 12, 1, 1, 3, 1, true},          // permuted, partial row block
      {16, 760, 40},                           // rank 16, rows not a multiple of 16: this path on any build
  };
  unsigned seed = 1;
  for (const Case& c : cases)
    for (int threads : {1, 2, 3}) {
      const Result r = run(c, threads, seed++);
      EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m << " n " << c.n << " threads " << threads;
      const bool panels = ggml_cogumi_f32_panel_available() && c.k >= 16 && c.m % 16 == 0 && c.n >= 16;
      EXPECT_EQ(r.small_k_calls, panels ? 0 : 1) << "k " << c.k << " m " << c.m << ": the patch's path must have run";
      EXPECT_EQ(r.panel_calls, panels ? 1 : 0) << "k " << c.k << " m " << c.m << ": patch 0019's panels";
    }
}

TEST(SmallKMulMat, OtherShapesKeepTheirKernels) {
  // K past the limits (33 contiguous, 65 permuted), too few rows, or a product not marked: ggml's own kernels (rows
  // not a multiple of 16 or fewer than 16 columns, so that patch 0019's panels do not take them either).
  Case unmarked{16, 768, 40};
  unmarked.allowed = false;
  for (const Case& c : std::vector<Case>{{33, 60, 16}, {65, 64, 8, 1, 1, 2, 1, true}, {16, 15, 30}, unmarked}) {
    const Result r = run(c, 2, 99);
    EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m;
    EXPECT_EQ(r.small_k_calls, 0) << "k " << c.k << " m " << c.m;
  }
}

}  // namespace
}  // namespace cogumi
