// Patch 0019: the CPU's F32 products with K >= 16 in training graphs from packed panels of src0. Against a
// double-precision reference: attention's shapes (K Q^T with Q read through a permute, V^T P over batched heads),
// LoRA shrinks (16 and 48 rows, K = 256 and 768) and up-projections (K = the rank, 16 or 32), src0 broadcast over
// src1's dims 2 and 3, partial register tiles, column tails of every width 1-5, K not a multiple of 8 (the AVX2
// pack's tail), 1 to 3 threads (bit for bit the same: each output sums its k in order); the counter shows each
// took the path, and that K < 16 (patch 0011's), rows not a multiple of 16 and unmarked products do not. Every
// output is exactly the FMAs of its k in order (checked bit for bit against std::fma in a loop), which is what makes
// the AVX-512 tile and the AVX2 one (session 33) give the same numbers.
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
  int k, m, n;
  int a2 = 1, a3 = 1, b2 = 1, b3 = 1;
  bool permuted = false;   // src1 read through a permute: [k, n, b2, b3] from [k, b2, n, b3]
  bool marked = true;
  int causal = 0;          // patch 0020's mark (1: outputs below the diagonal unused; 2: src1 zero below it)
  bool zero_upper = false; // src1's values (k, j) with k > j set to 0, as P and dS are in a causal graph
};

struct Result {
  double worst = 0;
  int64_t panel_calls = 0, causal_calls = 0;
  std::vector<float> out;
  int64_t not_in_order = 0;  // outputs that differ from std::fma over k in order, bit for bit
};

// How many of d's outputs are not the in-order FMA chain of a's row and b's column (src0 broadcast as ggml does).
int64_t outputs_not_in_fma_order(const ggml_tensor* a, const ggml_tensor* b, const ggml_tensor* d) {
  int64_t bad = 0;
  for (int64_t i3 = 0; i3 < d->ne[3]; ++i3)
    for (int64_t i2 = 0; i2 < d->ne[2]; ++i2)
      for (int64_t j = 0; j < d->ne[1]; ++j)
        for (int64_t i = 0; i < d->ne[0]; ++i) {
          const char* ar = (const char*)a->data + (i3 / (b->ne[3] / a->ne[3])) * a->nb[3] +
                           (i2 / (b->ne[2] / a->ne[2])) * a->nb[2] + i * a->nb[1];
          const char* bc = (const char*)b->data + i3 * b->nb[3] + i2 * b->nb[2] + j * b->nb[1];
          float acc = 0.0f;
          for (int64_t k = 0; k < a->ne[0]; ++k) acc = std::fma(((const float*)ar)[k], ((const float*)bc)[k], acc);
          const float got = *(const float*)((const char*)d->data + i3 * d->nb[3] + i2 * d->nb[2] + j * d->nb[1] +
                                            i * d->nb[0]);
          bad += std::memcmp(&acc, &got, sizeof(float)) != 0;
        }
  return bad;
}

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
  if (c.zero_upper)  // b contiguous here: element (k, j) of matrix q at [q * n + j] * k_len + k
    for (int64_t q = 0; q < int64_t(c.b2) * c.b3; ++q)
      for (int64_t j = 0; j < c.n; ++j)
        for (int64_t k = j + 1; k < c.k; ++k) ((float*)b->data)[(q * c.n + j) * c.k + k] = 0.0f;
  ggml_tensor* d = ggml_mul_mat(ctx, a, b);
  if (c.marked) ggml_cogumi_mul_mat_allow_small_k(d);
  if (c.causal) ggml_cogumi_mul_mat_set_causal(d, c.causal);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_f32_panel_mul_mats(), causal_before = ggml_cogumi_causal_mul_mats();
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  Result r;
  r.panel_calls = ggml_cogumi_f32_panel_mul_mats() - before;
  r.causal_calls = ggml_cogumi_causal_mul_mats() - causal_before;
  r.out.assign((const float*)d->data, (const float*)d->data + ggml_nelements(d));
  r.worst = test::mul_mat_worst_error(a, b, d);
  r.not_in_order = outputs_not_in_fma_order(a, b, d);
  ggml_free(ctx);
  return r;
}

TEST(F32PanelMulMat, TrainingShapesMatchTheDoubleReferenceOnAnyThreadCount) {
  const bool kPanels = ggml_cogumi_f32_panel_available();
  if (!kPanels) std::fprintf(stderr, "note: this build has neither AVX-512 nor AVX2+FMA: the products keep ggml's kernels\n");
  const std::vector<Case> cases = {
      {64, 128, 128, 1, 1, 4, 2, true},   // attention's K Q^T: head size 64, 4 heads x 2 sequences, Q permuted
      {128, 64, 128, 4, 2, 4, 2},         // V^T P: K = the sequence
      {256, 16, 100},                     // a LoRA shrink A x: one panel, a column tail past 96
      {768, 48, 40},                      // the q/k/v group's shrink at K = 768: three panels (a partial tile)
      {48, 80, 17, 1, 1, 3, 1},           // the shortest K, 80 = 64 + 16 rows, src0 broadcast over dim 2
      {100, 32, 16, 2, 1, 4, 3, true},    // broadcast over dims 2 and 3, permuted, the fewest columns
      {16, 768, 200},                     // a rank-16 LoRA's B (A x) (session 34): the shortest K, tail 8 = 6 + 2
      {32, 256, 99},                      // the k/v group's up-projection at rank 16 x 2; tail 3
      {20, 48, 101, 1, 1, 2, 1},          // K = 20: the AVX2 pack's 8 x 8 blocks and a 4-wide tail; column tail 5
      {47, 16, 97},                       // K = 47, a one-column tail
  };
  unsigned seed = 11;
  for (const Case& c : cases) {
    std::vector<float> first;
    for (int threads : {1, 2, 3}) {
      const Result r = run(c, threads, seed);
      EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m << " n " << c.n << " threads " << threads;
      EXPECT_EQ(r.panel_calls, kPanels ? 1 : 0) << "k " << c.k << " m " << c.m << " n " << c.n;
      if (kPanels) {
        EXPECT_EQ(r.not_in_order, 0) << "k " << c.k << " m " << c.m << " n " << c.n << " threads " << threads;
      }
      if (first.empty()) {
        first = r.out;
      } else if (kPanels) {
        EXPECT_EQ(std::memcmp(first.data(), r.out.data(), first.size() * sizeof(float)), 0)
            << "k " << c.k << " m " << c.m << ": " << threads << " threads changed the sums";
      }
    }
    ++seed;
  }
}

// Patch 0020: attention's products in a causal graph. Mode 1 (K Q^T, dP: outputs (i, j) with i > j are unused) must
// give the unmarked product's bits on and above the diagonal; mode 2 (P V, dS K: src1 zero below the diagonal) must
// give its bits everywhere. Sequence lengths 128 and 112 (a partial 64-row tile, a 4-column tail), permuted and
// batched operands, 1 to 3 threads. A mode-2 mark on a src1 that is not zero below the diagonal changes outputs: the
// skipping happens.
TEST(F32PanelMulMat, CausalMarksKeepTheBitsOfEveryOutputThatIsUsed) {
  if (!ggml_cogumi_f32_panel_available()) GTEST_SKIP() << "no panels in this build: the marks have no path to take";
  struct Shape {
    Case c;
    int mode;
  };
  const std::vector<Shape> shapes = {
      {{64, 128, 128, 1, 1, 4, 2, true}, 1},          // K Q^T: rows = keys, columns = queries, Q permuted
      {{64, 112, 112, 1, 1, 2, 3, true}, 1},          // a 112-long sequence
      {{128, 64, 128, 4, 2, 4, 2}, 2},                // P V: K = the keys, src1 = P
      {{112, 64, 112, 2, 3, 2, 3}, 2},                // 112 long
  };
  unsigned seed = 101;
  for (const Shape& s : shapes) {
    Case plain = s.c, causal = s.c;
    plain.zero_upper = causal.zero_upper = s.mode == 2;
    causal.causal = s.mode;
    for (int threads : {1, 2, 3}) {
      const Result want = run(plain, threads, seed), got = run(causal, threads, seed);
      EXPECT_EQ(got.causal_calls, 1);
      EXPECT_EQ(want.causal_calls, 0);
      const int64_t rows = s.c.m, cols = s.c.n, mats = int64_t(s.c.b2) * s.c.b3;
      int64_t differ = 0, zeros = 0;
      for (int64_t q = 0; q < mats; ++q)
        for (int64_t j = 0; j < cols; ++j)
          for (int64_t i = 0; i < rows; ++i) {
            const size_t at = size_t((q * cols + j) * rows + i);
            if (s.mode == 1 && i > j) {
              zeros += got.out[at] == 0.0f;
              continue;
            }
            differ += std::memcmp(&want.out[at], &got.out[at], sizeof(float)) != 0;
          }
      EXPECT_EQ(differ, 0) << "k " << s.c.k << " m " << rows << " mode " << s.mode << " threads " << threads;
      if (s.mode == 1) {
        EXPECT_GT(zeros, rows * cols * mats / 4) << "mode 1 skipped no tile";
      }
    }
    ++seed;
  }
  Case wrong{128, 64, 128, 4, 2, 4, 2};
  wrong.causal = 2;  // src1 not zero below the diagonal: the terms the mark leaves out are not zeros
  const Result a = run(Case{128, 64, 128, 4, 2, 4, 2}, 2, 7), b = run(wrong, 2, 7);
  EXPECT_NE(std::memcmp(a.out.data(), b.out.data(), a.out.size() * sizeof(float)), 0);
}

TEST(F32PanelMulMat, EveryX86CpuWithAvx2AndFmaHasThePath) {
  // llama.cpp is built for the machine it runs on (GGML_NATIVE): a CPU with AVX2 and FMA (and no AVX-512) took
  // tinyBLAS before session 33, at ~55% of its F32 peak on a LoRA step's base products.
#if defined(__x86_64__)
  const bool cpu = __builtin_cpu_supports("avx512f") || (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  EXPECT_EQ(ggml_cogumi_f32_panel_available(), cpu);
#else
  GTEST_SKIP() << "not an x86-64 build: the panels are x86 code";
#endif
}

TEST(F32PanelMulMat, OtherShapesAndUnmarkedProductsKeepTheirKernels) {
  Case unmarked{256, 64, 40};
  unmarked.marked = false;
  for (const Case& c : std::vector<Case>{{15, 64, 40}, {8, 64, 40}, {256, 24, 40}, {256, 64, 15}, unmarked}) {
    const Result r = run(c, 2, 5);
    EXPECT_LT(r.worst, 1e-5) << "k " << c.k << " m " << c.m << " n " << c.n;
    EXPECT_EQ(r.panel_calls, 0) << "k " << c.k << " m " << c.m << " n " << c.n;
  }
}

}  // namespace
}  // namespace cogumi
