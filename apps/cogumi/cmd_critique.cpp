// cogumi critique train|eval: the critique classifier, P(answer correct | question, answer),
// trained on eval runs' items (route/critique.h).
#include <fmt/format.h>

#include "commands.h"
#include "route/critique.h"

namespace cogumi::cli {

namespace {

std::vector<std::filesystem::path> as_paths(const std::vector<std::string>& v) {
  return {v.begin(), v.end()};
}

void add_train(CLI::App& sub) {
  static std::vector<std::string> runs, dev;
  static std::string out;
  static CritiqueTrainOptions o;
  auto* t = sub.add_subcommand("train", "Train on eval runs' items (question, output, correct)");
  t->add_option("--runs", runs, "Eval run directories (or their items.jsonl) to train on")->required();
  t->add_option("--dev", dev, "Eval runs to report on");
  t->add_option("-o,--out", out, "Critique file to write (JSON)")->required();
  t->add_option("--epochs", o.epochs, "Passes over the data")->check(CLI::Range(1, 1000))->capture_default_str();
  t->add_option("--lr", o.lr, "AdaGrad step size")->check(CLI::Range(1e-6, 100.0))->capture_default_str();
  t->add_option("--l2", o.l2, "Weight decay")->check(CLI::Range(0.0, 0.99))->capture_default_str();
  t->add_option("--min-score", o.min_score, "Samples scoring below this leave the vote")
      ->check(CLI::Range(0, 10))
      ->capture_default_str();
  t->add_option("--hash-bits", o.features.hash_bits, "Feature buckets: 2^N")
      ->check(CLI::Range(10, 24))
      ->capture_default_str();
  t->add_option("--seed", o.seed, "Example order")->capture_default_str();
  t->callback([&] {
    const auto ex = load_critique_examples(as_paths(runs));
    const Critique c = Critique::train(ex, o);
    c.save(out);
    const CritiqueReport tr = evaluate_critique(c, ex);
    fmt::print("trained on {} answers ({} right) -> {}\ntrain: {}\n", ex.size(), tr.n_correct, out,
               tr.to_json().dump());
    if (!dev.empty())
      fmt::print("dev: {}\n", evaluate_critique(c, load_critique_examples(as_paths(dev))).to_json().dump());
  });
}

void add_eval(CLI::App& sub) {
  static std::vector<std::string> runs;
  static std::string file;
  auto* e = sub.add_subcommand("eval", "AUC, accuracy and the kept answers' accuracy on eval runs");
  e->add_option("critique", file, "Critique file")->required();
  e->add_option("--runs", runs, "Eval run directories (or their items.jsonl)")->required();
  e->callback([&] {
    const Critique c = Critique::load(file);
    const CritiqueReport r = evaluate_critique(c, load_critique_examples(as_paths(runs)));
    fmt::print("{}\n", r.to_json().dump());
  });
}

}  // namespace

void setup_critique(CLI::App& sub) {
  sub.require_subcommand(1);
  add_train(sub);
  add_eval(sub);
}

}  // namespace cogumi::cli
