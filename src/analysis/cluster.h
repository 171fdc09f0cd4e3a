// cogumi/analysis: grouping failures. k-means++ over failure embeddings, silhouette scores,
// c-TF-IDF cluster labels and a 2-D PCA projection for plots.
//
// Everything here is deterministic for a seed and independent of the number of threads:
// parallel loops only write per-point results, and every floating-point reduction runs over
// fixed chunks in a fixed order. Distances are Euclidean; embeddings are expected to be
// L2-normalised (EmbedOptions::normalize), which makes this spherical k-means in effect.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cogumi {

struct ClusterOptions {
  int k = 10;  // 0: choose k in [2, k_max] by the best mean silhouette
  int k_max = 12;
  uint64_t seed = 1;  // k-means++ seeding and restarts are deterministic for a seed
  int n_init = 4;     // k-means++ restarts; the lowest inertia wins
  int max_iter = 100;
  int n_representatives = 3;  // members nearest each centroid
  int n_label_terms = 4;      // c-TF-IDF terms per cluster label
  void validate() const;      // throws Error naming the field (and its CLI flag)
};

struct Cluster {
  int id = 0;
  std::vector<size_t> members;                            // indices into the input, ascending
  std::vector<size_t> representatives;                    // nearest the centroid first
  std::vector<std::pair<std::string, double>> top_terms;  // c-TF-IDF, best first
  std::string label;        // top terms joined with " / " (an LLM label may replace it later)
  double silhouette = 0.0;  // mean silhouette of members
  std::string group;                // the category it was found in (partition_points), or ""
  std::vector<size_t> borderline;   // members nearest another cluster of their group first
};

struct Clustering {
  int k = 0;
  std::vector<int> assignment;    // cluster id per input point
  std::vector<Cluster> clusters;  // sorted by size, largest first; ids renumbered 0..k-1 so
  double silhouette = 0.0;        // mean over all points
  double inertia = 0.0;           // sum of squared distances to the assigned centroid
  std::vector<std::array<float, 2>> projection;  // PCA to 2-D (power iteration), for the plot
};

// Clusters `points` (one embedding per item, all the same non-zero dimension, finite values).
// `texts` are the items' texts for the c-TF-IDF labels: the same length as `points`, or empty
// for no labels. k is clamped to the number of distinct points (a single distinct point gives
// one cluster). Throws cogumi::Error on empty input, ragged dimensions or non-finite values
// (the message names the offending index), or a text count that does not match.
//
// Silhouettes need all pairwise distances, O(n^2 d). Above roughly 4e9 multiply-adds they are
// estimated on a fixed uniform sample of points (the same for every k, so k=0 compares like
// with like); clusters with few sampled members get extra members evaluated so that every
// cluster's own silhouette rests on at least a handful of points.
Clustering cluster_points(const std::vector<std::vector<float>>& points,
                          const std::vector<std::string>& texts, const ClusterOptions& opts);

// Exact mean silhouette (Euclidean) over all points; O(n^2 d). Points in singleton clusters
// score 0, and fewer than two non-empty clusters give 0 (where scikit-learn would refuse).
// Throws Error on ragged input, a size mismatch or a negative cluster id.
double silhouette_score(const std::vector<std::vector<float>>& points,
                        const std::vector<int>& assignment);

// c-TF-IDF (BERTopic style): each cluster's concatenated texts form one document; a term
// scores tf(t,c) * log(1 + A / f(t)), where tf is the term's share of the cluster's words, A
// is the average number of words per cluster and f(t) the term's count over all clusters.
// Tokens are lowercased runs of ASCII letters and digits (bytes >= 0x80 stay inside a token,
// so UTF-8 words survive); a small English stopword list, tokens shorter than 3 bytes and
// pure digits are dropped. Returns k lists, best first (ties by term), at most n_terms each.
// Throws Error if sizes differ or an assignment lies outside [0, k).
std::vector<std::vector<std::pair<std::string, double>>> ctfidf_terms(
    const std::vector<std::string>& texts, const std::vector<int>& assignment, int k, int n_terms);

}  // namespace cogumi
