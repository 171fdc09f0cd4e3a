// cogumi/analysis internals shared by the clustering files (k-means, silhouette, PCA, c-TF-IDF,
// features): the deterministic RNG, the thread-count-independent parallel loop and distances.
// Not a public header: only src/analysis/*.cpp include it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "analysis/cluster.h"

namespace cogumi::cluster_detail {

using Points = std::vector<std::vector<float>>;

// Rows per chunk in chunked reductions. The partition depends only on n, never on the thread
// count, and chunks are combined in order, so sums are bit-identical on any machine.
constexpr size_t kChunk = 512;
constexpr double kInf = std::numeric_limits<double>::infinity();

// splitmix64: tiny, and gives the same stream on every standard library, which the std
// distributions do not promise.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }

 private:
  uint64_t state_;
};

// Runs fn(begin, end) over blocks of [0, n), handed out dynamically to up to compute_threads()
// threads (COGUMI_THREADS or every core) so that uneven rows (a triangle of a matrix) still balance.
// `work` is the rough total cost in multiply-adds; small jobs stay on the calling thread.
void parallel_for(size_t n, double work, const std::function<void(size_t, size_t)>& fn);

// Coordinates of the centred rows in their top-r principal subspace (some orthonormal basis of it; r at most the
// rows' rank): subspace iterations on the n x n Gram matrix when there are fewer rows than dimensions, else on the
// d x d covariance. With sparse_ok, rows that are mostly zeros (the hashed TF-IDF bag) take the Gram matrix
// implicitly, never made; the coordinates agree with the dense way's up to rounding and rotation.
std::vector<std::vector<double>> principal_coords(const Points& rows, int r, bool sparse_ok);

// Squared Euclidean distance. Eight independent accumulators let the compiler vectorise and
// pipeline without -ffast-math; the fixed summation order keeps results reproducible.
inline float sq_dist(const float* a, const float* b, size_t d) {
  float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= d; i += 8) {
    for (size_t j = 0; j < 8; ++j) {
      float t = a[i + j] - b[i + j];
      acc[j] += t * t;
    }
  }
  float tail = 0;
  for (; i < d; ++i) tail += (a[i] - b[i]) * (a[i] - b[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

inline double dist(const float* a, const float* b, size_t d) {
  return std::sqrt(static_cast<double>(sq_dist(a, b, d)));
}

// Checks the shape and values of the input; returns the dimension.
size_t validate_points(const Points& points, const char* who);
size_t count_distinct(const Points& points);

struct KMeansRun {
  std::vector<float> centroids;  // k x d, row-major
  std::vector<int> assignment;
  double inertia = 0.0;
};

// k-means++ seeding, Lloyd with Hamerly's bounds, n_init restarts; the lowest inertia wins.
KMeansRun best_kmeans(const Points& p, size_t d, int k, const ClusterOptions& opts);

// Silhouettes of the points `eval` measured against the reference points `ref`.
std::vector<double> silhouette_direct(const Points& p, size_t d, const std::vector<int>& labels,
                                      int k, const std::vector<size_t>& eval,
                                      const std::vector<size_t>& ref);

// Silhouettes for many labelings of the same points (one per k tried): the pairwise distances
// of a fixed sample (all points when affordable) are computed once, then each labeling costs
// only sample^2 additions.
class SilhouetteEstimator {
 public:
  SilhouetteEstimator(const Points& p, size_t d, uint64_t seed);
  // Mean silhouette (exact, or over the uniform sample). With `per_cluster`, also each
  // cluster's mean, topping up clusters that the sample left thin.
  double score(const std::vector<int>& labels, int k, std::vector<double>* per_cluster) const;

 private:
  void cluster_means(const std::vector<int>& labels, int k, const std::vector<double>& values,
                     const std::vector<size_t>& count, std::vector<double>* out) const;

  const Points& p_;
  size_t d_;
  bool exact_ = true;
  std::vector<size_t> sample_;  // ascending point indices
  std::vector<float> dist_;     // sample x sample distances
};

// Projection onto the top-2 principal components, for plots.
std::vector<std::array<float, 2>> pca_2d(const Points& p, size_t d);

// Appends the kept tokens of `text` (see ctfidf_terms in cluster.h for the rules).
void tokenize(std::string_view text, std::vector<std::string>& out);

}  // namespace cogumi::cluster_detail
