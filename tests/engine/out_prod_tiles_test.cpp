// Patch 0012: the CPU's F32 outer-product sums (GGML_OP_OUT_PROD: a LoRA weight's gradient, attention's K and V
// gradients) as register tiles. Against a double-precision reference: a LoRA's A and B shapes, edges that leave
// partial tiles in both dimensions, rows with padding (views), batched planes, 1 to 3 threads; the path's counter
// shows each case took it, and that broadcasting and too-narrow products keep ggml's loop (still correct).
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
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

}  // namespace
}  // namespace cogumi
