// cogumi generate: one or many prompts through the batched engine.
#include <fmt/format.h>

#include <csignal>

#include "commands.h"
#include "core/error.h"
#include "core/io.h"
#include "core/progress.h"
#include "data/prompt_file.h"
#include "engine/generate.h"

namespace cogumi::cli {

namespace {
std::atomic<bool> g_cancel{false};
void on_sigint(int) { g_cancel = true; }

struct GenerateArgs {
  std::string model;
  std::vector<std::string> prompts;
  std::string prompts_file;
  std::string out;
  PromptFormat fmt;
  GenRequest req;
  GeneratorOptions gen;
  std::vector<std::string> loras;  // NAME=PATH
  int n_gpu_layers = -1;
  bool json_out = false;
  bool quiet = false;
};

}  // namespace

void setup_generate(CLI::App& sub) {
  static GenerateArgs a;
  sub.add_option("-m,--model", a.model, "GGUF model")->required();
  sub.add_option("-p,--prompt", a.prompts, "Prompt text (repeatable)");
  sub.add_option("--prompts", a.prompts_file,
                 "JSONL file: one object per line with \"prompt\" (text) or \"messages\" (chat), optional \"id\", "
                 "\"adapter\"");
  sub.add_option("-o,--out", a.out, "Write results as JSONL here (one line per prompt)");
  sub.add_flag("--chat", a.fmt.chat, "Wrap each prompt as a user message with the model's chat template");
  sub.add_option("--system", a.fmt.system, "System message (with --chat)");
  sub.add_option("--chat-template", a.fmt.chat_template, "Template name or text overriding the model's");
  sub.add_option("-n,--max-tokens", a.req.max_tokens, "Maximum new tokens per prompt (>= 1)")
      ->check(at_least(1))
      ->capture_default_str();
  sub.add_option("--temp", a.req.sampling.temperature, "Temperature (0 = greedy)")
      ->check(at_least(0))
      ->capture_default_str();
  sub.add_option("--top-k", a.req.sampling.top_k, "Top-k (0 = off)")->check(at_least(0))->capture_default_str();
  sub.add_option("--top-p", a.req.sampling.top_p, "Top-p in (0, 1] (1 = off)")
      ->check(CLI::Range(0.0, 1.0) & finite_number())
      ->capture_default_str();
  sub.add_option("--min-p", a.req.sampling.min_p, "Min-p (0 = off)")
      ->check(CLI::Range(0.0, 1.0) & finite_number())
      ->capture_default_str();
  sub.add_option("--repeat-penalty", a.req.sampling.repeat_penalty, "Repetition penalty (1 = off)")
      ->check(positive_number())
      ->capture_default_str();
  sub.add_option("--seed", a.req.sampling.seed, "Sampling seed")->capture_default_str();
  sub.add_option("--stop", a.req.stop, "Stop string (repeatable)");
  sub.add_option("--logprobs", a.req.n_logprobs, "Per-token log-probabilities with this many alternatives")
      ->check(CLI::Range(0, 1 << 20));
  sub.add_flag("--ignore-eos", a.req.ignore_eos, "Generate past end-of-generation tokens");
  sub.add_option("--lora", a.loras, "Load an adapter: NAME=PATH (repeatable)");
  sub.add_option("--adapter", a.req.adapter, "Apply this loaded adapter to every prompt");
  sub.add_option("--adapter-scale", a.req.adapter_scale, "Adapter scale")->check(finite_number())->capture_default_str();
  sub.add_option("--parallel", a.gen.n_parallel, "Sequences decoded together (1..255, at most --batch)")
      ->check(CLI::Range(1, 255))
      ->capture_default_str();
  sub.add_option("--ctx", a.gen.n_ctx_per_seq, "Context per sequence (0 = model's, at most 4096)")->check(CLI::Range(0, 1 << 20));
  sub.add_flag_callback(
      "--no-prefix-cache", [] { a.gen.shared_prefix = false; },
      "Decode every prompt whole: no KV cache reused between prompts that start alike (for comparisons)");
  sub.add_option("--batch", a.gen.n_batch, "Tokens per decode call (32..65536)")
      ->check(CLI::Range(32, 1 << 16))
      ->capture_default_str();
  sub.add_option("--threads", a.gen.n_threads, "CPU threads (0 = all)")->check(CLI::Range(0, 1024));
  sub.add_option("--ngl", a.n_gpu_layers, "Layers on the GPU (-1 = all)")->check(CLI::Range(-1, 1 << 20));
  sub.add_flag("--json", a.json_out, "Print results as JSON lines on stdout");
  sub.add_flag("-q,--quiet", a.quiet, "No statistics on stderr");
  sub.callback([&] {
    // Before loading anything: options that combine (--parallel above --batch) are checked here.
    a.gen.validate();
    a.req.validate();
    engine_set_verbose(globals().verbose);
    ModelOptions mo;
    mo.n_gpu_layers = a.n_gpu_layers;
    auto model = Model::load(a.model, mo);
    for (const auto& spec : a.loras) {
      auto eq = spec.find('=');
      if (eq == std::string::npos || eq == 0) fail("--lora expects NAME=PATH, got '{}'", spec);
      model->load_adapter(spec.substr(0, eq), spec.substr(eq + 1));
    }
    std::vector<GenRequest> reqs;
    std::vector<json> ids;
    for (const auto& p : a.prompts) {
      reqs.push_back(format_request(*model, a.fmt, p, a.req));
      ids.push_back(json(reqs.size() - 1));
    }
    if (!a.prompts_file.empty()) {
      for (auto& rec : load_prompt_file(a.prompts_file, *model, a.fmt, a.req, reqs.size())) {
        reqs.push_back(std::move(rec.request));
        ids.push_back(std::move(rec.id));
      }
    }
    if (reqs.empty()) fail("nothing to generate: give --prompt or --prompts FILE");

    Generator gen(model, a.gen);
    g_cancel = false;
    auto old = std::signal(SIGINT, on_sigint);
    const bool stream = reqs.size() == 1 && !a.json_out && a.out.empty();
    Progress progress("generate", int64_t(reqs.size()), !stream && !a.quiet && reqs.size() > 1);
    StreamFn on_piece;
    if (stream) {
      on_piece = [](size_t, const std::string& piece) {
        fmt::print("{}", piece);
        std::fflush(stdout);
        return true;
      };
    }
    auto results = gen.generate(reqs, on_piece, &g_cancel);
    std::signal(SIGINT, old);
    progress.finish();

    std::unique_ptr<JsonlWriter> writer;
    if (!a.out.empty()) writer = std::make_unique<JsonlWriter>(a.out);
    int n_err = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      if (r.finish == FinishReason::kError) ++n_err;
      json j = {{"id", ids[i]},
                {"prompt", reqs[i].prompt},
                {"output", r.text},
                {"finish_reason", finish_reason_name(r.finish)},
                {"n_prompt_tokens", r.n_prompt_tokens},
                {"n_gen_tokens", r.n_gen_tokens},
                {"latency_ms", r.latency_ms}};
      if (!r.error.empty()) j["error"] = r.error;
      if (reqs[i].n_logprobs >= 0) {
        json lps = json::array();
        for (const auto& lp : r.logprobs) {
          json top = json::array();
          for (const auto& [t, l] : lp.top) top.push_back({{"token", t}, {"logprob", l}});
          lps.push_back({{"token", lp.text}, {"id", lp.token}, {"logprob", lp.logprob}, {"top", top}});
        }
        j["logprobs"] = lps;
      }
      if (writer) writer->write(j);
      if (a.json_out) {
        fmt::print("{}\n", j.dump(-1, ' ', false, json::error_handler_t::replace));
      } else if (stream) {
        fmt::print("\n");
        if (!r.error.empty()) fmt::print(stderr, "error: {}\n", r.error);
      } else if (!writer) {
        fmt::print("=== [{}] {} ===\n{}\n", ids[i].dump(), finish_reason_name(r.finish), r.error.empty() ? r.text : "error: " + r.error);
      }
    }
    const GenStats& s = gen.last_stats();
    if (!a.quiet)
      fmt::print(stderr, "{} prompts, {} prompt tokens ({} from shared prefixes), {} generated in {:.2f}s: {:.1f} tokens/s\n",
                 reqs.size(), s.n_prompt_tokens, s.n_prefix_reused, s.n_gen_tokens, s.t_total_ms / 1000.0,
                 s.gen_tokens_per_s());
    if (g_cancel) fail("interrupted; {} results kept", results.size());
    if (n_err > 0) fail("{} of {} prompts failed (see 'error' in the output)", n_err, results.size());
  });
}

}  // namespace cogumi::cli
