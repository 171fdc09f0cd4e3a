// cogumi nano data: the nano system's synthetic curriculum (four domains, upstream formats).
#include <fmt/format.h>

#include "commands.h"
#include "data/synth.h"

namespace cogumi::cli {

void setup_nano(CLI::App& sub) {
  sub.require_subcommand(1);
  static std::string out = "data/nano";
  static SynthOptions o;
  auto* data = sub.add_subcommand("data", "Write the synthetic curriculum: math (GSM8K), code (HumanEval), reasoning "
                                          "(MMLU CSV), automation (BFCL); train/dev/test splits that never overlap");
  data->add_option("-o,--out", out, "Output directory")->capture_default_str();
  data->add_option("--seed", o.seed, "Seed")->capture_default_str();
  data->add_option("--n-train", o.n_train, "Training items per domain")->capture_default_str();
  data->add_option("--n-dev", o.n_dev, "Dev items per domain")->capture_default_str();
  data->add_option("--n-test", o.n_test, "Test items per domain")->capture_default_str();
  data->add_option("--difficulty", o.difficulty, "1..4")->capture_default_str();
  data->callback([&] {
    SynthStats st = synth_write(out, o);
    for (auto& [domain, c] : st.counts) fmt::print("{:<11} train {:>6}  dev {:>5}  test {:>5}\n", domain, c[0], c[1], c[2]);
    fmt::print("wrote {}\n", out);
  });
}

}  // namespace cogumi::cli
