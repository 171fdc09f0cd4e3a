// cogumi/analysis: `cogumi failures cluster` as a library call. Reads a run's failed items,
// turns each into features (whitened embeddings of the model under test or a dedicated
// embedding GGUF, hashed TF-IDF of question, output and reference, the failure type; see
// failure_features.h), partitions them within each benchmark category (partition.h), labels the
// clusters (c-TF-IDF, or an LLM behind an OpenAI-compatible endpoint) and writes
// clusters.jsonl, summary.json, report.md and report.html into the output directory.
//
// Reference labels (e.g. the nano curriculum's templates.jsonl) are read only after the
// clustering is done, to score it: the clusterer never sees them.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>

#include "analysis/failure_features.h"
#include "analysis/labeler.h"
#include "analysis/partition.h"

namespace cogumi {

struct FailureClusterOptions {
  std::filesystem::path run;    // eval run directory
  std::filesystem::path model;  // GGUF for embeddings; may be empty when features.w_embed is 0
  std::filesystem::path out_dir = "runs/failures";
  FailureFeatureOptions features;
  PartitionOptions partition;
  LabelerOptions labeler;       // empty base_url: c-TF-IDF labels
  std::string labeler_key_env;  // environment variable holding the labeler's API key, if any
  // JSONL {"id", "template"} per item (templates.jsonl of `cogumi nano data`): when set, the
  // clustering is scored against it (adjusted Rand index, purity) and the report shows it.
  std::filesystem::path reference;
  int n_threads = 0;  // 0: all cores
  bool progress = true;
  void validate() const;  // throws Error naming the option
};

struct FailureClusterResult {
  size_t n_failures = 0;
  Clustering clustering;
  nlohmann::json summary;  // what summary.json holds: sizes, purity, agreement with the reference
};

FailureClusterResult cluster_failures(const FailureClusterOptions& opts);

}  // namespace cogumi
