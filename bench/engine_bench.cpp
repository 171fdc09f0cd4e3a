// Engine throughput in llama-batched-bench's terms: for each number of parallel sequences
// (npl), npl prompts of `pp` random tokens, then `tg` generated tokens each, all through
// Generator::generate (continuous batching, sampling, stop checks: the real path).
// PP = prompt tokens / time of prompt steps; TG = tokens decoded / time of pure decode steps.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <random>
#include <sstream>

#include "core/error.h"
#include "core/io.h"
#include "engine/generate.h"

using namespace cogumi;

int main(int argc, char** argv) {
  CLI::App app{"cogumi engine throughput (same shape of test as llama-batched-bench)"};
  std::string model_path, npl_list = "1,8,32,64", json_out;
  int pp = 128, tg = 128, threads = 0, ngl = -1, fa = -1, reps = 1;
  app.add_option("-m,--model", model_path)->required();
  app.add_option("--pp", pp, "Prompt tokens per sequence")->capture_default_str();
  app.add_option("--tg", tg, "Generated tokens per sequence")->capture_default_str();
  app.add_option("--npl", npl_list, "Parallel sequence counts")->capture_default_str();
  app.add_option("--threads", threads);
  app.add_option("--ngl", ngl);
  app.add_option("--fa", fa, "Flash attention: -1 auto, 0 off, 1 on");
  app.add_option("--reps", reps, "Repetitions (best is reported)")->capture_default_str();
  app.add_option("--json", json_out, "Append JSON lines here");
  bool backend_sampling = false;
  app.add_flag("--backend-sampling", backend_sampling, "Greedy inside llama.cpp's graph (backend samplers) instead of on the host");
  CLI11_PARSE(app, argc, argv);
  try {
    ModelOptions mo;
    mo.n_gpu_layers = ngl;
    auto model = Model::load(model_path, mo);
    std::vector<int> npls;
    std::stringstream ss(npl_list);
    for (std::string t; std::getline(ss, t, ',');) npls.push_back(std::stoi(t));
    std::mt19937 rng(1234);
    // Ordinary tokens only: skip the first 300 ids (control and byte tokens in small vocabularies).
    int lo = std::min(300, model->n_vocab() / 2), hi = std::min(model->n_vocab() - 1, 127999);
    std::uniform_int_distribution<int> tok(lo, hi);
    fmt::print("model: {} ({}, {:.2f} GiB)\n", model_path, model->info().description, model->info().file_bytes / 1073741824.0);
    fmt::print("| npl | PP | TG | S_PP t/s | S_TG t/s | total t/s | decode steps: time outside llama_decode |\n|---:|---:|---:|---:|---:|---:|---:|\n");
    for (int npl : npls) {
      GeneratorOptions go;
      go.n_parallel = npl;
      go.n_ctx_per_seq = pp + tg + 32;
      go.n_batch = std::max(2048, npl * pp);
      go.n_threads = threads;
      go.flash_attn = fa;
      go.shared_prefix = false;
      go.backend_sampling = backend_sampling;
      Generator gen(model, go);
      std::vector<GenRequest> reqs(npl);
      for (auto& r : reqs) {
        r.prompt_tokens.resize(pp);
        for (auto& t : r.prompt_tokens) t = tok(rng);
        r.max_tokens = tg;
        r.ignore_eos = true;
      }
      GenRequest warm = reqs[0];
      warm.max_tokens = 4;
      gen.generate({warm});
      GenStats best;
      for (int rep = 0; rep < reps; ++rep) {
        gen.generate(reqs);
        const GenStats& s = gen.last_stats();
        if (rep == 0 || s.t_total_ms < best.t_total_ms) best = s;
      }
      fmt::print("| {} | {} | {} | {:.1f} | {:.1f} | {:.1f} | {:.1f}% |\n", npl, pp, tg, best.prompt_tokens_per_s(),
                 best.decode_tokens_per_s(), (best.n_prompt_tokens + best.n_gen_tokens) * 1000.0 / best.t_total_ms,
                 100.0 * (1.0 - best.t_gen_decode_ms / best.t_gen_ms));
      if (!json_out.empty()) {
        JsonlWriter w(json_out, true);
        w.write({{"bench", "engine"}, {"model", model_path}, {"npl", npl}, {"pp", pp}, {"tg", tg},
                 {"s_pp", best.prompt_tokens_per_s()}, {"s_tg", best.decode_tokens_per_s()}, {"t_total_ms", best.t_total_ms}});
      }
    }
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
