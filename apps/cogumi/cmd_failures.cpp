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
    static std::string run, model, out_dir = "runs/failures", reference;
    static bool across = false, no_whiten = false;
    auto* cl = sub.add_subcommand("cluster", "Group a run's failures into patterns; write clusters, summary and a report");
    cl->add_option("run", run, "Eval run directory")->required();
    cl->add_option("-m,--model", model, "GGUF for embeddings (the model under test or a dedicated embedding model)");
    cl->add_option("-o,--out", out_dir, "Output directory")->capture_default_str();
    cl->add_option("-k,--k", o.partition.k, "Clusters per category (0 = choose by silhouette)")
        ->check(CLI::Range(0, 10000))
        ->capture_default_str();
    cl->add_option("--k-max", o.partition.k_max, "Largest k per category tried with -k 0")->check(CLI::Range(1, 100))->capture_default_str();
    cl->add_option("--min-size", o.partition.min_size, "Smallest cluster kept; smaller ones join their neighbour (0 = max(5, 2% of failures))")
        ->check(CLI::Range(0, 1000000))
        ->capture_default_str();
    cl->add_option("--min-silhouette", o.partition.min_silhouette, "A category is split only above this silhouette")
        ->check(CLI::Range(-1.0, 1.0))
        ->capture_default_str();
    cl->add_flag("--across", across, "Cluster across categories instead of within each");
    cl->add_option("--w-embed", o.features.w_embed, "Weight of the embeddings (0 = none, no model needed)")->check(CLI::Range(0.0, 100.0))->capture_default_str();
    cl->add_option("--w-text", o.features.w_text, "Weight of the question/output/reference text features")->check(CLI::Range(0.0, 100.0))->capture_default_str();
    cl->add_option("--w-type", o.features.w_type, "Weight of the failure type")->check(CLI::Range(0.0, 100.0))->capture_default_str();
    cl->add_flag("--no-whiten", no_whiten, "Use the embeddings as the model gives them");
    cl->add_option("--whiten-dims", o.features.whiten_dims, "Principal components kept when whitening")->check(CLI::Range(2, 1024))->capture_default_str();
    cl->add_option("--text-dims", o.features.text_dims, "Principal components kept of the text features (0 = all)")->check(CLI::Range(0, 1024))->capture_default_str();
    cl->add_option("--idf-power", o.features.idf_power, "Exponent of the text features' IDF (1 = TF-IDF, 0 = term frequency)")->check(CLI::Range(0.0, 4.0))->capture_default_str();
    cl->add_option("--seed", o.partition.kmeans.seed, "Seed")->capture_default_str();
    cl->add_option("--reference", reference, "JSONL {id, template} (nano data's templates.jsonl): score the clusters against it");
    cl->add_option("--labeler", o.labeler.base_url, "OpenAI-compatible base URL for LLM labels (http:// or https://)");
    cl->add_option("--labeler-model", o.labeler.model, "Model name sent to the labeler")->capture_default_str();
    cl->add_option("--labeler-key-env", o.labeler_key_env, "Environment variable holding the labeler's API key");
    cl->add_option("--threads", o.n_threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
    cl->callback([&] {
      engine_set_verbose(globals().verbose);
      o.run = run;
      o.model = model;
      o.out_dir = out_dir;
      o.reference = reference;
      o.partition.by_group = !across;
      o.features.whiten = !no_whiten;
      FailureClusterResult r = cluster_failures(o);
      fmt::print("{} failures in {} clusters (silhouette {:.3f}, largest {:.1f}%)\n", r.n_failures, r.clustering.k,
                 r.clustering.silhouette, 100 * r.summary["largest_share"].get<double>());
      for (auto& c : r.clustering.clusters) fmt::print("  [{}] {:>4}  {}\n", c.id, c.members.size(), c.label);
      if (r.summary.contains("reference"))
        fmt::print("against {}: ARI {:.3f}, purity {:.3f}\n", reference, r.summary["reference"]["ari"].get<double>(),
                   r.summary["reference"]["purity"].get<double>());
      fmt::print("wrote {}/clusters.jsonl, summary.json, report.md, report.html\n", out_dir);
    });
  }
}

}  // namespace cogumi::cli
