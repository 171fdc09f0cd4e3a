// Patch 0012: the CPU's F32 outer-product sums (GGML_OP_OUT_PROD: a LoRA weight's gradient, attention's K and V
// gradients) as register tiles. Against a double-precision reference: a LoRA's A and B shapes, edges that leave
// partial tiles in both dimensions, rows with padding (views), batched planes, 1 to 3 threads; the path's counter
// shows each case took it, and that broadcasting and too-narrow products keep ggml's loop (still correct).
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace cogumi {
namespace {

struct Case {
  int n, m, p;            // dst [n, m] = sum over p of a[:, p] b[:, p]^T
  int planes = 1;         // dims 2 of a, b and dst (no broadcasting)
  int pad = 0;            // extra floats per row of a and b (they are views of wider tensors)
  int a_planes = 0;       // a's dim 2 when it differs (broadcast): ggml's loop
};

struct Result {
  double worst = 0;       // largest |error| relative to the element's sum of |products|
  int64_t tiled = 0;      // nodes that took the tiles
};

Result run(const Case& c, int threads, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ggml_init_params ip{size_t(256) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  const int ap = c.a_planes ? c.a_planes : c.planes;
  ggml_tensor* wa = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.n + c.pad, c.p, ap);
  ggml_tensor* wb = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, c.m + c.pad, c.p, c.planes);
  for (ggml_tensor* t : {wa, wb})
    for (int64_t i = 0; i < ggml_nelements(t); ++i) ((float*)t->data)[i] = nd(rng);
  ggml_tensor* a = c.pad ? ggml_view_3d(ctx, wa, c.n, c.p, ap, wa->nb[1], wa->nb[2], 0) : wa;
  ggml_tensor* b = c.pad ? ggml_view_3d(ctx, wb, c.m, c.p, c.planes, wb->nb[1], wb->nb[2], 0) : wb;
  ggml_tensor* d = ggml_out_prod(ctx, a, b);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_out_prod_tiles();
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  Result r;
  r.tiled = ggml_cogumi_out_prod_tiles() - before;
  auto at = [](const ggml_tensor* t, int64_t i0, int64_t i1, int64_t i2) {
    return double(*(const float*)((const char*)t->data + i0 * t->nb[0] + i1 * t->nb[1] + i2 * t->nb[2]));
  };
  for (int64_t k = 0; k < c.planes; ++k)
    for (int64_t j = 0; j < c.m; ++j)
      for (int64_t i = 0; i < c.n; ++i) {
        double want = 0, mag = 0;
        for (int64_t q = 0; q < c.p; ++q) {
          const double v = at(a, i, q, k / (c.planes / ap)) * at(b, j, q, k);  // ggml: dst plane k reads a plane k / (planes / ap)
          want += v, mag += std::fabs(v);
        }
        r.worst = std::max(r.worst, std::fabs(at(d, i, j, k) - want) / std::max(mag, 1e-30));
      }
  ggml_free(ctx);
  return r;
}

TEST(OutProdTiles, OuterProductSumsMatchTheDoubleReference) {
  const std::vector<Case> cases = {
      {16, 768, 300},         // a LoRA's B gradient: rank 16 x 768 outputs
      {768, 16, 300},         // a LoRA's A gradient (the FFN's down): 768 inputs x rank 16
      {256, 48, 257},         // a q/k/v group's A (rank 48); p past one chunk of 128 by one
      {40, 21, 33},           // edges in both dimensions (40 = 32 + 8, 21 = 16 + 5)
      {16, 3, 50},            // fewer columns than a tile: one-column tiles
      {24, 20, 40},           // one vector by 16 columns (AVX-512), with edges
      {17, 9, 20},            // an edge of one row
      {64, 128, 128, 6},      // attention's K gradient: head size x keys, per (head, sequence) plane
      {48, 30, 70, 3, 5},     // padded rows (views), planes, edges
  };
  unsigned seed = 1;
  for (const Case& c : cases)
    for (int threads : {1, 2, 3}) {
      const Result r = run(c, threads, seed++);
      EXPECT_LT(r.worst, 1e-5) << "n " << c.n << " m " << c.m << " p " << c.p << " threads " << threads;
      EXPECT_EQ(r.tiled, 1) << "n " << c.n << " m " << c.m << ": the patch's path must have run";
    }
}

TEST(OutProdTiles, BroadcastingAndNarrowRowsKeepGgmlsLoop) {
  // dst rows shorter than one vector, or a broadcast over dim 2: ggml's loop, with the same results.
  for (const Case& c : std::vector<Case>{{3, 40, 30}, {32, 16, 40, 4, 0, 2}}) {
    const Result r = run(c, 2, 7);
    EXPECT_LT(r.worst, 1e-5) << "n " << c.n << " m " << c.m;
    EXPECT_EQ(r.tiled, 0) << "n " << c.n << " m " << c.m;
  }
}

// Patch 0020: attention's out_prods in a causal graph, dV's (mode 1: a = P, zero at (key i, query p) with i > p) and
// dK's (mode 2: b = dS, zero at (key j, query p) with j > p), each output summing only the queries it needs. With the
// zeros in place the outputs must be the unmarked product's bit for bit: lengths 128 and 100 (chunks, edges), 4
// planes, 1 to 3 threads; a mark on operands that are not zero there changes them (the skipping happens).
// `zeros`: which operand holds attention's zeros (1: a, 2: b, 0: neither); `mode`: the mark (0: none).
std::vector<float> causal_out_prod(int n, int m, int p, int planes, int mode, int zeros, int threads, unsigned seed,
                                   int64_t* marked) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  ggml_init_params ip{size_t(64) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  ggml_tensor* a = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, n, p, planes);
  ggml_tensor* b = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, m, p, planes);
  for (ggml_tensor* t : {a, b})
    for (int64_t i = 0; i < ggml_nelements(t); ++i) ((float*)t->data)[i] = nd(rng);
  ggml_tensor* z = zeros == 1 ? a : b;  // the operand with zeros: element (row r, p) with r > p
  if (zeros)
    for (int64_t k = 0; k < planes; ++k)
      for (int64_t q = 0; q < p; ++q)
        for (int64_t r = q + 1; r < z->ne[0]; ++r) ((float*)z->data)[(k * p + q) * z->ne[0] + r] = 0.0f;
  ggml_tensor* d = ggml_out_prod(ctx, a, b);
  if (mode) ggml_cogumi_out_prod_set_causal(d, mode);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, d);
  const int64_t before = ggml_cogumi_causal_out_prods();
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  *marked = ggml_cogumi_causal_out_prods() - before;
  std::vector<float> out((const float*)d->data, (const float*)d->data + ggml_nelements(d));
  ggml_free(ctx);
  return out;
}

TEST(OutProdTiles, CausalMarksKeepEveryOutputsBits) {
  struct Shape {
    int n, m, p, mode;
  };
  for (const Shape& s : std::vector<Shape>{{128, 64, 128, 1},    // dV^T: keys x head size, over the queries
                                           {64, 128, 128, 2},    // dK: head size x keys
                                           {100, 40, 100, 1},    // a 100-long sequence: edges
                                           {40, 100, 100, 2}}) {
    for (int threads : {1, 2, 3}) {
      int64_t marked = 0, unmarked = 0;
      const auto want = causal_out_prod(s.n, s.m, s.p, 4, 0, s.mode, threads, 5, &unmarked);
      const auto got = causal_out_prod(s.n, s.m, s.p, 4, s.mode, s.mode, threads, 5, &marked);
      EXPECT_EQ(unmarked, 0);
      EXPECT_EQ(marked, 1) << "n " << s.n << " m " << s.m << ": the tiles' path must have run";
      ASSERT_EQ(want.size(), got.size());
      EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
          << "n " << s.n << " m " << s.m << " mode " << s.mode << " threads " << threads;
    }
  }
  int64_t marked = 0;
  const auto plain = causal_out_prod(128, 64, 128, 4, 0, 0, 2, 9, &marked);
  const auto skipped = causal_out_prod(128, 64, 128, 4, 1, 0, 2, 9, &marked);
  EXPECT_NE(std::memcmp(plain.data(), skipped.data(), plain.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace cogumi
