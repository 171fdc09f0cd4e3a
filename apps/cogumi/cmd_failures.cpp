// cogumi failures extract|cluster: a run's failures as training data, and their structure.
#include <fmt/format.h>

#include "analysis/cluster.h"
#include "analysis/failures.h"
#include "analysis/labeler.h"
#include "analysis/report.h"
#include "commands.h"
#include "core/error.h"
#include "core/progress.h"
#include "engine/embed.h"

namespace cogumi::cli {

void setup_failures(CLI::App& sub) {
  sub.require_subcommand(1);
  {
    static std::string run, out, hard;
    auto* ex = sub.add_subcommand("extract", "Every failure of a run as training JSONL {instruction, output}");
    ex->add_option("run", run, "Eval run directory")->required();
    ex->add_option("-o,--out", out, "Training-ready JSONL")->required();
    ex->add_option("--hard", hard, "Also write {instruction, reference_answer, category} here");
    ex->callback([&] {
      auto st = extract_failures(run, out, hard);
      fmt::print("{} failures of {} items -> {}\n", st.n_failures, st.n_items, out);
      for (auto& [t, n] : st.by_type) fmt::print("  {:<18} {}\n", t, n);
    });
  }
  {
    static std::string run, model, out_dir = "runs/failures";
    static ClusterOptions co;
    static LabelerOptions lo;
    static int n_threads = 0;
    auto* cl = sub.add_subcommand("cluster", "Embed, k-means and label a run's failures; write clusters and a report");
    cl->add_option("run", run, "Eval run directory")->required();
    cl->add_option("-m,--model", model, "GGUF for embeddings (the model under test or an embedding model)")->required();
    cl->add_option("-o,--out", out_dir, "Output directory")->capture_default_str();
    cl->add_option("-k,--k", co.k, "Clusters (0 = choose by silhouette)")->capture_default_str();
    cl->add_option("--k-max", co.k_max, "Largest k tried with -k 0")->capture_default_str();
    cl->add_option("--seed", co.seed, "Seed")->capture_default_str();
    cl->add_option("--labeler", lo.base_url, "OpenAI-compatible base URL for LLM labels (e.g. http://127.0.0.1:8080/v1)");
    cl->add_option("--labeler-model", lo.model, "Model name sent to the labeler")->capture_default_str();
    cl->add_option("--threads", n_threads, "CPU threads (0 = all)");
    cl->callback([&] {
      engine_set_verbose(globals().verbose);
      auto fails = load_failures(run);
      if (fails.size() < 2) fail("'{}' has {} failures; clustering needs at least 2", run, fails.size());
      std::vector<std::string> texts;
      std::vector<ReportItem> items;
      for (auto& f : fails) {
        texts.push_back(f.value("question", ""));
        items.push_back({f.value("id", ""), f.value("category", ""), f.value("failure_type", ""), texts.back()});
      }
      auto m = Model::load(model);
      EmbedOptions eo;
      eo.n_threads = n_threads;
      Embedder emb(m, eo);
      std::vector<std::vector<float>> vecs;
      Progress prog("embed", int64_t(texts.size()));
      for (size_t i = 0; i < texts.size(); i += 64) {
        std::vector<std::string> part(texts.begin() + i, texts.begin() + std::min(texts.size(), i + 64));
        for (auto& v : emb.embed(part)) vecs.push_back(std::move(v));
        prog.update(int64_t(vecs.size()));
      }
      prog.finish();
      Clustering c = cluster_points(vecs, texts, co);
      if (!lo.base_url.empty()) {
        for (auto& cluster : c.clusters) {
          std::vector<std::string> ex, terms;
          for (size_t r : cluster.representatives) ex.push_back(texts[r]);
          for (auto& [t, _] : cluster.top_terms) terms.push_back(t);
          cluster.label = llm_label(lo, ex, terms);
        }
      }
      fs::create_directories(out_dir);
      std::string lines;
      for (auto& j : clusters_to_json(c, items)) lines += j.dump() + "\n";
      write_file_atomic(fs::path(out_dir) / "clusters.jsonl", lines);
      write_file_atomic(fs::path(out_dir) / "report.md", cluster_report_markdown(c, items, "Failure clusters: " + run));
      write_file_atomic(fs::path(out_dir) / "report.html", cluster_report_html(c, items, "Failure clusters: " + run));
      fmt::print("{} failures in {} clusters (silhouette {:.3f})\n", fails.size(), c.k, c.silhouette);
      for (auto& cluster : c.clusters)
        fmt::print("  [{}] {:>4}  {}\n", cluster.id, cluster.members.size(), cluster.label);
      fmt::print("wrote {}/clusters.jsonl, report.md, report.html\n", out_dir);
    });
  }
}

}  // namespace cogumi::cli
