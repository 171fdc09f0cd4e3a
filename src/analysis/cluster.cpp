#include "analysis/cluster.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi {

using namespace cluster_detail;

void ClusterOptions::validate() const {
  if (k < 0 || k > 10000) fail("k (-k) must be in 0..10000 (0 = choose by silhouette), got {}", k);
  if (k_max < 2 || k_max > 10000) fail("k_max (--k-max) must be in 2..10000, got {}", k_max);
  if (n_init < 1 || n_init > 1000) fail("n_init must be in 1..1000, got {}", n_init);
  if (max_iter < 1) fail("max_iter must be >= 1, got {}", max_iter);
  if (n_representatives < 0) fail("n_representatives must be >= 0, got {}", n_representatives);
  if (n_label_terms < 0) fail("n_label_terms must be >= 0, got {}", n_label_terms);
}

Clustering cluster_points(const std::vector<std::vector<float>>& points,
                          const std::vector<std::string>& texts, const ClusterOptions& opts) {
  size_t d = validate_points(points, "cluster_points");
  size_t n = points.size();
  if (!texts.empty() && texts.size() != n) {
    fail("cluster_points: {} texts for {} points", texts.size(), n);
  }
  opts.validate();
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
