// cogumi lora init: LoRA adapters as files (train and merge arrive with the trainer).
#include <fmt/format.h>

#include <sstream>

#include "commands.h"
#include "engine/adapter.h"
#include "engine/model.h"
#include "train/lora_merge.h"
#include "compress/lora_shrink.h"

namespace cogumi::cli {

void setup_lora(CLI::App& sub) {
  sub.require_subcommand(1);
  static std::string base, out, targets = "q,k,v,o";
  static AdapterInitOptions o;
  auto* init = sub.add_subcommand("init", "Write a LoRA adapter GGUF for a model (random A; B zero unless --std-b)");
  init->add_option("base", base, "Base model GGUF")->required();
  init->add_option("out", out, "Output adapter GGUF")->required();
  init->add_option("--rank", o.rank, "LoRA rank")->check(CLI::Range(1, 4096))->capture_default_str();
  init->add_option("--alpha", o.alpha, "LoRA alpha (scale alpha / rank; llama.cpp reads 0 as scale 1)")
      ->check(CLI::Range(0.0f, 1e6f))
      ->capture_default_str();
  init->add_option("--targets", targets, "Comma-separated modules: q,k,v,o,gate,up,down")->capture_default_str();
  init->add_option("--seed", o.seed, "Seed")->capture_default_str();
  init->add_option("--std-a", o.std_a, "Standard deviation of A")->capture_default_str();
  init->add_option("--std-b", o.std_b, "Standard deviation of B (0 = no-op adapter)")->capture_default_str();
  init->callback([&] {
    engine_set_verbose(globals().verbose);
    o.targets.clear();
    std::stringstream ss(targets);
    for (std::string t; std::getline(ss, t, ',');)
      if (!t.empty()) o.targets.push_back(t);
    uint64_t n = adapter_init(base, out, o);
    fmt::print("wrote {}: rank {}, {} parameters\n", out, o.rank, n);
  });

  static std::string info_path;
  static bool info_json = false;
  auto* info = sub.add_subcommand("info", "Describe a LoRA adapter GGUF");
  info->add_option("adapter", info_path, "Adapter GGUF")->required();
  info->add_flag("--json", info_json, "Print JSON");
  info->callback([&] {
    auto j = lora_info(info_path);
    if (info_json) {
      fmt::print("{}\n", j.dump(2));
      return;
    }
    fmt::print("adapter    {}\narch       {}\nrank       {}\nalpha      {}\nparameters {}\nmodules    {}\ntensors    {}\n",
               j["path"].get<std::string>(), j["arch"].get<std::string>(), j["rank"].get<int>(), j["alpha"].get<float>(),
               j["n_params"].get<uint64_t>(), j["modules"].dump(), j["tensors"].size());
  });

  static std::string m_base, m_adapter, m_out;
  static float m_scale = 1.0f;
  auto* merge = sub.add_subcommand("merge", "Merge an adapter into its base: a new GGUF that quantizes like any model");
  merge->add_option("base", m_base, "Base GGUF (F32/F16/BF16)")->required();
  merge->add_option("adapter", m_adapter, "Adapter GGUF")->required();
  merge->add_option("out", m_out, "Merged GGUF")->required();
  merge->add_option("--scale", m_scale, "Adapter scale")->capture_default_str();
  merge->callback([&] {
    lora_merge(m_base, m_adapter, m_out, m_scale);
    fmt::print("wrote {}\n", m_out);
  });

  // cogumi lora shrink (issue 15): rank reduction by SVD of B·A.
  static std::string s_in, s_out;
  static LoraShrinkOptions so;
  auto* shrink = sub.add_subcommand("shrink", "Reduce an adapter's rank by SVD of B·A (to a rank, energy or size)");
  shrink->add_option("adapter", s_in, "Adapter GGUF")->required();
  shrink->add_option("-o,--out", s_out, "Output adapter GGUF")->required();
  shrink->add_option("--rank", so.rank, "Keep at most this rank per tensor")->check(CLI::Range(1, 1 << 20));
  shrink->add_option("--energy", so.energy, "Keep this fraction of each delta's squared Frobenius norm, in (0, 1]")
      ->check(finite_number() & CLI::Range(1e-9, 1.0));
  shrink->add_option("--size-mb", so.size_mb, "Tensor data at most this many MB (10^6 bytes)")
      ->check(positive_number());
  shrink->add_option("--threads", so.n_threads, "Tensors factored at once (0 = all cores; the output is the same)")
      ->check(CLI::Range(0, 4096));
  shrink->callback([&] {
    const LoraShrinkResult r = lora_shrink(s_in, s_out, so);
    int lo = 1 << 30, hi = 0;
    double worst = 1.0;
    for (const auto& t : r.tensors) {
      lo = std::min(lo, t.rank_out);
      hi = std::max(hi, t.rank_out);
      worst = std::min(worst, t.energy_kept);
    }
    fmt::print("wrote {}: {} weights, rank {}..{}, {} -> {} parameters, {:.3f} -> {:.3f} MB of tensors ({} bytes file), "
               "energy kept >= {:.4f}\n",
               s_out, r.tensors.size(), lo, hi, r.params_in, r.params_out, r.bytes_in / 1e6, r.bytes_out / 1e6,
               r.file_bytes_out, worst);
  });
}

}  // namespace cogumi::cli
