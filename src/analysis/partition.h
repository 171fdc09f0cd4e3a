// cogumi/analysis: failures partitioned into patterns a user can act on. Clusters are found
// within each group (the benchmark category) by default, since a cluster that mixes GSM8K and
// BFCL failures is rarely one pattern. k is chosen per group by the mean silhouette after
// clusters under a minimum size are dissolved into their nearest neighbour, so a handful of
// outliers cannot buy a high score by taking clusters of their own; a split that does not beat
// a silhouette floor leaves the group as one cluster. Also: agreement with reference labels
// (adjusted Rand index, purity), used to judge a grouping against known templates.
#pragma once

#include <string>
#include <vector>

#include "analysis/cluster.h"

namespace cogumi {

struct PartitionOptions {
  bool by_group = true;  // false: one clustering across all groups (today's behaviour)
  int k = 0;             // clusters per group; 0: choose in [1, k_max] by silhouette
  int k_max = 6;         // 1..100
  int min_size = 0;      // smallest cluster kept, 1..1e6; 0: max(5, 2% of the failures)
  // -1..1: a split must score above this to be kept. k-means always finds a split; splitting
  // one shapeless blob scores about 0.05-0.1 in the feature space's dimensions (32 + 64 + types).
  double min_silhouette = 0.1;
  int n_borderline = 3;   // 0..100 members nearest another cluster, per cluster
  ClusterOptions kmeans;  // seed, restarts, iterations, representatives, label terms
  void validate() const;  // throws Error naming the option
};

// Clusters `points` (features, see failure_features.h) within each distinct value of `groups` (one
// per point; ignored with by_group false). `texts` feed the c-TF-IDF labels (same length, or
// empty). Clusters are sorted by size, largest first, ids 0..k-1; labels start with the
// group. silhouette is the size-weighted mean over groups split in two or more. Throws Error
// on empty or ragged input or mismatched sizes.
Clustering partition_points(const std::vector<std::vector<float>>& points,
                            const std::vector<std::string>& groups,
                            const std::vector<std::string>& texts, const PartitionOptions& opts);

// Agreement of a clustering with reference labels (one each per item, same length).
double adjusted_rand_index(const std::vector<int>& clusters, const std::vector<int>& truth);
// Share of items whose cluster's most common reference label is their own.
double purity(const std::vector<int>& clusters, const std::vector<int>& truth);

}  // namespace cogumi
