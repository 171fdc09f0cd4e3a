// cogumi/analysis: `cogumi failures cluster` as a library call. Embeds a run's failed items
// (engine embeddings of the model under test or a dedicated embedding GGUF), clusters them,
// labels the clusters (c-TF-IDF, or an LLM behind an OpenAI-compatible endpoint), and writes
// clusters.jsonl, report.md and report.html into the output directory.
#pragma once

#include <filesystem>

#include "analysis/cluster.h"
#include "analysis/labeler.h"

namespace cogumi {

struct FailureClusterOptions {
  std::filesystem::path run;      // eval run directory
  std::filesystem::path model;    // GGUF for embeddings
  std::filesystem::path out_dir = "runs/failures";
  ClusterOptions cluster;
  LabelerOptions labeler;         // empty base_url: c-TF-IDF labels
  int n_threads = 0;
  bool progress = true;
};

struct FailureClusterResult {
  size_t n_failures = 0;
  Clustering clustering;
};

FailureClusterResult cluster_failures(const FailureClusterOptions& opts);

}  // namespace cogumi
