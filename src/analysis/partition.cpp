#include "analysis/partition.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

#include "analysis/cluster_detail.h"
#include "core/error.h"

namespace cogumi {

using namespace cluster_detail;

namespace {

// One group's clustering, in the group's own point order.
struct GroupFit {
  std::vector<int> labels;
  std::vector<std::vector<double>> centroids;
  double silhouette = 0;
  std::vector<double> per_cluster;
};

std::vector<std::vector<double>> means(const Points& p, const std::vector<int>& labels, int k) {
  size_t d = p[0].size();
  std::vector<std::vector<double>> c(size_t(k), std::vector<double>(d, 0.0));
  std::vector<size_t> count(size_t(k), 0);
  for (size_t i = 0; i < p.size(); ++i) {
    ++count[size_t(labels[i])];
    for (size_t j = 0; j < d; ++j) c[size_t(labels[i])][j] += p[i][j];
  }
  for (int a = 0; a < k; ++a)
    for (double& x : c[size_t(a)]) x /= double(std::max<size_t>(count[size_t(a)], 1));
  return c;
}

double sq_dist_to(const std::vector<float>& x, const std::vector<double>& c) {
  double s = 0;
  for (size_t j = 0; j < x.size(); ++j) s += (x[j] - c[j]) * (x[j] - c[j]);
  return s;
}

// Dissolves clusters under min_size, smallest first, into the nearest surviving centroid;
// returns the new k with labels renumbered 0..k-1.
int merge_small(const Points& p, std::vector<int>& labels, int k, size_t min_size) {
  for (;;) {
    std::vector<size_t> count(size_t(k), 0);
    for (int l : labels) ++count[size_t(l)];
    int worst = -1;
    for (int a = 0; a < k; ++a)
      if (count[size_t(a)] < min_size && (worst < 0 || count[size_t(a)] < count[size_t(worst)]))
        worst = a;
    if (worst < 0 || k == 1) return k;
    auto c = means(p, labels, k);
    for (size_t i = 0; i < p.size(); ++i) {
      if (labels[i] != worst) continue;
      int best = -1;
      double bd = kInf;
      for (int a = 0; a < k; ++a) {
        double dd = a == worst ? kInf : sq_dist_to(p[i], c[size_t(a)]);
        if (best < 0 || dd < bd) best = a, bd = dd;
      }
      labels[i] = best;
    }
    for (int& l : labels) l -= l > worst;
    --k;
  }
}

GroupFit fit_group(const Points& p, const PartitionOptions& o, size_t min_size) {
  size_t n = p.size(), d = p[0].size();
  GroupFit best;
  best.labels.assign(n, 0);
  best.silhouette = 0;
  int distinct = int(std::min<size_t>(count_distinct(p), 1 << 30));
  int k_lo = o.k > 0 ? o.k : 2;
  int k_hi = o.k > 0 ? o.k : std::min<int>(o.k_max, int(n / std::max<size_t>(min_size, 1)));
  k_hi = std::min(k_hi, distinct);
  k_lo = std::min(k_lo, k_hi);  // a fixed k above the distinct points takes them all
  if (k_lo <= k_hi && k_hi >= 2) {
    SilhouetteEstimator sil(p, d, o.kmeans.seed);
    double best_score = -kInf;
    for (int k = k_lo; k <= k_hi; ++k) {
      KMeansRun run = best_kmeans(p, d, k, o.kmeans);
      std::vector<int> labels = run.assignment;
      int k_eff = merge_small(p, labels, k, min_size);
      if (k_eff < 2) continue;
      std::vector<double> per;
      double score = sil.score(labels, k_eff, &per);
      if (score > best_score + 1e-12) {
        best_score = score;
        best.labels = std::move(labels);
        best.silhouette = score;
        best.per_cluster = std::move(per);
      }
    }
    // A fixed k is the user's call; a chosen one must show real structure.
    if (o.k == 0 && best_score <= o.min_silhouette) {
      best.labels.assign(n, 0);
      best.silhouette = 0;
      best.per_cluster.clear();
    }
  }
  int k = 1 + *std::max_element(best.labels.begin(), best.labels.end());
  if (best.per_cluster.empty()) best.per_cluster.assign(size_t(k), 0.0);
  best.centroids = means(p, best.labels, k);
  return best;
}

// Members nearest the centroid (representatives) and nearest another centroid of the group
// (borderline: smallest gap between the two distances; with one cluster, the farthest out).
void pick_members(const Points& p, const GroupFit& g, const std::vector<size_t>& local,
                  const std::vector<size_t>& global, const PartitionOptions& o, Cluster& cl) {
  std::vector<std::pair<double, size_t>> near, edge;
  int own = g.labels[local[0]];
  for (size_t x : local) {
    double d_own = std::sqrt(sq_dist_to(p[x], g.centroids[size_t(own)]));
    double d_other = kInf;
    for (size_t a = 0; a < g.centroids.size(); ++a)
      if (int(a) != own) d_other = std::min(d_other, std::sqrt(sq_dist_to(p[x], g.centroids[a])));
    near.emplace_back(d_own, global[x]);
    edge.emplace_back(d_other == kInf ? -d_own : d_other - d_own, global[x]);
  }
  std::sort(near.begin(), near.end());
  std::sort(edge.begin(), edge.end());
  size_t n_rep = std::min(near.size(), size_t(std::max(0, o.kmeans.n_representatives)));
  for (size_t r = 0; r < n_rep; ++r) cl.representatives.push_back(near[r].second);
  // Borderline members are not also shown as representatives.
  for (const auto& [gap, i] : edge) {
    if (cl.borderline.size() >= size_t(o.n_borderline)) break;
    if (std::find(cl.representatives.begin(), cl.representatives.end(), i) ==
        cl.representatives.end())
      cl.borderline.push_back(i);
  }
}

}  // namespace

void PartitionOptions::validate() const {
  if (k < 0 || k > 10000) fail("k (-k) must be in 0..10000 (0 = choose by silhouette), got {}", k);
  if (k_max < 1 || k_max > 100) fail("k_max (--k-max) must be in 1..100, got {}", k_max);
  if (min_size < 0 || min_size > 1000000)
    fail("min_size (--min-size) must be in 0..1000000, got {}", min_size);
  if (!(min_silhouette >= -1 && min_silhouette <= 1))
    fail("min_silhouette (--min-silhouette) must be in -1..1, got {}", min_silhouette);
  if (n_borderline < 0 || n_borderline > 100)
    fail("n_borderline must be in 0..100, got {}", n_borderline);
  kmeans.validate();
}

Clustering partition_points(const Points& points, const std::vector<std::string>& groups,
                            const std::vector<std::string>& texts, const PartitionOptions& o) {
  o.validate();
  size_t d = validate_points(points, "partition_points");
  size_t n = points.size();
  if (o.by_group && groups.size() != n)
    fail("partition_points: {} groups for {} points", groups.size(), n);
  if (!texts.empty() && texts.size() != n)
    fail("partition_points: {} texts for {} points", texts.size(), n);
  size_t min_size = o.min_size > 0 ? size_t(o.min_size) : std::max<size_t>(5, n / 50);

  std::map<std::string, std::vector<size_t>> by_group;
  for (size_t i = 0; i < n; ++i) by_group[o.by_group ? groups[i] : std::string()].push_back(i);
  Clustering out;
  out.assignment.assign(n, -1);
  double weighted = 0;
  size_t weighted_n = 0;
  for (const auto& [name, idx] : by_group) {
    Points p;
    for (size_t i : idx) p.push_back(points[i]);
    GroupFit g = fit_group(p, o, min_size);
    int k = int(g.centroids.size());
    if (k >= 2) weighted += g.silhouette * double(idx.size()), weighted_n += idx.size();
    std::vector<std::vector<size_t>> local(static_cast<size_t>(k));
    for (size_t x = 0; x < idx.size(); ++x) local[size_t(g.labels[x])].push_back(x);
    for (int a = 0; a < k; ++a) {
      if (local[size_t(a)].empty()) continue;
      Cluster cl;
      cl.group = name;
      cl.silhouette = g.per_cluster[size_t(a)];
      for (size_t x : local[size_t(a)]) cl.members.push_back(idx[x]);
      pick_members(p, g, local[size_t(a)], idx, o, cl);
      out.clusters.push_back(std::move(cl));
    }
  }
  std::stable_sort(
      out.clusters.begin(), out.clusters.end(), [](const Cluster& a, const Cluster& b) {
        return a.members.size() != b.members.size() ? a.members.size() > b.members.size()
                                                    : a.members[0] < b.members[0];
      });
  out.k = int(out.clusters.size());
  for (int id = 0; id < out.k; ++id) {
    out.clusters[size_t(id)].id = id;
    for (size_t i : out.clusters[size_t(id)].members) out.assignment[i] = id;
  }
  out.silhouette = weighted_n ? weighted / double(weighted_n) : 0.0;
  if (!texts.empty()) {
    auto terms = ctfidf_terms(texts, out.assignment, out.k, o.kmeans.n_label_terms);
    for (int id = 0; id < out.k; ++id)
      out.clusters[size_t(id)].top_terms = std::move(terms[size_t(id)]);
  }
  for (Cluster& cl : out.clusters) {
    for (const auto& [term, score] : cl.top_terms)
      cl.label += (cl.label.empty() ? "" : " / ") + term;
    if (cl.label.empty()) cl.label = fmt::format("cluster {}", cl.id);
    if (!cl.group.empty()) cl.label = cl.group + ": " + cl.label;
  }
  out.projection = pca_2d(points, d);
  return out;
}

namespace {

// Contingency counts of two labelings.
std::map<std::pair<int, int>, double> contingency(const std::vector<int>& a,
                                                  const std::vector<int>& b) {
  if (a.size() != b.size())
    fail("agreement: {} cluster labels but {} reference labels", a.size(), b.size());
  std::map<std::pair<int, int>, double> t;
  for (size_t i = 0; i < a.size(); ++i) t[{a[i], b[i]}] += 1;
  return t;
}

double pairs(double x) {
  return x * (x - 1) / 2;
}

}  // namespace

double adjusted_rand_index(const std::vector<int>& clusters, const std::vector<int>& truth) {
  auto t = contingency(clusters, truth);
  std::map<int, double> rows, cols;
  double index = 0;
  for (const auto& [key, c] : t) {
    index += pairs(c);
    rows[key.first] += c;
    cols[key.second] += c;
  }
  double sum_a = 0, sum_b = 0;
  for (auto& [_, c] : rows) sum_a += pairs(c);
  for (auto& [_, c] : cols) sum_b += pairs(c);
  double total = pairs(double(clusters.size()));
  if (total == 0) return 1.0;
  double expected = sum_a * sum_b / total, max_index = (sum_a + sum_b) / 2;
  // Both labelings trivial (all one cluster, or all singletons): they agree perfectly.
  if (max_index == expected) return 1.0;
  return (index - expected) / (max_index - expected);
}

double purity(const std::vector<int>& clusters, const std::vector<int>& truth) {
  auto t = contingency(clusters, truth);
  std::map<int, double> best;
  for (const auto& [key, c] : t) best[key.first] = std::max(best[key.first], c);
  double s = 0;
  for (auto& [_, c] : best) s += c;
  return clusters.empty() ? 1.0 : s / double(clusters.size());
}

}  // namespace cogumi
