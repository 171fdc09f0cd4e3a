// Patch 0018: the CPU's SiLU gradient (GGML_OP_SILU_BACK, every LoRA training step's FFN backward) 16 lanes at a
// time. Against a double-precision dy * s * (1 + x (1 - s)), s = 1 / (1 + e^-x): row lengths that leave every tail
// (1 to 40, and the nano's 768), inputs from -120 to 120 (where e^-x overflows or vanishes), zeros and tiny values,
// 1 to 3 threads. The path has no counter: the old scalar loop passes these too, so what pins the patch is the
// precision bound (ggml_v_expf's 1.5 ulps, a few ulps after the products) and the extremes' exact values.
#include <ggml-cpu.h>
#include <ggml.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace cogumi {
namespace {

double reference(double x, double dy) {
  const double s = 1.0 / (1.0 + std::exp(-x));
  return dy * s * (1.0 + x * (1.0 - s));
}

// dx for rows of n values each; returns the largest error in units of float's epsilon relative to the scale of the
// terms summed.
double worst_ulps(const std::vector<float>& x, const std::vector<float>& dy, int n, int threads, std::vector<float>* out) {
  ggml_init_params ip{size_t(64) << 20, nullptr, false};
  ggml_context* ctx = ggml_init(ip);
  const int rows = int(x.size()) / n;
  ggml_tensor* tx = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, rows);
  ggml_tensor* tdy = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, n, rows);
  std::copy(x.begin(), x.end(), (float*)tx->data);
  std::copy(dy.begin(), dy.end(), (float*)tdy->data);
  ggml_tensor* dx = ggml_silu_back(ctx, tdy, tx);
  ggml_cgraph* g = ggml_new_graph(ctx);
  ggml_build_forward_expand(g, dx);
  EXPECT_EQ(ggml_graph_compute_with_ctx(ctx, g, threads), GGML_STATUS_SUCCESS);
  double worst = 0;
  out->assign((const float*)dx->data, (const float*)dx->data + x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double want = reference(x[i], dy[i]);
    EXPECT_TRUE(std::isfinite((*out)[i])) << "x " << x[i];
    // the scale of the terms summed: |dy| (1 + |x| (1 - s)) <= |dy| (1 + |x|); near x = -2.4, 1 + x (1 - s) cancels
    const double scale = std::fabs(double(dy[i])) * (1.0 + std::min(std::fabs(double(x[i])), 8.0));
    worst = std::max(worst, std::fabs((*out)[i] - want) / (scale * 0x1p-23 + 1e-300));
  }
  ggml_free(ctx);
  return worst;
}

TEST(SiluBack, MatchesTheDoubleReferenceOnEveryTailAndRange) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> wide(-120.0f, 120.0f), narrow(-6.0f, 6.0f);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int n : {1, 7, 8, 15, 16, 17, 31, 33, 40, 768}) {
    const int rows = 5;
    std::vector<float> x(size_t(n) * rows), dy(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      x[i] = (i % 3 == 0) ? wide(rng) : narrow(rng);
      dy[i] = nd(rng);
    }
    if (n >= 8) x[0] = 0.0f, x[1] = -0.0f, x[2] = 1e-30f, x[3] = 88.5f, x[4] = -88.5f, x[5] = 104.0f, x[6] = -104.0f;
    std::vector<float> first, out;
    for (int threads : {1, 2, 3}) {
      EXPECT_LT(worst_ulps(x, dy, n, threads, &out), 8.0) << "n " << n << " threads " << threads;
      if (first.empty()) {
        first = out;
      } else {
        EXPECT_EQ(first, out) << "n " << n << ": the thread count changed the gradient";
      }
    }
    if (n >= 8) {
      EXPECT_EQ(out[0], dy[0] * 0.5f) << "s(0) = 1/2, so dx = dy / 2";
      EXPECT_EQ(out[6], 0.0f) << "far below zero the gradient vanishes";
      EXPECT_NEAR(out[5], dy[5], 1e-6 * std::fabs(dy[5])) << "far above zero it passes dy through";
    }
  }
}

}  // namespace
}  // namespace cogumi
