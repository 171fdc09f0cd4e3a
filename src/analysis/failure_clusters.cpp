#include "analysis/failure_clusters.h"

#include "analysis/failures.h"
#include "analysis/report.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/embed.h"

namespace cogumi {

FailureClusterResult cluster_failures(const FailureClusterOptions& o) {
  auto fails = load_failures(o.run);
  if (fails.size() < 2) fail("'{}' has {} failures; clustering needs at least 2", o.run.string(), fails.size());
  std::vector<std::string> texts;
  std::vector<ReportItem> items;
  for (auto& f : fails) {
    texts.push_back(f.value("question", ""));
    items.push_back({f.value("id", ""), f.value("category", ""), f.value("failure_type", ""), texts.back()});
  }
  EmbedOptions eo;
  eo.n_threads = o.n_threads;
  Embedder emb(Model::load(o.model), eo);
  std::vector<std::vector<float>> vecs;
  Progress prog("embed", int64_t(texts.size()), o.progress);
  for (size_t i = 0; i < texts.size(); i += 64) {
    std::vector<std::string> part(texts.begin() + long(i), texts.begin() + long(std::min(texts.size(), i + 64)));
    for (auto& v : emb.embed(part)) vecs.push_back(std::move(v));
    prog.update(int64_t(vecs.size()));
  }
  prog.finish();
  FailureClusterResult r;
  r.n_failures = fails.size();
  r.clustering = cluster_points(vecs, texts, o.cluster);
  if (!o.labeler.base_url.empty()) {
    for (auto& c : r.clustering.clusters) {
      std::vector<std::string> ex, terms;
      for (size_t i : c.representatives) ex.push_back(texts[i]);
      for (auto& [t, _] : c.top_terms) terms.push_back(t);
      c.label = llm_label(o.labeler, ex, terms);
    }
  }
  std::filesystem::create_directories(o.out_dir);
  std::string lines;
  for (auto& j : clusters_to_json(r.clustering, items)) lines += j.dump() + "\n";
  const std::string title = "Failure clusters: " + o.run.string();
  write_file_atomic(o.out_dir / "clusters.jsonl", lines);
  write_file_atomic(o.out_dir / "report.md", cluster_report_markdown(r.clustering, items, title));
  write_file_atomic(o.out_dir / "report.html", cluster_report_html(r.clustering, items, title));
  return r;
}

}  // namespace cogumi
