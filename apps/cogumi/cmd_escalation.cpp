// cogumi escalation train|eval|detect: the detector of dissatisfied follow-ups
// (route/escalation.h).
#include <fmt/format.h>

#include "commands.h"
#include "core/io.h"
#include "route/escalation.h"

namespace cogumi::cli {

namespace {

void add_train(CLI::App& sub) {
  static EscalationJob j;
  auto* t = sub.add_subcommand("train", "Train a detector on labelled follow-ups; report on dev");
  t->add_option("--train", j.train_file, "Labelled JSONL (text, label, previous, family)")
      ->required();
  t->add_option("--dev", j.dev_file, "Labelled JSONL to report on");
  t->add_option("-o,--out", j.out, "Detector file to write (a router file, JSON)")->required();
  t->add_option("--threshold", j.opts.threshold, "Fire at P(escalate) >= this")
      ->check(CLI::Range(0.01, 0.99))
      ->capture_default_str();
  t->add_flag("--use-previous", j.opts.use_previous,
              "Add context markers from the previous assistant turn (off: no gain on dev)");
  t->add_flag("--negation", j.opts.negation,
              "Mark the words a negation governs (off: it lost on dev)");
  auto& tr = j.opts.train;
  t->add_option("--epochs", tr.epochs, "Passes over the data")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  t->add_option("--lr", tr.lr, "AdaGrad step size")
      ->check(CLI::Range(1e-6, 100.0))
      ->capture_default_str();
  t->add_option("--l2", tr.l2, "Weight decay")->check(CLI::Range(0.0, 0.99))->capture_default_str();
  t->add_option("--seed", tr.seed, "Example order")->capture_default_str();
  t->add_option("--hash-bits", tr.features.hash_bits, "Feature buckets: 2^N")
      ->check(CLI::Range(10, 24))
      ->capture_default_str();
  t->add_option("--word-ngrams", tr.features.word_ngram_max, "Word n-grams of 1..N words")
      ->check(CLI::Range(0, 4))
      ->capture_default_str();
  t->add_option("--char-min", tr.features.char_ngram_min, "Shortest character n-gram")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
  t->add_option("--char-max", tr.features.char_ngram_max, "Longest character n-gram")
      ->check(CLI::Range(0, 8))
      ->capture_default_str();
  t->callback([&] {
    EscalationJobResult r = train_escalation_job(j);
    fmt::print("trained on {} follow-ups -> {}\n", r.n_train, j.out.string());
    if (r.dev.n) fmt::print("dev: {}\n", r.dev.summary());
  });
}

void add_eval(CLI::App& sub) {
  static std::string detector, data, family;
  static double threshold = 0;
  static bool as_json = false;
  auto* e = sub.add_subcommand("eval", "Accuracy, precision/recall and latency on labelled rows");
  e->add_option("detector", detector, "Detector file")->required();
  e->add_option("--data", data, "Labelled JSONL")->required();
  e->add_option("--family", family, "Only rows whose family starts with this (e.g. hand:)");
  e->add_option("--threshold", threshold, "Replace the detector's threshold (0 = keep it)")
      ->check(finite_number())
      ->check(CLI::Range(0.0, 0.99));
  e->add_flag("--json", as_json, "Print the report as JSON");
  e->callback([&] {
    EscalationReport r = eval_escalation_job(detector, data, family, threshold);
    fmt::print("{}\n", as_json ? r.to_json().dump(2) : r.summary());
  });
}

void add_detect(CLI::App& sub) {
  static std::string detector, prompt, previous, prompts;
  auto* d = sub.add_subcommand("detect", "Whether a follow-up should escalate, with P(escalate)");
  d->add_option("detector", detector, "Detector file")->required();
  d->add_option("-p,--prompt", prompt, "The user's follow-up");
  d->add_option("--previous", previous, "The assistant turn it answers");
  d->add_option("--prompts", prompts, "JSONL of {text, previous?} rows");
  d->callback([&] {
    if (prompt.empty() == prompts.empty())
      throw CLI::ValidationError("give either -p/--prompt or --prompts");
    EscalationDetector det = EscalationDetector::load(detector);
    auto print = [&](const std::string& text, const std::string& prev) {
      EscalationVerdict v = det.detect(text, prev);
      fmt::print("{}\n", json{{"escalate", v.escalate},
                              {"probability", std::round(v.probability * 1e4) / 1e4}}
                             .dump());
    };
    if (!prompt.empty()) return print(prompt, previous);
    read_jsonl(prompts, [&](const json& o, size_t line) {
      const std::string where = fmt::format("{}:{}", prompts, line);
      print(get_string(o, "text", where),
            o.contains("previous") ? get_string(o, "previous", where) : "");
    });
  });
}

}  // namespace

void setup_escalation(CLI::App& sub) {
  sub.require_subcommand(1);
  add_train(sub);
  add_eval(sub);
  add_detect(sub);
}

}  // namespace cogumi::cli
