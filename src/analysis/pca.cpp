// The 2-D PCA projection of the report's map.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi::cluster_detail {

// Power iterations for the 2-D projection. When the top eigenvalues are close (many similar
// clusters) the subspace converges slowly; by then it already spans high-variance directions,
// which is all a plot needs.
constexpr int kPcaMaxIter = 40;

// ---- PCA ----------------------------------------------------------------------------------

// Top-2 principal subspace by block power iteration on the covariance, applied implicitly as
// X^T (X v) so the d x d matrix is never formed; a final 2 x 2 Rayleigh-Ritz step orders the
// axes by variance. Plots need the picture, not many digits, hence the loose tolerance.
std::vector<std::array<float, 2>> pca_2d(const Points& p, size_t d) {
  size_t n = p.size(), n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::array<float, 2>> out(n, {0.0f, 0.0f});
  std::vector<double> mean(d, 0.0);
  for (const auto& row : p) {
    for (size_t j = 0; j < d; ++j) mean[j] += row[j];
  }
  for (double& m : mean) m /= static_cast<double>(n);

  std::array<std::vector<double>, 2> v = {std::vector<double>(d), std::vector<double>(d)};
  Rng rng(0x9CA2D);
  for (auto& vec : v) {
    for (double& x : vec) x = rng.uniform() - 0.5;
  }
  auto dot = [d](const std::vector<double>& a, const std::vector<double>& b) {
    double s = 0;
    for (size_t j = 0; j < d; ++j) s += a[j] * b[j];
    return s;
  };
  // Gram-Schmidt; returns how many orthonormal vectors survive (rank-deficient data has < 2).
  auto orthonormalize = [&](std::array<std::vector<double>, 2>& w) {
    double n0 = std::sqrt(dot(w[0], w[0]));
    if (n0 < 1e-30) return 0;
    for (double& x : w[0]) x /= n0;
    double proj = dot(w[1], w[0]);
    for (size_t j = 0; j < d; ++j) w[1][j] -= proj * w[0][j];
    double n1 = std::sqrt(dot(w[1], w[1]));
    if (n1 < 1e-12 * n0) return 1;
    for (double& x : w[1]) x /= n1;
    return 2;
  };
  orthonormalize(v);
  std::vector<double> y0(n), y1(n);
  // Centres row i into `x` and returns its coordinates along v.
  auto coords = [&](size_t i, std::vector<double>& x) {
    double s0 = 0, s1 = 0;
    for (size_t j = 0; j < d; ++j) {
      x[j] = p[i][j] - mean[j];
      s0 += x[j] * v[0][j];
      s1 += x[j] * v[1][j];
    }
    return std::pair{s0, s1};
  };
  int rank = 2;
  for (int it = 0; it < kPcaMaxIter; ++it) {
    // One pass per iteration: each row is projected and accumulated while it is in cache.
    std::vector<std::vector<double>> partial(n_chunks);
    parallel_for(n_chunks, 4.0 * n * d, [&](size_t b, size_t e) {
      std::vector<double> x(d);
      for (size_t ch = b; ch < e; ++ch) {
        partial[ch].assign(2 * d, 0.0);
        double* w0 = partial[ch].data();
        double* w1 = w0 + d;
        for (size_t i = ch * kChunk; i < std::min(n, (ch + 1) * kChunk); ++i) {
          auto [s0, s1] = coords(i, x);
          for (size_t j = 0; j < d; ++j) {
            w0[j] += s0 * x[j];
            w1[j] += s1 * x[j];
          }
        }
      }
    });
    std::array<std::vector<double>, 2> w = {std::vector<double>(d, 0.0),
                                            std::vector<double>(d, 0.0)};
    for (const auto& part : partial) {
      for (size_t j = 0; j < d; ++j) {
        w[0][j] += part[j];
        w[1][j] += part[d + j];
      }
    }
    rank = orthonormalize(w);
    if (rank == 0) return out;  // every point identical
    // Converged when the new vectors lie (almost) inside the old subspace.
    double residual = 0;
    for (int a = 0; a < rank; ++a) {
      double c0 = dot(w[a], v[0]), c1 = dot(w[a], v[1]);
      residual = std::max(residual, 1.0 - c0 * c0 - c1 * c1);
    }
    v = std::move(w);
    if (rank < 2) std::fill(v[1].begin(), v[1].end(), 0.0);
    if (residual < 1e-6) break;
  }
  parallel_for(n, 2.0 * n * d, [&](size_t b, size_t e) {
    std::vector<double> x(d);
    for (size_t i = b; i < e; ++i) std::tie(y0[i], y1[i]) = coords(i, x);
  });
  // Rayleigh-Ritz: rotate within the subspace so axis 0 carries the most variance.
  double h00 = 0, h01 = 0, h11 = 0;
  for (size_t i = 0; i < n; ++i) {
    h00 += y0[i] * y0[i];
    h01 += y0[i] * y1[i];
    h11 += y1[i] * y1[i];
  }
  double theta = 0.5 * std::atan2(2 * h01, h00 - h11);
  double cs = std::cos(theta), sn = std::sin(theta);
  for (size_t i = 0; i < n; ++i) {
    double a = cs * y0[i] + sn * y1[i], b = -sn * y0[i] + cs * y1[i];
    y0[i] = a;
    y1[i] = b;
  }
  // Fix the signs (power iteration leaves them arbitrary): the extreme point is positive.
  for (auto* y : {&y0, &y1}) {
    auto [lo, hi] = std::minmax_element(y->begin(), y->end());
    if (-*lo > *hi) {
      for (double& t : *y) t = -t;
    }
  }
  for (size_t i = 0; i < n; ++i) out[i] = {static_cast<float>(y0[i]), static_cast<float>(y1[i])};
  return out;
}
}  // namespace cogumi::cluster_detail
