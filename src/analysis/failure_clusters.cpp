#include "analysis/failure_clusters.h"

#include <algorithm>
#include <cstdlib>
#include <map>

#include "analysis/failures.h"
#include "analysis/report.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/embed.h"

namespace cogumi {
namespace {

std::vector<std::vector<float>> embed_texts(const FailureClusterOptions& o,
                                            const std::vector<std::string>& texts) {
  EmbedOptions eo;
  eo.n_threads = o.n_threads;
  Embedder emb(Model::load(o.model), eo);
  std::vector<std::vector<float>> vecs;
  Progress prog("embed", int64_t(texts.size()), o.progress);
  for (size_t i = 0; i < texts.size(); i += 64) {
    std::vector<std::string> part(texts.begin() + long(i),
                                  texts.begin() + long(std::min(texts.size(), i + 64)));
    for (auto& v : emb.embed(part)) vecs.push_back(std::move(v));
    prog.update(int64_t(vecs.size()));
  }
  prog.finish();
  return vecs;
}

std::string text_of(const json& item, const char* field) {
  auto it = item.find(field);
  if (it == item.end() || it->is_null()) return "";
  return it->is_string() ? it->get<std::string>() : it->dump();
}

// Reference label per failure, by id; every failure must have one.
std::vector<std::string> load_reference(const fs::path& path,
                                        const std::vector<ReportItem>& items) {
  std::map<std::string, std::string> by_id;
  read_jsonl(path, [&](const json& j, size_t line) {
    if (!j.is_object() || !j.contains("id") || !j["id"].is_string() || !j.contains("template") ||
        !j["template"].is_string())
      fail("{}:{}: a reference line needs string fields \"id\" and \"template\"", path.string(),
           line);
    by_id[j["id"].get<std::string>()] = j["template"].get<std::string>();
  });
  std::vector<std::string> out;
  for (const auto& it : items) {
    auto f = by_id.find(it.id);
    if (f == by_id.end())
      fail("reference '{}' has no label for failure '{}'", path.string(), it.id);
    out.push_back(f->second);
  }
  return out;
}

std::vector<int> codes(const std::vector<std::string>& labels) {
  std::map<std::string, int> ids;
  std::vector<int> out;
  for (const auto& l : labels) out.push_back(ids.emplace(l, int(ids.size())).first->second);
  return out;
}

// Purity of the clustering against each labeling a user already knows (category, failure type)
// and, when given, the reference; the largest cluster's share and how pure it is.
json summarize(const Clustering& c, const std::vector<ReportItem>& items,
               const std::vector<std::string>& reference) {
  std::vector<std::string> cats, types;
  for (const auto& it : items) cats.push_back(it.category), types.push_back(it.failure_type);
  json s = {{"n_failures", items.size()},
            {"k", c.k},
            {"silhouette", c.silhouette},
            {"purity_category", purity(c.assignment, codes(cats))},
            {"purity_failure_type", purity(c.assignment, codes(types))}};
  json sizes = json::array();
  for (const auto& cl : c.clusters) sizes.push_back(cl.members.size());
  s["sizes"] = sizes;
  s["largest_share"] = items.empty() || c.clusters.empty()
                           ? 0.0
                           : double(c.clusters[0].members.size()) / double(items.size());
  if (!reference.empty()) {
    auto ref = codes(reference);
    s["reference"] = {{"ari", adjusted_rand_index(c.assignment, ref)},
                      {"purity", purity(c.assignment, ref)},
                      {"n_labels", 1 + *std::max_element(ref.begin(), ref.end())}};
    if (!c.clusters.empty()) {
      std::map<std::string, size_t> in_largest;
      for (size_t i : c.clusters[0].members) ++in_largest[reference[i]];
      size_t top = 0;
      for (auto& [_, n] : in_largest) top = std::max(top, n);
      s["reference"]["largest_cluster_purity"] = double(top) / double(c.clusters[0].members.size());
    }
  }
  return s;
}

void label_with_llm(const FailureClusterOptions& o, Clustering& c,
                    const std::vector<std::string>& texts) {
  LabelerOptions ep = o.labeler;
  if (!o.labeler_key_env.empty()) {
    const char* key = std::getenv(o.labeler_key_env.c_str());
    if (!key || !*key)
      fail("--labeler-key-env: environment variable {} is not set", o.labeler_key_env);
    ep.api_key = key;
  }
  for (auto& cl : c.clusters) {
    std::vector<std::string> ex, terms;
    for (size_t i : cl.representatives) ex.push_back(texts[i]);
    for (auto& [t, _] : cl.top_terms) terms.push_back(t);
    std::string label = llm_label(ep, ex, terms);
    if (!label.empty()) cl.label = (cl.group.empty() ? "" : cl.group + ": ") + label;
  }
}

}  // namespace

void FailureClusterOptions::validate() const {
  if (run.empty()) fail("no run directory given");
  if (features.needs_embeddings() && model.empty())
    fail(
        "no embedding model given (-m); pass one, or --w-embed 0 to cluster on text and failure "
        "type only");
  if (n_threads < 0 || n_threads > 1024)
    fail("n_threads (--threads) must be in 0..1024 (0 = all), got {}", n_threads);
  features.validate();
  partition.validate();
}

FailureClusterResult cluster_failures(const FailureClusterOptions& o) {
  o.validate();
  auto fails = load_failures(o.run);
  if (fails.size() < 2)
    fail("'{}' has {} failures; clustering needs at least 2", o.run.string(), fails.size());
  std::vector<std::string> texts, groups;
  std::vector<ReportItem> items;
  std::vector<FailureText> ft;
  for (auto& f : fails) {
    texts.push_back(text_of(f, "question"));
    // The benchmark, not the category: a loader's category can be a file name ("test") or one
    // of MMLU's 57 subjects, too fine a split to find patterns in.
    std::string bench = text_of(f, "benchmark");
    groups.push_back(bench.empty() ? text_of(f, "category") : bench);
    items.push_back(
        {text_of(f, "id"), groups.back(), text_of(f, "failure_type"), texts.back(), ""});
    ft.push_back(
        {texts.back(), text_of(f, "output"), text_of(f, "reference"), items.back().failure_type});
  }
  std::vector<std::vector<float>> vecs;
  if (o.features.needs_embeddings()) vecs = embed_texts(o, texts);
  FailureClusterResult r;
  r.n_failures = fails.size();
  r.clustering =
      partition_points(failure_features(ft, vecs, o.features), groups, texts, o.partition);
  if (!o.labeler.base_url.empty()) label_with_llm(o, r.clustering, texts);
  std::vector<std::string> reference;
  if (!o.reference.empty()) {
    reference = load_reference(o.reference, items);
    for (size_t i = 0; i < items.size(); ++i) items[i].reference = reference[i];
  }
  r.summary = summarize(r.clustering, items, reference);
  std::filesystem::create_directories(o.out_dir);
  std::string lines;
  for (auto& j : clusters_to_json(r.clustering, items)) lines += j.dump() + "\n";
  const std::string title = "Failure clusters: " + o.run.string();
  write_file_atomic(o.out_dir / "clusters.jsonl", lines);
  write_file_atomic(o.out_dir / "summary.json", r.summary.dump(2) + "\n");
  write_file_atomic(o.out_dir / "report.md", cluster_report_markdown(r.clustering, items, title));
  write_file_atomic(o.out_dir / "report.html", cluster_report_html(r.clustering, items, title));
  return r;
}

}  // namespace cogumi
