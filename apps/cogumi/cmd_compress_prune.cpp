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
  p->add_flag("--uniform,!--uneven", o.uniform,
              "--uniform (default): the same width and head count in every layer (a llama GGUF); --uneven: widths "
              "ranked across layers (a deci GGUF)");
  p->add_option("--multiple", o.multiple, "FFN widths stay multiples of this (256 for k-quants; 0: auto)")
      ->check(CLI::Range(0, 65536))
      ->capture_default_str();
  p->add_option("--ctx", o.ctx, "Calibration chunk length in tokens")->check(CLI::Range(16, 16384))->capture_default_str();
  p->add_option("--chunks", o.max_chunks, "Calibration chunks used")->check(CLI::Range(1, 100000))->capture_default_str();
  p->add_option("--eval", o.eval, "Held-out text: KLD, top-1 agreement, perplexity against the original");
  p->add_option("--eval-chunks", o.eval_chunks, "Chunks of --eval text")->check(CLI::Range(1, 100000))->capture_default_str();
  p->add_option("--threads", o.n_threads, "CPU threads (0: all)")->check(CLI::Range(0, 1024));
  auto* rd = p->add_option("--recover-data", o.recover_data,
                           "Recovery: fine-tune the pruned model on this SFT JSONL (cogumi train's formats) and write "
                           "the result as OUT (the pruned model before it: OUT.unrecovered.gguf)");
  p->add_option("--recover-steps", o.recover_steps, "Recovery optimizer steps")
      ->check(CLI::Range(1, 1000000))->capture_default_str()->needs(rd);
  p->add_option("--recover-lr", o.recover_lr, "Recovery peak learning rate (10% warm-up, cosine)")
      ->check(finite_number())->check(CLI::Range(1e-9, 1.0))->capture_default_str()->needs(rd);
  p->add_flag("--recover-full", o.recover_full, "Recovery by full-parameter SFT (default: a LoRA merged into the weights)")
      ->needs(rd);
  p->add_option("--recover-rank", o.recover_rank, "Recovery LoRA rank (all seven linear modules)")
      ->check(CLI::Range(1, 4096))->capture_default_str()->needs(rd);
  p->add_option("--recover-batch", o.recover_batch, "Recovery sequences per step")
      ->check(CLI::Range(1, 4096))->capture_default_str()->needs(rd);
  p->add_option("--recover-seq-len", o.recover_seq_len, "Recovery tokens per packed row")
      ->check(CLI::Range(16, 65536))->capture_default_str()->needs(rd);
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
    if (r.recovered)
      fmt::print("recovery ({}): {} steps in {:.0f} s, loss {:.4f} -> {:.4f}\n", r.recovery.mode, r.recovery.steps,
                 r.recovery.seconds, r.recovery.first_loss, r.recovery.last_loss);
    auto quality = [](const char* what, const PruneQuality& q) {
      fmt::print("{} on {} tokens: KLD mean {:.5f} p99 {:.5f}, top-1 agreement {:.1f}%, perplexity {:.3f} -> {:.3f}\n",
                 what, q.n_tokens, q.kld_mean, q.kld_p99, 100.0 * q.top1_agree, q.ppl_base, q.ppl_pruned);
    };
    if (r.has_quality && r.recovered) quality("quality before recovery", r.quality_unrecovered);
    if (r.has_quality) quality(r.recovered ? "quality after recovery" : "quality", r.quality);
  });
}

}  // namespace cogumi::cli
