// cogumi data (part): dedup, decontaminate, pairs. Registered by setup_data (cmd_data.cpp).
#include <fmt/format.h>

#include <atomic>
#include <csignal>

#include "commands.h"
#include "core/error.h"
#include "data/dedup.h"
#include "data/minhash.h"
#include "data/pairs.h"
#include "eval/run.h"

namespace cogumi::cli {

namespace {

std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

struct DedupArgs {
  DedupOptions o;
  std::vector<std::string> inputs, benches;
  bool no_exact = false, no_near = false, quiet = false;
};

void add_decontam_options(CLI::App* c, DedupArgs& a, bool required) {
  auto* b = c->add_option(required ? "-b,--bench" : "-b,--decontaminate,--bench", a.benches,
                          "Benchmark test set KIND=PATH to decontaminate against (repeatable; kinds and paths as "
                          "`cogumi eval --bench`: gsm8k, mmlu, humaneval, mbpp, bbh, bfcl, jsonl)");
  if (required) b->required();
  c->add_option("--ngram", a.o.decontam.ngram, "Words per n-gram for contamination (13: GPT-3, lm-evaluation-harness)")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  c->add_option("--min-words", a.o.decontam.min_words,
                "Benchmark items shorter than --ngram words are matched whole from this many words; shorter ones are "
                "not checked")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
}

void add_common(CLI::App* c, DedupArgs& a) {
  c->add_option("inputs", a.inputs, "Input JSONL files (.gz too), read in order")->required();
  c->add_option("-o,--out", a.o.output, "Kept records (lines unchanged), written atomically")->required();
  c->add_option("--field", a.o.field,
                "The text compared: auto, messages, text, prompt+completion, instruction+input+output, or any "
                "FIELD+FIELD")
      ->capture_default_str();
  c->add_option("--report", a.o.report, "JSON report: counts per reason, examples, every contaminated record with "
                                        "its benchmark item");
  c->add_option("--removed", a.o.removed, "JSONL of every removed record: reason, kept twin (and estimated Jaccard) "
                                          "or benchmark item");
  c->add_option("--examples", a.o.examples, "Examples per reason in the report")->check(CLI::Range(0, 1000))->capture_default_str();
  c->add_option("--threads", a.o.threads, "Threads for signatures (0 = all cores)")->check(CLI::Range(0, 256))->capture_default_str();
  c->add_flag("-q,--quiet", a.quiet, "No progress on the terminal");
}

void run(DedupArgs& a) {
  a.o.inputs.assign(a.inputs.begin(), a.inputs.end());
  a.o.decontam.benches.clear();
  for (const auto& b : a.benches) a.o.decontam.benches.push_back(parse_bench_spec(b));
  if (a.no_exact) a.o.exact = false;
  if (a.no_near) a.o.near = false;
  a.o.progress = !a.quiet;
  g_cancel = false;
  a.o.cancel = &g_cancel;  // Ctrl-C: the temp output is removed, the output left as it was
  auto old = std::signal(SIGINT, on_sigint);
  DedupResult r;
  try {
    r = run_dedup(a.o);
  } catch (...) {
    std::signal(SIGINT, old);
    throw;
  }
  std::signal(SIGINT, old);
  fmt::print("{} records: kept {}, removed {} exact, {} near-duplicate, {} contaminated ({:.1f} s) -> {}\n", r.n_in,
             r.n_kept, r.n_exact, r.n_near, r.n_contaminated, r.seconds, a.o.output.string());
  const json& mh = r.report["minhash"];
  if (a.o.near)
    fmt::print("minhash: {} permutations, {} bands x {} rows, P(candidate | Jaccard {}) = {}; {:.0f} records/s\n",
               a.o.num_perm, mh["bands"].get<int>(), mh["rows"].get<int>(), a.o.threshold,
               mh["candidate_probability_at_threshold"].get<double>(), r.report["records_per_second_scan"].get<double>());
  if (!a.o.report.empty()) fmt::print("report: {}\n", a.o.report.string());
}

void setup_dedup(CLI::App& data) {
  static DedupArgs a;
  auto* c = data.add_subcommand("dedup", "Remove exact and near duplicates (MinHash LSH) and benchmark contamination");
  add_common(c, a);
  c->add_option("--threshold", a.o.threshold, "Jaccard similarity at which two records are near duplicates")
      ->check(CLI::Range(0.01, 0.99))
      ->capture_default_str();
  c->add_option("--num-perm", a.o.num_perm, "MinHash permutations")->check(CLI::Range(8, 1024))->capture_default_str();
  c->add_option("--shingle", a.o.shingle, "Words per shingle")->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--bands", a.o.bands, "LSH bands (0 = chosen for --threshold; with --rows)")->check(CLI::Range(0, 1024));
  c->add_option("--rows", a.o.rows, "Rows per band (with --bands)")->check(CLI::Range(0, 1024));
  c->add_option("--seed", a.o.seed, "Seed of the permutations")->capture_default_str();
  c->add_flag("--no-exact", a.no_exact, "Skip exact dedup");
  c->add_flag("--no-near", a.no_near, "Skip near dedup");
  add_decontam_options(c, a, false);
  c->callback([] { run(a); });
}

void setup_decontaminate(CLI::App& data) {
  static DedupArgs a;
  auto* c = data.add_subcommand("decontaminate", "Remove records that share an n-gram with a benchmark test set");
  add_common(c, a);
  add_decontam_options(c, a, true);
  c->callback([] {
    a.no_exact = a.no_near = true;
    run(a);
  });
}

void setup_pairs(CLI::App& data) {
  static PairsOptions po;
  static CritiqueOptions co;
  static std::string in, critique, out;
  static bool no_forward = false;
  auto* c = data.add_subcommand("pairs", "Forward and reverse (answer -> question) SFT pairs, or self-critique records");
  c->add_option("input", in, "JSONL of question/answer records (messages, instruction/output, prompt/completion, "
                             "question/answer)");
  c->add_option("-o,--out", out, "SFT JSONL (cogumi train -d FILE:WEIGHT reads it)")->required();
  c->add_flag("--reverse", po.reverse, "Also write reverse pairs (answer -> question)");
  c->add_flag("--no-forward", no_forward, "Only reverse pairs");
  c->add_option("--reverse-template", po.reverse_template, "Instruction of a reverse pair ({answer} is replaced)");
  c->add_option("--critique", critique,
                "Write self-critique records instead: from an eval run's failures (RUN or RUN/items.jsonl) or a JSONL "
                "of {task, bad_output, corrected_output, critique}");
  c->add_option("--critique-template", co.prompt_template, "Instruction of a critique record ({task}, {answer})");
  c->add_option("--format", po.format, "instruction ({instruction, output}) or messages ({messages})")
      ->check(CLI::IsMember({"instruction", "messages"}))
      ->capture_default_str();
  c->callback([] {
    if (critique.empty() == in.empty()) fail("give an input JSONL or --critique RUN (one of them)");
    if (!critique.empty()) {
      co.format = po.format;
      auto st = write_critique(critique, out, co);
      fmt::print("{} critique records from {} items ({} without a reference skipped) -> {}\n", st.n_records,
                 st.n_items, st.n_skipped, out);
      return;
    }
    po.forward = !no_forward;
    auto st = write_pairs(in, out, po);
    fmt::print("{} records -> {} forward + {} reverse pairs -> {}\n", st.n_records, st.n_forward, st.n_reverse, out);
  });
}

}  // namespace

void setup_data_dedup(CLI::App& data) {
  setup_dedup(data);
  setup_decontaminate(data);
  setup_pairs(data);
}

}  // namespace cogumi::cli
