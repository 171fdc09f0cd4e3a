// cogumi failures extract|cluster: a run's failures as training data, and their structure.
#include <fmt/format.h>

#include "analysis/failure_clusters.h"
#include "analysis/failures.h"
#include "commands.h"
#include "engine/model.h"

namespace cogumi::cli {

void setup_failures(CLI::App& sub) {
  sub.require_subcommand(1);
  {
    static std::string run, out, hard, form = "eval";
    auto* ex = sub.add_subcommand("extract", "Every failure of a run as training JSONL");
    ex->add_option("run", run, "Eval run directory")->required();
    ex->add_option("-o,--out", out, "Training-ready JSONL")->required();
    ex->add_option("--hard", hard, "Also write {instruction, reference_answer, category} here");
    ex->add_option("--form", form,
                   "eval: asked as the eval asked it ({prompt, completion}, or {instruction, output} for --chat runs); "
                   "question: {instruction: bare question, output: reference solution}")
        ->check(CLI::IsMember({"eval", "question"}))
        ->capture_default_str();
    ex->callback([&] {
      auto st = extract_failures(run, out, hard, form == "eval" ? FailureForm::kEval : FailureForm::kQuestion);
      fmt::print("{} failures of {} items -> {}\n", st.n_failures, st.n_items, out);
      for (auto& [t, n] : st.by_type) fmt::print("  {:<18} {}\n", t, n);
    });
  }
  {
    static FailureClusterOptions o;
    static std::string run, model, out_dir = "runs/failures";
    auto* cl = sub.add_subcommand("cluster", "Embed, k-means and label a run's failures; write clusters and a report");
    cl->add_option("run", run, "Eval run directory")->required();
    cl->add_option("-m,--model", model, "GGUF for embeddings (the model under test or an embedding model)")->required();
    cl->add_option("-o,--out", out_dir, "Output directory")->capture_default_str();
    cl->add_option("-k,--k", o.cluster.k, "Clusters (0 = choose by silhouette)")->capture_default_str();
    cl->add_option("--k-max", o.cluster.k_max, "Largest k tried with -k 0")->capture_default_str();
    cl->add_option("--seed", o.cluster.seed, "Seed")->capture_default_str();
    cl->add_option("--labeler", o.labeler.base_url, "OpenAI-compatible base URL for LLM labels (e.g. http://127.0.0.1:8080/v1)");
    cl->add_option("--labeler-model", o.labeler.model, "Model name sent to the labeler")->capture_default_str();
    cl->add_option("--threads", o.n_threads, "CPU threads (0 = all)");
    cl->callback([&] {
      engine_set_verbose(globals().verbose);
      o.run = run;
      o.model = model;
      o.out_dir = out_dir;
      FailureClusterResult r = cluster_failures(o);
      fmt::print("{} failures in {} clusters (silhouette {:.3f})\n", r.n_failures, r.clustering.k, r.clustering.silhouette);
      for (auto& c : r.clustering.clusters) fmt::print("  [{}] {:>4}  {}\n", c.id, c.members.size(), c.label);
      fmt::print("wrote {}/clusters.jsonl, report.md, report.html\n", out_dir);
    });
  }
}

}  // namespace cogumi::cli
