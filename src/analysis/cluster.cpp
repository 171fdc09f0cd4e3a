#include "analysis/cluster.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <string_view>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace cogumi {
namespace {

using Points = std::vector<std::vector<float>>;

// Rows per chunk in chunked reductions. The partition depends only on n, never on the thread
// count, and chunks are combined in order, so sums are bit-identical on any machine.
constexpr size_t kChunk = 512;
// Multiply-adds that the sampled silhouette may spend on its distance matrix, and the largest
// sample it keeps (the matrix is sample^2 floats).
constexpr double kSilhouetteBudget = 4e9;
constexpr size_t kMaxSilhouetteSample = 3000;
// Members per cluster whose silhouette is evaluated when sampling left a cluster thin.
constexpr size_t kMinSilhouettePerCluster = 16;
// Power iterations for the 2-D projection. When the top eigenvalues are close (many similar
// clusters) the subspace converges slowly; by then it already spans high-variance directions,
// which is all a plot needs.
constexpr int kPcaMaxIter = 40;
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

// Runs fn(begin, end) over blocks of [0, n), handed out dynamically to up to
// hardware_concurrency threads so that uneven rows (a triangle of a matrix) still balance.
// `work` is the rough total cost in multiply-adds; small jobs stay on the calling thread.
void parallel_for(size_t n, double work, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  size_t hw = std::max(1u, std::thread::hardware_concurrency());
  size_t threads = std::min({hw, n, static_cast<size_t>(work / 4e6) + 1});
  if (threads <= 1) {
    fn(0, n);
    return;
  }
  size_t grain = std::max<size_t>(1, n / (threads * 16));
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t b; (b = next.fetch_add(grain)) < n;) fn(b, std::min(n, b + grain));
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

// Squared Euclidean distance. Eight independent accumulators let the compiler vectorise and
// pipeline without -ffast-math; the fixed summation order keeps results reproducible.
float sq_dist(const float* a, const float* b, size_t d) {
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

double dist(const float* a, const float* b, size_t d) {
  return std::sqrt(static_cast<double>(sq_dist(a, b, d)));
}

// Checks the shape and values of the input; returns the dimension.
size_t validate_points(const Points& points, const char* who) {
  if (points.empty()) fail("{}: no points", who);
  size_t d = points[0].size();
  if (d == 0) fail("{}: point 0 is empty", who);
  for (size_t i = 0; i < points.size(); ++i) {
    if (points[i].size() != d) {
      fail("{}: point {} has dimension {}, expected {} (the dimension of point 0)", who, i,
           points[i].size(), d);
    }
    for (size_t j = 0; j < d; ++j) {
      if (!std::isfinite(points[i][j])) {
        fail("{}: point {} has a non-finite value at dimension {}", who, i, j);
      }
    }
  }
  return d;
}

size_t count_distinct(const Points& points) {
  std::vector<size_t> idx(points.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return points[a] < points[b]; });
  size_t distinct = 1;
  for (size_t i = 1; i < idx.size(); ++i) distinct += points[idx[i]] != points[idx[i - 1]];
  return distinct;
}

// ---- k-means ------------------------------------------------------------------------------

struct KMeansRun {
  std::vector<float> centroids;  // k x d, row-major
  std::vector<int> assignment;
  double inertia = 0.0;
};

// k-means++: each new centroid is a point drawn with probability proportional to its squared
// distance from the nearest centroid so far. Needs k <= the number of distinct points.
std::vector<float> seed_centroids(const Points& p, size_t d, int k, Rng& rng) {
  size_t n = p.size();
  std::vector<float> c(static_cast<size_t>(k) * d);
  std::vector<double> d2(n, kInf);
  size_t pick = rng.below(n);
  for (int j = 0; j < k; ++j) {
    std::copy(p[pick].begin(), p[pick].end(), c.begin() + j * d);
    if (j + 1 == k) break;
    const float* cj = &c[j * d];
    parallel_for(n, static_cast<double>(n) * d, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) d2[i] = std::min<double>(d2[i], sq_dist(p[i].data(), cj, d));
    });
    double total = 0;
    for (double v : d2) total += v;
    // Walk the cumulative distribution; the fallback covers rounding at the very end.
    double r = rng.uniform() * total, acc = 0;
    size_t chosen = n;
    for (size_t i = 0; i < n; ++i) {
      if (d2[i] <= 0) continue;
      acc += d2[i];
      chosen = i;
      if (acc > r) break;
    }
    pick = chosen < n ? chosen : rng.below(n);  // all distances zero: only with duplicates
  }
  return c;
}

// Recomputes centroids as member means. An emptied cluster takes the point farthest from its
// own centroid (from a cluster of two or more), as scikit-learn does. Returns whether any
// point moved that way, which invalidates the distance bounds.
bool update_centroids(const Points& p, size_t d, int k, std::vector<int>& a,
                      std::vector<float>& c) {
  size_t n = p.size(), kd = static_cast<size_t>(k) * d;
  size_t n_chunks = (n + kChunk - 1) / kChunk;
  std::vector<std::vector<double>> partial(n_chunks);
  parallel_for(n_chunks, static_cast<double>(n) * d, [&](size_t b, size_t e) {
    for (size_t ch = b; ch < e; ++ch) {
      partial[ch].assign(kd, 0.0);
      for (size_t i = ch * kChunk; i < std::min(n, (ch + 1) * kChunk); ++i) {
        double* s = &partial[ch][a[i] * d];
        for (size_t j = 0; j < d; ++j) s[j] += p[i][j];
      }
    }
  });
  std::vector<double> sum(kd, 0.0);
  for (const auto& part : partial) {
    for (size_t j = 0; j < kd; ++j) sum[j] += part[j];
  }
  std::vector<size_t> count(k, 0);
  for (int x : a) ++count[x];
  auto set_centroid = [&](int j) {
    for (size_t t = 0; t < d; ++t) c[j * d + t] = static_cast<float>(sum[j * d + t] / count[j]);
  };
  bool relocated = false;
  std::vector<double> far;  // distance of each point to its centroid, computed only if needed
  for (int j = 0; j < k; ++j) {
    if (count[j] > 0) {
      set_centroid(j);
      continue;
    }
    if (far.empty()) {
      far.resize(n);
      parallel_for(n, static_cast<double>(n) * d, [&](size_t b, size_t e) {
        for (size_t i = b; i < e; ++i) far[i] = sq_dist(p[i].data(), &c[a[i] * d], d);
      });
    }
    size_t best = n;
    for (size_t i = 0; i < n; ++i) {
      if (count[a[i]] > 1 && far[i] >= 0 && (best == n || far[i] > far[best])) best = i;
    }
    if (best == n) continue;  // cannot happen while k <= distinct points
    int from = a[best];
    for (size_t t = 0; t < d; ++t) {
      sum[from * d + t] -= p[best][t];
      sum[j * d + t] = p[best][t];
    }
    --count[from];
    count[j] = 1;
    a[best] = j;
    far[best] = -1;  // never pick the same point twice
    set_centroid(j);
    if (from < j) set_centroid(from);
    relocated = true;
  }
  return relocated;
}

// Lloyd's algorithm with Hamerly's bounds: each point keeps an upper bound on the distance to
// its centroid and a lower bound on the distance to any other, so once centroids settle most
// points skip the k distance computations. The result matches plain Lloyd.
KMeansRun run_kmeans(const Points& p, size_t d, int k, uint64_t seed, int max_iter) {
  size_t n = p.size();
  Rng rng(seed);
  KMeansRun run;
  run.centroids = seed_centroids(p, d, k, rng);
  auto& c = run.centroids;
  auto& a = run.assignment;
  a.assign(n, 0);
  std::vector<double> upper(n), lower(n);
  auto full_scan = [&](size_t i) {
    double best = kInf, second = kInf;
    int arg = 0;
    for (int j = 0; j < k; ++j) {
      double dj = dist(p[i].data(), &c[j * d], d);
      if (dj < best) {
        second = best;
        best = dj;
        arg = j;
      } else if (dj < second) {
        second = dj;
      }
    }
    bool moved = a[i] != arg;
    a[i] = arg;
    upper[i] = best;
    lower[i] = second;
    return moved;
  };
  double scan_work = static_cast<double>(n) * k * d;
  parallel_for(n, scan_work, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) full_scan(i);
  });

  std::vector<double> half_gap(k), drift(k);
  for (int it = 0; it < max_iter; ++it) {
    std::vector<float> old = c;
    bool relocated = update_centroids(p, d, k, a, c);
    int top = 0;
    for (int j = 0; j < k; ++j) {
      drift[j] = dist(&old[j * d], &c[j * d], d);
      if (drift[j] > drift[top]) top = j;
    }
    double runner_up = 0;  // the largest drift among the other centroids than `top`
    for (int j = 0; j < k; ++j) {
      if (j != top) runner_up = std::max(runner_up, drift[j]);
    }
    for (size_t i = 0; i < n; ++i) {
      if (relocated) {
        upper[i] = kInf;
        lower[i] = 0;
      } else {
        upper[i] += drift[a[i]];
        lower[i] -= a[i] == top ? runner_up : drift[top];
      }
    }
    for (int j = 0; j < k; ++j) {
      half_gap[j] = kInf;
      for (int o = 0; o < k; ++o) {
        if (o != j) half_gap[j] = std::min(half_gap[j], 0.5 * dist(&c[j * d], &c[o * d], d));
      }
    }
    std::atomic<size_t> changed{0};
    parallel_for(n, scan_work / 4, [&](size_t b, size_t e) {
      size_t local = 0;
      for (size_t i = b; i < e; ++i) {
        double bound = std::max(half_gap[a[i]], lower[i]);
        if (upper[i] <= bound) continue;
        upper[i] = dist(p[i].data(), &c[a[i] * d], d);
        if (upper[i] <= bound) continue;
        local += full_scan(i);
      }
      changed += local;
    });
    if (changed == 0 && !relocated) break;
  }

  std::vector<double> sq(n);
  parallel_for(n, static_cast<double>(n) * d, [&](size_t b, size_t e) {
    for (size_t i = b; i < e; ++i) sq[i] = sq_dist(p[i].data(), &c[a[i] * d], d);
  });
  for (double v : sq) run.inertia += v;
  return run;
}

KMeansRun best_kmeans(const Points& p, size_t d, int k, const ClusterOptions& opts) {
  KMeansRun best;
  best.inertia = kInf;
  for (int r = 0; r < std::max(1, opts.n_init); ++r) {
    // Distinct, well-mixed seeds per (seed, k, restart), so restarts never share a stream.
    Rng mix(opts.seed ^ (static_cast<uint64_t>(k) << 32) ^ static_cast<uint64_t>(r));
    KMeansRun run = run_kmeans(p, d, k, mix.next(), std::max(1, opts.max_iter));
    if (run.inertia < best.inertia) best = std::move(run);
  }
  return best;
}

// ---- silhouette ---------------------------------------------------------------------------

// Silhouette of one point from its summed distances to each cluster's reference members;
// `own_count` already excludes the point itself. Singletons score 0 (scikit-learn's rule).
double silhouette_value(const std::vector<double>& sum, const std::vector<size_t>& count, int own,
                        size_t own_count) {
  if (own_count == 0) return 0.0;
  double a = sum[own] / static_cast<double>(own_count), b = kInf;
  for (size_t c = 0; c < count.size(); ++c) {
    if (static_cast<int>(c) != own && count[c] > 0) {
      b = std::min(b, sum[c] / static_cast<double>(count[c]));
    }
  }
  if (b == kInf) return 0.0;
  double m = std::max(a, b);
  return m > 0 ? (b - a) / m : 0.0;
}

// Silhouettes of the points `eval` measured against the reference points `ref` (a point is
// never compared with itself). O(|eval| |ref| d).
std::vector<double> silhouette_direct(const Points& p, size_t d, const std::vector<int>& labels,
                                      int k, const std::vector<size_t>& eval,
                                      const std::vector<size_t>& ref) {
  std::vector<size_t> ref_count(k, 0);
  std::vector<char> in_ref(p.size(), 0);
  for (size_t r : ref) {
    ++ref_count[labels[r]];
    in_ref[r] = 1;
  }
  std::vector<double> out(eval.size());
  parallel_for(eval.size(), static_cast<double>(eval.size()) * ref.size() * d,
               [&](size_t b, size_t e) {
                 std::vector<double> sum(k);
                 for (size_t x = b; x < e; ++x) {
                   size_t i = eval[x];
                   std::fill(sum.begin(), sum.end(), 0.0);
                   for (size_t r : ref) {
                     if (r != i) sum[labels[r]] += dist(p[i].data(), p[r].data(), d);
                   }
                   int own = labels[i];
                   out[x] = silhouette_value(sum, ref_count, own, ref_count[own] - in_ref[i]);
                 }
               });
  return out;
}

// Silhouettes for many labelings of the same points (one per k tried): the pairwise distances
// of a fixed sample (all points when affordable) are computed once, then each labeling costs
// only sample^2 additions.
class SilhouetteEstimator {
 public:
  SilhouetteEstimator(const Points& p, size_t d, uint64_t seed) : p_(p), d_(d) {
    size_t n = p.size();
    double affordable = std::sqrt(2 * kSilhouetteBudget / static_cast<double>(d));
    size_t m = std::min({n, kMaxSilhouetteSample, static_cast<size_t>(affordable)});
    m = std::max<size_t>(m, std::min<size_t>(n, 2));
    exact_ = m == n;
    sample_.resize(n);
    std::iota(sample_.begin(), sample_.end(), size_t{0});
    if (!exact_) {
      Rng rng(seed ^ 0x5113773ull);  // partial Fisher-Yates
      for (size_t i = 0; i < m; ++i) std::swap(sample_[i], sample_[i + rng.below(n - i)]);
      sample_.resize(m);
      std::sort(sample_.begin(), sample_.end());
    }
    dist_.assign(m * m, 0.0f);
    parallel_for(m, 0.5 * static_cast<double>(m) * m * d, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        for (size_t j = i + 1; j < m; ++j) {
          float v = static_cast<float>(dist(p_[sample_[i]].data(), p_[sample_[j]].data(), d_));
          dist_[i * m + j] = v;
          dist_[j * m + i] = v;
        }
      }
    });
  }

  // Mean silhouette (exact, or over the uniform sample). With `per_cluster`, also each
  // cluster's mean, topping up clusters that the sample left thin.
  double score(const std::vector<int>& labels, int k, std::vector<double>* per_cluster) const {
    size_t m = sample_.size();
    std::vector<size_t> count(k, 0);
    for (size_t s : sample_) ++count[labels[s]];
    std::vector<double> values(m);
    parallel_for(m, static_cast<double>(m) * m, [&](size_t b, size_t e) {
      std::vector<double> sum(k);
      for (size_t i = b; i < e; ++i) {
        std::fill(sum.begin(), sum.end(), 0.0);
        const float* row = &dist_[i * m];
        for (size_t j = 0; j < m; ++j) sum[labels[sample_[j]]] += row[j];
        int own = labels[sample_[i]];
        values[i] = silhouette_value(sum, count, own, count[own] - 1);
      }
    });
    double total = 0;
    for (double v : values) total += v;
    if (per_cluster) cluster_means(labels, k, values, count, per_cluster);
    return total / static_cast<double>(m);
  }

 private:
  void cluster_means(const std::vector<int>& labels, int k, const std::vector<double>& values,
                     const std::vector<size_t>& count, std::vector<double>* out) const {
    out->assign(k, 0.0);
    for (size_t i = 0; i < sample_.size(); ++i) (*out)[labels[sample_[i]]] += values[i];
    std::vector<std::vector<size_t>> members(k);
    for (size_t i = 0; i < labels.size(); ++i) members[labels[i]].push_back(i);
    std::unordered_set<size_t> sampled(sample_.begin(), sample_.end());
    for (int c = 0; c < k; ++c) {
      size_t want = std::min(members[c].size(), kMinSilhouettePerCluster);
      if (count[c] >= want) {
        if (count[c] > 0) (*out)[c] /= static_cast<double>(count[c]);
        continue;
      }
      // Too few sampled members: evaluate the sampled ones plus others spread evenly over
      // the cluster, against the sample and themselves.
      std::vector<size_t> eval;
      for (size_t i : members[c]) {
        if (sampled.count(i)) eval.push_back(i);
      }
      std::vector<size_t> extra;
      for (size_t i : members[c]) {
        if (!sampled.count(i)) extra.push_back(i);
      }
      size_t need = want - eval.size();
      for (size_t t = 0; t < need; ++t) eval.push_back(extra[t * extra.size() / need]);
      std::vector<size_t> ref = sample_;
      for (size_t t = count[c]; t < eval.size(); ++t) ref.push_back(eval[t]);
      auto v = silhouette_direct(p_, d_, labels, k, eval, ref);
      (*out)[c] = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    }
  }

  const Points& p_;
  size_t d_;
  bool exact_ = true;
  std::vector<size_t> sample_;  // ascending point indices
  std::vector<float> dist_;     // sample x sample distances
};

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

// ---- c-TF-IDF -----------------------------------------------------------------------------

const std::unordered_set<std::string_view>& stopwords() {
  static const std::unordered_set<std::string_view> words = {
      "about",   "above",   "after", "again",   "against",   "all",    "also",       "and",
      "any",     "are",     "aren",  "because", "been",      "before", "being",      "below",
      "between", "both",    "but",   "can",     "cannot",    "could",  "couldn",     "did",
      "didn",    "does",    "doesn", "doing",   "don",       "down",   "during",     "each",
      "either",  "else",    "etc",   "even",    "ever",      "every",  "few",        "for",
      "from",    "further", "get",   "gets",    "got",       "had",    "has",        "have",
      "having",  "her",     "here",  "hers",    "herself",   "him",    "himself",    "his",
      "how",     "however", "into",  "isn",     "its",       "itself", "just",       "let",
      "like",    "may",     "might", "more",    "most",      "much",   "must",       "myself",
      "neither", "nor",     "not",   "now",     "off",       "once",   "one",        "only",
      "other",   "others",  "our",   "ours",    "ourselves", "out",    "over",       "own",
      "same",    "shall",   "she",   "should",  "shouldn",   "since",  "some",       "such",
      "than",    "that",    "the",   "their",   "theirs",    "them",   "themselves", "then",
      "there",   "these",   "they",  "this",    "those",     "though", "through",    "too",
      "under",   "until",   "upon",  "very",    "was",       "wasn",   "way",        "were",
      "weren",   "what",    "when",  "where",   "whether",   "which",  "while",      "who",
      "whom",    "whose",   "why",   "will",    "with",      "within", "without",    "won",
      "would",   "wouldn",  "yet",   "you",     "your",      "yours",  "yourself",   "yourselves"};
  return words;
}

// Appends the kept tokens of `text` (see ctfidf_terms for the rules).
void tokenize(std::string_view text, std::vector<std::string>& out) {
  std::string tok;
  auto flush = [&] {
    bool digits =
        std::all_of(tok.begin(), tok.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
    if (tok.size() >= 3 && !digits && !stopwords().count(tok)) out.push_back(tok);
    tok.clear();
  };
  for (char ch : text) {
    auto u = static_cast<unsigned char>(ch);
    if ((u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') || u >= 0x80) {
      tok += ch;
    } else if (u >= 'A' && u <= 'Z') {
      tok += static_cast<char>(u - 'A' + 'a');
    } else if (!tok.empty()) {
      flush();
    }
  }
  if (!tok.empty()) flush();
}

}  // namespace

std::vector<std::vector<std::pair<std::string, double>>> ctfidf_terms(
    const std::vector<std::string>& texts, const std::vector<int>& assignment, int k, int n_terms) {
  if (texts.size() != assignment.size()) {
    fail("ctfidf_terms: {} texts but {} assignments", texts.size(), assignment.size());
  }
  if (k < 0) fail("ctfidf_terms: k must not be negative (got {})", k);
  std::vector<std::unordered_map<std::string, double>> tf(k);
  std::vector<double> words(k, 0.0);
  std::unordered_map<std::string, double> freq;  // f(t): count over all clusters
  std::vector<std::string> tokens;
  for (size_t i = 0; i < texts.size(); ++i) {
    int c = assignment[i];
    if (c < 0 || c >= k) fail("ctfidf_terms: assignment {} of item {} is outside [0, {})", c, i, k);
    tokens.clear();
    tokenize(texts[i], tokens);
    for (auto& t : tokens) {
      tf[c][t] += 1;
      freq[t] += 1;
    }
    words[c] += static_cast<double>(tokens.size());
  }
  double avg_words = k > 0 ? std::accumulate(words.begin(), words.end(), 0.0) / k : 0.0;
  std::vector<std::vector<std::pair<std::string, double>>> out(k);
  for (int c = 0; c < k; ++c) {
    auto& terms = out[c];
    for (const auto& [t, count] : tf[c]) {
      terms.emplace_back(t, count / words[c] * std::log(1.0 + avg_words / freq[t]));
    }
    std::sort(terms.begin(), terms.end(), [](const auto& a, const auto& b) {
      return a.second != b.second ? a.second > b.second : a.first < b.first;
    });
    if (terms.size() > static_cast<size_t>(std::max(0, n_terms)))
      terms.resize(std::max(0, n_terms));
  }
  return out;
}

double silhouette_score(const std::vector<std::vector<float>>& points,
                        const std::vector<int>& assignment) {
  size_t d = validate_points(points, "silhouette_score");
  if (assignment.size() != points.size()) {
    fail("silhouette_score: {} points but {} assignments", points.size(), assignment.size());
  }
  int k = 0;
  for (size_t i = 0; i < assignment.size(); ++i) {
    if (assignment[i] < 0) fail("silhouette_score: assignment of point {} is negative", i);
    k = std::max(k, assignment[i] + 1);
  }
  std::vector<size_t> all(points.size());
  std::iota(all.begin(), all.end(), size_t{0});
  auto v = silhouette_direct(points, d, assignment, k, all, all);
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

Clustering cluster_points(const std::vector<std::vector<float>>& points,
                          const std::vector<std::string>& texts, const ClusterOptions& opts) {
  size_t d = validate_points(points, "cluster_points");
  size_t n = points.size();
  if (!texts.empty() && texts.size() != n) {
    fail("cluster_points: {} texts for {} points", texts.size(), n);
  }
  if (opts.k < 0) fail("cluster_points: k must not be negative (got {})", opts.k);
  int distinct = static_cast<int>(std::min<size_t>(count_distinct(points), 1 << 30));
  int k_lo = opts.k > 0 ? opts.k : 2, k_hi = opts.k > 0 ? opts.k : std::max(2, opts.k_max);
  k_lo = std::min(k_lo, distinct);
  k_hi = std::min(k_hi, distinct);

  SilhouetteEstimator silhouettes(points, d, opts.seed);
  KMeansRun best;
  int best_k = 0;
  double best_score = -kInf;
  for (int k = k_lo; k <= k_hi; ++k) {
    KMeansRun run = best_kmeans(points, d, k, opts);
    double score = k_lo < k_hi ? silhouettes.score(run.assignment, k, nullptr) : 0.0;
    if (best_k == 0 || score > best_score) {
      best = std::move(run);
      best_k = k;
      best_score = score;
    }
  }

  // Order clusters by size (ties: the one whose first member comes first) and drop any that
  // ended empty, which only a run stopped by max_iter can leave.
  std::vector<std::vector<size_t>> members(best_k);
  for (size_t i = 0; i < n; ++i) members[best.assignment[i]].push_back(i);
  std::vector<int> order;
  for (int c = 0; c < best_k; ++c) {
    if (!members[c].empty()) order.push_back(c);
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    if (members[a].size() != members[b].size()) return members[a].size() > members[b].size();
    return members[a][0] < members[b][0];
  });

  Clustering out;
  out.k = static_cast<int>(order.size());
  out.assignment.resize(n);
  out.inertia = best.inertia;
  out.clusters.resize(out.k);
  for (int id = 0; id < out.k; ++id) {
    Cluster& cl = out.clusters[id];
    cl.id = id;
    cl.members = std::move(members[order[id]]);
    for (size_t i : cl.members) out.assignment[i] = id;
    // Representatives: nearest the centroid, ties by index.
    const float* centroid = &best.centroids[order[id] * d];
    std::vector<std::pair<float, size_t>> by_dist;
    for (size_t i : cl.members) by_dist.emplace_back(sq_dist(points[i].data(), centroid, d), i);
    size_t n_rep =
        std::min(cl.members.size(), static_cast<size_t>(std::max(0, opts.n_representatives)));
    std::partial_sort(by_dist.begin(), by_dist.begin() + n_rep, by_dist.end());
    for (size_t r = 0; r < n_rep; ++r) cl.representatives.push_back(by_dist[r].second);
  }

  std::vector<double> per_cluster;
  out.silhouette = silhouettes.score(out.assignment, out.k, &per_cluster);
  for (int id = 0; id < out.k; ++id) out.clusters[id].silhouette = per_cluster[id];

  if (!texts.empty()) {
    auto terms = ctfidf_terms(texts, out.assignment, out.k, opts.n_label_terms);
    for (int id = 0; id < out.k; ++id) out.clusters[id].top_terms = std::move(terms[id]);
  }
  for (Cluster& cl : out.clusters) {
    for (const auto& [term, score] : cl.top_terms) {
      cl.label += (cl.label.empty() ? "" : " / ") + term;
    }
    if (cl.label.empty()) cl.label = fmt::format("cluster {}", cl.id);
  }
  out.projection = pca_2d(points, d);
  return out;
}

}  // namespace cogumi
