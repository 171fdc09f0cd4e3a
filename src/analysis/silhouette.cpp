// Silhouettes: exact, or estimated on a fixed sample for many labelings (see cluster.h).
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <unordered_set>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi::cluster_detail {

// ---- silhouette ---------------------------------------------------------------------------

namespace {

// Multiply-adds that the sampled silhouette may spend on its distance matrix, and the largest
// sample it keeps (the matrix is sample^2 floats).
constexpr double kSilhouetteBudget = 4e9;
constexpr size_t kMaxSilhouetteSample = 3000;
// Members per cluster whose silhouette is evaluated when sampling left a cluster thin.
constexpr size_t kMinSilhouettePerCluster = 16;

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

}  // namespace

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

SilhouetteEstimator::SilhouetteEstimator(const Points& p, size_t d, uint64_t seed) : p_(p), d_(d) {
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

double SilhouetteEstimator::score(const std::vector<int>& labels, int k,
                                  std::vector<double>* per_cluster) const {
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

void SilhouetteEstimator::cluster_means(const std::vector<int>& labels, int k,
                                        const std::vector<double>& values,
                                        const std::vector<size_t>& count,
                                        std::vector<double>* out) const {
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

}  // namespace cogumi::cluster_detail

namespace cogumi {

using namespace cluster_detail;

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
}  // namespace cogumi
