// cogumi nano data: the nano system's synthetic curriculum (four domains, upstream formats).
#include <fmt/format.h>

#include "commands.h"
#include "data/synth.h"
#include "engine/model.h"
#include "pipeline/nano.h"

namespace cogumi::cli {

void setup_nano(CLI::App& sub) {
  sub.require_subcommand(1);
  static std::string out = "data/nano";
  static SynthOptions o;
  auto* data = sub.add_subcommand("data", "Write the synthetic curriculum: math (GSM8K), code (HumanEval), reasoning "
                                          "(MMLU CSV), automation (BFCL); train/dev/test splits that never overlap");
  data->add_option("-o,--out", out, "Output directory")->capture_default_str();
  data->add_option("--seed", o.seed, "Seed")->capture_default_str();
  data->add_option("--n-train", o.n_train, "Training items per domain")->check(at_least(1))->capture_default_str();
  data->add_option("--n-dev", o.n_dev, "Dev items per domain")->check(at_least(1))->capture_default_str();
  data->add_option("--n-test", o.n_test, "Test items per domain")->check(at_least(1))->capture_default_str();
  static std::string difficulty = "2";
  data->add_option("--difficulty", difficulty, "1..4 for every domain, or per domain: 2,math=1,code=3")
      ->capture_default_str();
  data->add_option("--n-mix", o.n_mix, "Training items per domain in the base's mix/train.jsonl (0 = all)")->check(at_least(0))
      ->capture_default_str();
  data->add_option("--n-copy", o.n_copy,
                   "Copying and lookup items added to mix/train.jsonl, also in mix/copy.jsonl (0-1000000)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  data->add_option("--n-choice", o.n_choice,
                   "Option-lookup items (\"Which option says: X\" in the multiple-choice prompt) added to mix/train.jsonl, "
                   "also in mix/choice.jsonl (0-1000000)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  data->callback([&] {
    o.set_difficulty(difficulty);
    SynthStats st = synth_write(out, o);
    for (auto& [domain, c] : st.counts) fmt::print("{:<11} train {:>6}  dev {:>5}  test {:>5}\n", domain, c[0], c[1], c[2]);
    fmt::print("wrote {}\n", out);
  });

  static NanoBaseOptions b;
  auto* base = sub.add_subcommand("base", "Train the nano base model from scratch on the curriculum (on a GPU when there is one: "
                                          "392 s on an H100 shared with two other runs; on 2 CPU cores ~80 minutes at the "
                                          "defaults, ~4,200 tokens/s): DIR/base.gguf (F16) and DIR/recipe.json");
  base->add_option("--dir", b.dir, "Work directory")->capture_default_str();
  base->add_option("--seed", b.seed, "Seed (curriculum, weights, data order)")->capture_default_str();
  base->add_option("--steps", b.steps, "Optimizer steps")->check(at_least(1))->capture_default_str();
  base->add_option("--lr", b.lr, "Peak learning rate")->check(positive_number())->capture_default_str();
  base->add_option("--difficulty", b.difficulty, "Curriculum difficulty 1..4, or per domain: 2,math=1")
      ->capture_default_str();
  base->add_option("--n-train", b.n_train, "Training items per domain")->check(at_least(1))->capture_default_str();
  base->add_option("--n-mix", b.n_mix, "Training items per domain the base trains on (0 = all)")->check(at_least(0))->capture_default_str();
  base->add_option("--n-copy", b.n_copy,
                   "Copying and lookup items added to the base's mix (a name, number or call carried over from the "
                   "prompt; 0-1000000)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  base->add_option("--n-choice", b.n_choice,
                   "Option-lookup items added to the base's mix (the letter of the option a multiple-choice answer "
                   "names; 0-1000000)")
      ->check(CLI::Range(0, 1000000))
      ->capture_default_str();
  base->add_flag("--vocab-split-punct", b.vocab_split_punct,
                 "Fit the vocabulary with no merge joining letters to punctuation (\"B. Mia\" -> [B][.][ Mia]: a name or "
                 "option letter is the same token wherever it is copied from)");
  base->add_option("--batch", b.batch, "Sequences (packed rows) per step")->check(at_least(1))->capture_default_str();
  base->add_option("--layers", b.n_layer, "Transformer layers")->check(CLI::Range(1, 256))->capture_default_str();
  base->add_option("--seq-len", b.seq_len, "Tokens per packed row")->check(CLI::Range(8, 1 << 16))->capture_default_str();
  base->add_option("--warmup", b.warmup, "Warm-up steps")->check(at_least(0))->capture_default_str();
  base->add_flag("--cpu", b.cpu_only, "Train on the CPU even when a GPU is present");
  base->add_option("--threads", b.n_threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  base->callback([&] {
    engine_set_verbose(globals().verbose);
    json r = nano_base(b);
    fmt::print("wrote {} ({} bytes, sha256 {}) in {:.0f} s; recipe {}\n", (b.dir / "base.gguf").string(),
               r["bytes"].get<uint64_t>(), r["sha256"].get<std::string>(), r["seconds"].get<double>(),
               (b.dir / "recipe.json").string());
  });

  static NanoLoopOptions l;
  auto* loop = sub.add_subcommand("loop", "The first improvement loop as a pipeline (the stages of `cogumi run`): evaluate the "
                                          "base, mine its failures, train one LoRA modifier per domain, evaluate base + each "
                                          "modifier, route, compare. For the main job use `cogumi run configs/nano.yaml`");
  loop->add_option("--dir", l.dir, "Work directory (the pipeline's stages/, report, loop.json, table.md)")->capture_default_str();
  loop->add_option("--base", l.base, "Base GGUF (default DIR/base.gguf)");
  loop->add_option("--data", l.data, "Curriculum directory (default DIR/data)");
  loop->add_option("--eval-split", l.eval_split, "Compare on 'test' (report) or 'dev' (choose settings): runs/*-dev, table-dev.md")
      ->check(CLI::IsMember({"test", "dev"}))
      ->capture_default_str();
  loop->add_option("--test-limit", l.test_limit, "Items per domain of the eval split (0 = all)")->check(at_least(0))->capture_default_str();
  loop->add_option("--mine-limit", l.mine_limit, "Training items per domain evaluated for failures")->check(at_least(0))->capture_default_str();
  loop->add_option("--failure-weight", l.failure_weight, "Weight of the mined failures (2 = each twice)")->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  loop->add_option("--domain-share", l.domain_share, "Weight of the domain's own training set beside its failures")->check(finite_number())->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  loop->add_option("--replay", l.replay, "Weight of the general mix (all domains) in each modifier's data")->check(finite_number())->check(CLI::Range(0.0, 100.0))
      ->capture_default_str();
  loop->add_option("--modifiers", l.modifiers, "Train modifiers for these domains only, comma-separated (default: all four)")
      ->delimiter(',');
  loop->add_option("--rank", l.lora_rank, "LoRA rank")->check(CLI::Range(1, 4096))->capture_default_str();
  loop->add_option("--steps", l.steps, "Max optimizer steps per modifier")->check(at_least(1))->capture_default_str();
  loop->add_option("--lr", l.lr, "Modifier learning rate")->check(positive_number())->capture_default_str();
  loop->add_option("--patience", l.patience, "Early stopping patience (dev-split validations)")->check(at_least(0))->capture_default_str();
  loop->add_option("--batch", l.batch, "Packed rows per modifier step")->check(at_least(1))->capture_default_str();
  loop->add_option("--threads", l.n_threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  loop->add_flag("--cpu", l.cpu_only, "Train modifiers on the CPU even when a GPU is present");
  loop->callback([&] {
    engine_set_verbose(globals().verbose);
    json r = nano_loop(l);
    fmt::print("{}\nloop.json and table.md in {} ({:.0f} s)\n", nano_table(r), l.dir.string(), r["seconds"].get<double>());
  });
}

}  // namespace cogumi::cli
