// cogumi compress imatrix|report: the importance matrix and the quality report (registered by
// setup_compress, cmd_compress.cpp). Quantizing is `cogumi model quantize` (cmd_model.cpp).
#include <fmt/format.h>

#include "commands.h"
#include "compress/imatrix.h"
#include "compress/kld.h"
#include "core/io.h"
#include "engine/model.h"

namespace cogumi::cli {

namespace {

void setup_imatrix(CLI::App& compress) {
  static ImatrixOptions o;
  auto* c = compress.add_subcommand("imatrix",
                                    "Activation statistics (importance matrix) over calibration text, in llama.cpp's "
                                    "imatrix GGUF format (for model quantize --imatrix or llama-quantize --imatrix)");
  c->add_option("-m,--model", o.model, "Model GGUF (F16/F32 preferred)")->required();
  c->add_option("-f,--file", o.data, "Calibration data: text, or .jsonl (every string value)")->required();
  c->add_option("-o,--output", o.out, "imatrix GGUF to write")->required();
  c->add_option("--chunk", o.chunk, "Tokens per chunk (llama-imatrix -c)")->capture_default_str()->check(CLI::Range(16, 1 << 20));
  c->add_option("--chunks", o.chunks, "At most this many chunks (0 = all)")->capture_default_str()->check(CLI::Range(0, 4096));
  c->add_flag("--process-output", o.process_output, "Also collect output.weight");
  c->add_option("--threads", o.n_threads, "Threads (0 = all)")->check(CLI::Range(0, 4096));
  c->callback([] {
    engine_set_verbose(globals().verbose);
    ImatrixResult r = compute_imatrix(o);
    fmt::print("wrote {}: {} weights, {} chunks x {} tokens, {:.1f} s\n", o.out.string(), r.n_entries, r.n_chunks,
               o.chunk, r.seconds);
  });
}

void setup_report(CLI::App& compress) {
  static ReportOptions o;
  static std::vector<std::string> models;
  static std::string json_out;
  auto* c = compress.add_subcommand("report",
                                    "Quality cost of compressed models against their base: KL divergence, top-1 "
                                    "agreement, perplexity ratio (and accuracy delta with --bench/--eval-limit)");
  c->add_option("models", models, "BASE CANDIDATE [CANDIDATE...]")->required()->expected(2, 1000);
  c->add_option("--data", o.data, "Text (or .jsonl) to score on")->required();
  c->add_option("--ctx", o.ctx, "Tokens per chunk (second half scored)")->capture_default_str()->check(at_least(16));
  c->add_option("--chunks", o.chunks, "At most this many chunks (0 = all)")->capture_default_str()->check(CLI::Range(0, 4096));
  c->add_option("--bench", o.benches, "Benchmark KIND=PATH for the accuracy delta (repeatable)");
  c->add_option("--eval-limit", o.eval_limit, "Items per benchmark for the accuracy delta (0 = none)")
      ->check(CLI::Range(0, 4096));
  c->add_option("--eval-dir", o.eval_dir, "Where the accuracy runs go")->capture_default_str();
  c->add_option("--threads", o.n_threads, "Threads (0 = all)")->check(CLI::Range(0, 4096));
  c->add_option("--json", json_out, "Also write the report as JSON here");
  c->callback([] {
    engine_set_verbose(globals().verbose);
    o.base = models.front();
    o.candidates.assign(models.begin() + 1, models.end());
    ReportResult r = compress_report(o);
    if (!json_out.empty()) write_file_atomic(json_out, report_json(r).dump(2) + "\n");
    if (globals().json)
      fmt::print("{}\n", report_json(r).dump(2));
    else
      fmt::print("{}", report_table(r));
  });
}

}  // namespace

void setup_compress_quant(CLI::App& compress) {
  setup_imatrix(compress);
  setup_report(compress);
}

}  // namespace cogumi::cli
