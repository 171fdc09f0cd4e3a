// k-means: k-means++ seeding and Lloyd's algorithm with Hamerly's bounds, deterministic for a
// seed and independent of the number of threads (see cluster.h).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <numeric>
#include <thread>

#include "analysis/cluster_detail.h"
#include "core/threads.h"
#include "core/error.h"

namespace cogumi::cluster_detail {

void parallel_for(size_t n, double work, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  const size_t hw = size_t(compute_threads());  // COGUMI_THREADS or every core, as ggml jobs
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

namespace {

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

}  // namespace

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

}  // namespace cogumi::cluster_detail
