// Throughput with many LoRA modifiers: for each number of concurrent streams, that many requests
// of `pp` random prompt tokens and `tg` generated tokens each (EOS ignored), all in one
// Generator::generate call, in four setups:
//   base     no adapter
//   one      every request on the first adapter
//   mixed    requests spread round-robin over all the adapters, in one batch (adapter slots)
//   mixed16  as mixed, the slots' adapter copies in F16 (GeneratorOptions::adapter_slots_f16)
//   one_slots  as one, through the adapter slots (GeneratorOptions::single_adapter_slots: on a GPU the
//            fused op) instead of per-context LoRA
//   unfused  as mixed, without patch 0010's fused op (LLAMA_ADAPTER_SLOTS_FUSED=0 when the slots are
//            stacked): each adapted weight's delta as the four ops of patch 0001 in every batch
//   grouped  the same requests, one adapter group after another (GeneratorOptions::mixed_adapters off)
// Reported: generated tokens per second of wall time (prompt steps included), the median and
// 90th-percentile time to first token (admission to the first streamed piece), and the sha256 of the
// generated texts (greedy): runs of one setup under different kernel settings must print the same.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <random>
#include <sstream>

#include "core/error.h"
#include "core/io.h"
#include "engine/generate.h"

using namespace cogumi;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string t; std::getline(ss, t, ',');)
    if (!t.empty()) out.push_back(t);
  return out;
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, size_t(q * double(v.size() - 1) + 0.5))];
}

struct Row {
  double tok_s = 0.0, ttft_p50 = 0.0, ttft_p90 = 0.0;
  int64_t decode_calls = 0;
  std::string output;  // sha256 of the generated texts, in request order (the first 16 hex digits)
  bool mixed = false;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cogumi throughput with requests spread over LoRA modifiers: one batch vs grouped by adapter"};
  std::string model_path, adapters_list, streams_list = "1,8,32", setups_list = "base,one,one_slots,mixed,mixed16,unfused,grouped", json_out;
  int pp = 64, tg = 128, threads = 0, ngl = -1, fa = -1, reps = 1;
  app.add_option("-m,--model", model_path)->required();
  app.add_option("--adapters", adapters_list, "Adapter GGUFs, comma-separated (requests spread over them)")->required();
  app.add_option("--streams", streams_list, "Concurrent stream counts")->capture_default_str();
  app.add_option("--setups", setups_list, "Any of base,one,one_slots,mixed,mixed16,unfused,grouped")->capture_default_str();
  app.add_option("--pp", pp, "Prompt tokens per request")->capture_default_str();
  app.add_option("--tg", tg, "Generated tokens per request")->capture_default_str();
  app.add_option("--threads", threads);
  app.add_option("--ngl", ngl);
  app.add_option("--fa", fa, "Flash attention: -1 auto, 0 off, 1 on");
  app.add_option("--reps", reps, "Repetitions (best throughput is reported)")->capture_default_str();
  app.add_option("--json", json_out, "Append JSON lines here");
  CLI11_PARSE(app, argc, argv);
  try {
    ModelOptions mo;
    mo.n_gpu_layers = ngl;
    auto model = Model::load(model_path, mo);
    std::vector<std::string> names;
    for (const auto& path : split(adapters_list)) {
      names.push_back("a" + std::to_string(names.size()));
      model->load_adapter(names.back(), path);
    }
    // Ordinary tokens only: skip the first 300 ids (control and byte tokens in small vocabularies).
    int lo = std::min(300, model->n_vocab() / 2), hi = std::min(model->n_vocab() - 1, 127999);
    std::uniform_int_distribution<int> tok(lo, hi);
    fmt::print("model: {} ({}), adapters: {}, pp {}, tg {}\n", model_path, model->info().description, adapters_list, pp,
               tg);
    fmt::print(
        "| streams | setup | gen tok/s | TTFT p50 ms | TTFT p90 ms | decode calls | output sha256 |\n"
        "|---:|---|---:|---:|---:|---:|---|\n");
    for (const auto& streams_s : split(streams_list)) {
      const int streams = std::stoi(streams_s);
      // prompts seeded per stream count: a run with other --streams gives these requests the same prompts
      std::mt19937 rng(1234 + streams);
      std::vector<GenRequest> reqs(streams);
      for (auto& r : reqs) {
        r.prompt_tokens.resize(pp);
        for (auto& t : r.prompt_tokens) t = tok(rng);
        r.max_tokens = tg;
        r.ignore_eos = true;
      }
      // One Generator per batching mode, made once per stream count (as a server would).
      GeneratorOptions go;
      go.n_parallel = streams;
      go.n_ctx_per_seq = pp + tg + 32;
      go.n_batch = std::max(2048, streams);
      go.n_threads = threads;
      go.flash_attn = fa;
      go.shared_prefix = false;
      Generator mixed_gen(model, go);
      go.adapter_slots_f16 = true;
      Generator mixed16_gen(model, go);
      go.adapter_slots_f16 = false;
      Generator unfused_gen(model, go);
      go.single_adapter_slots = true;
      Generator one_slots_gen(model, go);
      go.single_adapter_slots = false;
      go.mixed_adapters = false;
      Generator grouped_gen(model, go);
      for (const auto& setup : split(setups_list)) {
        for (size_t i = 0; i < reqs.size(); ++i) {
          reqs[i].adapter = setup == "base"                         ? ""
                            : setup == "one" || setup == "one_slots" ? names[0]
                                                                     : names[i % names.size()];
        }
        Generator& gen = setup == "grouped"   ? grouped_gen
                         : setup == "mixed16" ? mixed16_gen
                         : setup == "unfused"   ? unfused_gen
                         : setup == "one_slots" ? one_slots_gen
                                                : mixed_gen;
        // Warm-up, one request per adapter: graph reservation and (mixed) stacking the adapter slots,
        // which reads LLAMA_ADAPTER_SLOTS_FUSED (patch 0010) then.
        std::vector<GenRequest> warm(reqs.begin(), reqs.begin() + std::min(reqs.size(), names.size()));
        for (auto& w : warm) w.max_tokens = 4;
        if (setup == "unfused") setenv("LLAMA_ADAPTER_SLOTS_FUSED", "0", 1);
        gen.generate(warm);
        if (setup == "unfused") unsetenv("LLAMA_ADAPTER_SLOTS_FUSED");
        Row best;
        for (int rep = 0; rep < reps; ++rep) {
          std::vector<double> first(reqs.size(), -1.0);
          auto t0 = Clock::now();
          auto on_piece = [&](size_t i, const std::string&) {
            if (first[i] < 0) first[i] = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
            return true;
          };
          auto res = gen.generate(reqs, on_piece);
          double secs = std::chrono::duration<double>(Clock::now() - t0).count();
          int64_t n = 0;
          std::string texts;
          for (const auto& r : res) {
            if (r.finish == FinishReason::kError) fail("request failed: {}", r.error);
            n += r.n_gen_tokens;
            texts += r.text;
            texts += '\0';
          }
          Row row;
          row.tok_s = double(n) / secs;
          row.ttft_p50 = percentile(first, 0.5);
          row.ttft_p90 = percentile(first, 0.9);
          row.decode_calls = gen.last_stats().n_decode_calls;
          row.mixed = gen.last_stats().mixed_adapters;
          row.output = sha256_hex(texts).substr(0, 16);
          if (rep > 0 && row.output != best.output)
            fmt::print(stderr, "warning: {} at {} streams generated other texts in repetition {}\n", setup, streams, rep);
          if (row.tok_s > best.tok_s) best = row;
        }
        fmt::print("| {} | {} | {:.1f} | {:.1f} | {:.1f} | {} | {} |\n", streams, setup, best.tok_s, best.ttft_p50,
                   best.ttft_p90, best.decode_calls, best.output);
        std::fflush(stdout);
        if (!json_out.empty()) {
          JsonlWriter w(json_out, true);
          w.write({{"bench", "mixed_lora"}, {"engine", "cogumi"}, {"model", model_path}, {"streams", streams},
                   {"setup", setup}, {"pp", pp}, {"tg", tg}, {"tok_s", best.tok_s}, {"ttft_p50_ms", best.ttft_p50},
                   {"ttft_p90_ms", best.ttft_p90}, {"decode_calls", best.decode_calls}, {"one_batch", best.mixed},
                   {"output_sha256", best.output}});
        }
      }
    }
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
