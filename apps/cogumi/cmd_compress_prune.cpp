// cogumi compress prune: structured pruning (FFN neurons, KV groups, layers) to a llama or deci GGUF.
// Registered by setup_compress (cmd_compress.cpp).
#include <fmt/format.h>

#include <sstream>

#include "commands.h"
#include "compress/prune.h"
#include "engine/model.h"

namespace cogumi::cli {

void setup_compress_prune(CLI::App& compress) {
  static PruneOptions o;
  static std::string what = "ffn";
  static bool json_out = false;
  auto* p = compress.add_subcommand(
      "prune", "Structured pruning by calibration importance: FFN neurons, attention heads (KV groups), layers");
  p->add_option("-m,--model", o.model, "Model GGUF (F32/F16/BF16, llama or deci)")->required();
  p->add_option("--calib", o.calib, "Calibration text (.jsonl: every string value; else plain text)")->required();
  p->add_option("-o,--out", o.out, "Pruned GGUF (OUT.prune.json: the summary)")->required();
  p->add_option("--level", o.level, "Fraction of the layers' parameters to remove (0.1, 0.2, 0.3, 0.5)")
      ->check(finite_number())
      ->check(CLI::Range(0.0, 0.9))
      ->capture_default_str();
  p->add_option("--what", what, "Comma list of ffn, heads, layers (the budget is split by their size)")
      ->capture_default_str();
  p->add_flag("--uniform", o.uniform, "The same width and head count in every layer (a llama GGUF the trainer reads)");
  p->add_option("--multiple", o.multiple, "FFN widths stay multiples of this (256 for k-quants; 0: auto)")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str();
  p->add_option("--ctx", o.ctx, "Calibration chunk length in tokens")->check(CLI::Range(16, 16384))->capture_default_str();
  p->add_option("--chunks", o.max_chunks, "Calibration chunks used")->check(CLI::Range(1, 100000))->capture_default_str();
  p->add_option("--eval", o.eval, "Held-out text: KLD, top-1 agreement, perplexity against the original");
  p->add_option("--eval-chunks", o.eval_chunks, "Chunks of --eval text")->check(CLI::Range(1, 100000))->capture_default_str();
  p->add_option("--threads", o.n_threads, "CPU threads (0: all)")->check(CLI::Range(0, 1024));
  p->add_flag("--json", json_out, "Print the summary as JSON");
  p->callback([&] {
    engine_set_verbose(globals().verbose);
    o.what.clear();
    std::stringstream ss(what);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) o.what.push_back(t);
    const PruneResult r = prune_model(o);
    if (json_out) {
      fmt::print("{}\n", r.to_json().dump(2));
      return;
    }
    fmt::print("wrote {} ({}, {:.1f} MB): {} -> {} parameters ({:.1f}% of all, {:.1f}% of the layers' removed)\n",
               o.out.string(), r.arch, double(r.file_bytes) / 1e6, r.params_before, r.params_after,
               100.0 * (1.0 - double(r.params_after) / double(r.params_before)),
               100.0 * (1.0 - double(r.layer_params_after) / double(r.layer_params_before)));
    for (const auto& l : r.layers)
      fmt::print("  layer {:>3} (was {:>3}): n_ff {:>6}  heads {:>3}  kv heads {:>3}\n", &l - r.layers.data(),
                 l.source_layer, l.n_ff, l.n_head, l.n_head_kv);
    if (r.has_quality)
      fmt::print("quality on {} tokens: KLD mean {:.5f} p99 {:.5f}, top-1 agreement {:.1f}%, perplexity {:.3f} -> {:.3f}\n",
                 r.quality.n_tokens, r.quality.kld_mean, r.quality.kld_p99, 100.0 * r.quality.top1_agree,
                 r.quality.ppl_base, r.quality.ppl_pruned);
  });
}

}  // namespace cogumi::cli
