// cogumi eval: benchmarks through the batched engine; cogumi eval compare RUN_A RUN_B.
#include <fmt/format.h>

#include <csignal>

#include "commands.h"
#include "core/error.h"
#include "eval/compare.h"
#include "eval/exec_cache.h"
#include "eval/run.h"
#include "runtime/eval_system.h"

namespace cogumi::cli {

namespace {
std::atomic<bool> g_cancel{false};
void on_sigint(int) {
  g_cancel = true;
}
}  // namespace

void setup_eval(CLI::App& sub) {
  static EvalOptions o;
  static std::vector<std::string> benches, shots_from, loras;
  static bool json_out = false;
  static std::string system_file;
  auto* model_opt = sub.add_option("-m,--model", o.model, "GGUF model to evaluate");
  sub.add_option("--system", system_file,
                 "Evaluate a routed system (YAML system file) instead of -m: each item is routed")
      ->excludes(model_opt);
  static std::string system_mode;
  static bool no_verify = false;
  sub.add_option("--mode", system_mode,
                 "With --system: fast (one answer per item) or accurate (the system's samples, vote "
                 "and verification); default: the system's")
      ->check(CLI::IsMember({"fast", "accurate"}));
  sub.add_flag("--no-verify", no_verify,
               "With --system --mode accurate: vote without verification (code tests, tool schemas)");
  sub.add_option(
      "-b,--bench", benches,
      "KIND=PATH (repeatable). Kinds: gsm8k, mmlu (CSV or folder), humaneval (.jsonl/.gz), mbpp "
      "(mbpp.jsonl or sanitized-mbpp.json), bbh (task JSON or folder), bfcl (QUESTIONS[,ANSWERS]), "
      "jsonl "
      "({instruction,output})");
  sub.add_option("-o,--out", o.out_dir, "Run directory")->capture_default_str();
  sub.add_option("--limit", o.limit, "Items per benchmark (0 = all)")->check(at_least(0));
  sub.add_option("--skip", o.skip, "Items skipped at the start of each benchmark, before --limit (e.g. the ones a model trained on)")
      ->check(CLI::Range(size_t(0), size_t(100000000)));
  sub.add_option("--shots", o.shots, "Few-shot examples per prompt")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  sub.add_option("--shots-from", shots_from,
                 "KIND=PATH pool for few-shot examples (default: train/dev beside the test set)");
  sub.add_flag("--chat", o.chat, "Ask through the model's chat template");
  sub.add_option("--system-prompt", o.system, "System message (with --chat)");
  sub.add_option("--chat-template", o.chat_template,
                 "Template name or text overriding the model's");
  sub.add_option("-n,--max-tokens", o.max_tokens, "Maximum new tokens per answer (>= 1)")
      ->check(at_least(1))
      ->capture_default_str();
  sub.add_flag("--ignore-eos", o.ignore_eos,
               "Generate exactly --max-tokens (throughput benchmarks)");
  sub.add_option("--temp", o.sampling.temperature, "Temperature (0 = greedy)")
      ->check(at_least(0))
      ->capture_default_str();
  sub.add_option("--top-p", o.sampling.top_p, "Top-p in (0, 1] (1 = off)")
      ->check(CLI::Range(0.0, 1.0) & finite_number())
      ->capture_default_str();
  sub.add_option("--seed", o.sampling.seed, "Seed (sample i uses seed + i)")->capture_default_str();
  sub.add_option("--samples", o.samples, "Samples per item (pass@k)")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub.add_option("--pass-k", o.pass_k, "Comma-separated k for pass@k, each in 1..--samples")
      ->delimiter(',')
      ->check(positive_number())
      ->capture_default_str();
  sub.add_option("--lora", loras, "Load an adapter NAME=PATH (repeatable)");
  sub.add_option("--adapter", o.adapter, "Apply this loaded adapter to every item");
  sub.add_option("--adapter-scale", o.adapter_scale, "Adapter scale")
      ->check(finite_number())
      ->capture_default_str();
  sub.add_option("--parallel", o.gen.n_parallel, "Sequences decoded together (1..255)")
      ->check(CLI::Range(1, 255))
      ->capture_default_str();
  sub.add_option("--ctx", o.gen.n_ctx_per_seq, "Context per sequence (0 = model's, at most 4096)")
      ->check(CLI::Range(0, 1 << 20));
  sub.add_flag_callback(
      "--no-prefix-cache", [] { o.gen.shared_prefix = false; },
      "Decode every prompt whole: no KV cache reused between prompts that start alike (for comparisons)");
  sub.add_option("--threads", o.gen.n_threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  sub.add_option("--ngl", o.n_gpu_layers, "Layers on the GPU (-1 = all)")
      ->check(CLI::Range(-1, 1 << 20));
  sub.add_option("--responses", o.responses,
                 "Score pre-generated outputs: JSONL {\"task_id\",\"completion\"} or "
                 "{\"id\",\"output\"} (ids: upstream "
                 "ids, else FILE:INDEX, e.g. test.jsonl:0)");
  sub.add_option("--workers", o.workers, "Sandbox processes for code (0 = cores)")
      ->check(CLI::Range(0, 1024));
  static std::string exec_cache;
  sub.add_option("--exec-cache", exec_cache,
                 "SQLite file of code runs to reuse: a program already run under the same limits and "
                 "interpreter is not run again (runs that exited; made when missing)");
  static ExecCacheOptions exec_cache_opts;
  sub.add_option("--exec-cache-max-runs", exec_cache_opts.max_runs,
                 "Runs the --exec-cache file keeps; past it the least recently used are dropped (0 = no limit)")
      ->check(CLI::Range(int64_t(0), int64_t(1000000000)))
      ->capture_default_str();
  sub.add_option("--timeout", o.sandbox.limits.timeout_s, "Seconds per code run (> 0)")
      ->check(positive_number())
      ->capture_default_str();
  sub.add_option("--scoring", o.scoring,
                 "Generic JSONL scoring: exact, normalized, numeric, regex, judge")
      ->capture_default_str();
  sub.add_option("--judge", o.judge.base_url,
                 "OpenAI-compatible base URL of the judge model (with --scoring judge)");
  sub.add_option("--judge-model", o.judge.model, "Model name sent to the judge")
      ->capture_default_str();
  sub.add_option("--chunk", o.chunk, "Items per batch written before the next starts (>= 1)")
      ->check(positive_number())
      ->capture_default_str();
  sub.add_flag("--resume", o.resume, "Keep items already in the run directory and do the rest");
  sub.add_flag("--json", json_out, "Print the summary as JSON");

  auto* cmp = sub.add_subcommand(
      "compare", "Per-item wins/ties/losses of run B against run A, with McNemar's test");
  static std::string run_a, run_b;
  static bool cmp_json = false;
  cmp->add_option("run_a", run_a, "Baseline run directory")->required();
  cmp->add_option("run_b", run_b, "Candidate run directory")->required();
  cmp->add_flag("--json", cmp_json, "Print JSON");
  cmp->callback([&] {
    json c = compare_runs(run_a, run_b);
    fmt::print("{}", cmp_json ? c.dump(2) + "\n" : compare_table(c));
  });

  sub.callback([&] {
    if (sub.got_subcommand("compare")) return;
    engine_set_verbose(globals().verbose);
    o.benches.clear();
    for (auto& b : benches) o.benches.push_back(parse_bench_spec(b));
    o.shots_from.clear();
    for (auto& b : shots_from) o.shots_from.push_back(parse_bench_spec(b));
    o.adapters.clear();
    for (auto& l : loras) {
      auto eq = l.find('=');
      if (eq == std::string::npos || eq == 0) fail("--lora expects NAME=PATH, got '{}'", l);
      o.adapters.emplace_back(l.substr(0, eq), l.substr(eq + 1));
    }
    if (!exec_cache.empty()) o.exec_cache = ExecCache::open(exec_cache, exec_cache_opts);
    g_cancel = false;
    o.cancel = &g_cancel;
    auto old = std::signal(SIGINT, on_sigint);
    if (system_file.empty() && (!system_mode.empty() || no_verify))
      fail("--mode and --no-verify apply to a routed system: give --system FILE");
    json s;
    if (system_file.empty()) {
      s = run_eval(o);
    } else {
      SystemConfig sys = SystemConfig::load(system_file);
      if (no_verify) sys.verify = false;
      s = eval_system(sys, o, system_mode);
    }
    std::signal(SIGINT, old);
    fmt::print("{}", json_out ? s.dump(2) + "\n" : summary_table(s));
    if (!json_out) fmt::print("run: {}\n", o.out_dir.string());
  });
}

}  // namespace cogumi::cli
