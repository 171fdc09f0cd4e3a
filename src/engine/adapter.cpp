#include "engine/adapter.h"

#include <map>
#include <memory>
#include <thread>

#include "core/error.h"
#include "core/threads.h"
#include "engine/gguf_writer.h"
#include "engine/model.h"

namespace cogumi {

const std::vector<std::string>& lora_target_modules() {
  static const std::vector<std::string> m = {"q", "k", "v", "o", "gate", "up", "down"};
  return m;
}

std::string lora_target_tensor(const std::string& module) {
  static const std::map<std::string, std::string> kMap = {
      {"q", "attn_q"},       {"k", "attn_k"},   {"v", "attn_v"},     {"o", "attn_output"},
      {"gate", "ffn_gate"},  {"up", "ffn_up"},  {"down", "ffn_down"},
  };
  auto it = kMap.find(module);
  if (it == kMap.end()) fail("unknown LoRA target module '{}' (known: q, k, v, o, gate, up, down)", module);
  return it->second;
}

void AdapterInitOptions::validate() const {
  if (rank < 1 || rank > 4096) fail("--rank must be in 1..4096, got {}", rank);
  if (!(alpha >= 0.0f && alpha <= 1e6f)) fail("--alpha must be in [0, 1e6], got {}", alpha);
  if (!(std_a >= 0.0f && std_a <= 10.0f)) fail("--std-a must be in [0, 10], got {}", std_a);
  if (!(std_b >= 0.0f && std_b <= 10.0f)) fail("--std-b must be in [0, 10], got {}", std_b);
  if (targets.empty()) fail("LoRA needs at least one target module (--targets)");
}

uint64_t adapter_init(const fs::path& base, const fs::path& out, const AdapterInitOptions& o) {
  engine_init();
  o.validate();
  std::vector<std::string> suffixes;
  for (const auto& t : o.targets) suffixes.push_back(fmt::format(".{}.weight", lora_target_tensor(t)));
  if (!fs::exists(base)) fail("model file not found: '{}'", base.string());
  gguf_init_params p{true, nullptr};
  std::unique_ptr<gguf_context, decltype(&gguf_free)> src(gguf_init_from_file(base.c_str(), p), gguf_free);
  if (!src) fail("'{}' is not a readable GGUF file", base.string());
  int64_t ak = gguf_find_key(src.get(), "general.architecture");
  std::string arch = ak >= 0 ? gguf_get_val_str(src.get(), ak) : "";

  GgufWriter w;
  gguf_set_val_str(w.kv(), "general.type", "adapter");
  gguf_set_val_str(w.kv(), "general.architecture", arch.c_str());
  gguf_set_val_str(w.kv(), "adapter.type", "lora");
  gguf_set_val_f32(w.kv(), "adapter.lora.alpha", o.alpha);
  uint64_t n_params = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(src.get()); ++i) {
    std::string name = gguf_get_tensor_name(src.get(), i);
    bool hit = false;
    for (const auto& s : suffixes)
      if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) hit = true;
    if (!hit) continue;
    const int64_t* ne = gguf_get_tensor_ne(src.get(), i);
    w.add_tensor(name + ".lora_a", GGML_TYPE_F32, ne[0], o.rank);
    w.add_tensor(name + ".lora_b", GGML_TYPE_F32, o.rank, ne[1]);
    n_params += uint64_t(o.rank) * uint64_t(ne[0] + ne[1]);
  }
  if (n_params == 0) fail("'{}' has no tensors matching the LoRA targets", base.string());
  int threads = compute_threads();
  w.write(out, [&](const std::string& name, float* buf, int64_t n) {
    bool is_b = name.size() > 7 && name.compare(name.size() - 7, 7, ".lora_b") == 0;
    float sd = is_b ? o.std_b : o.std_a;
    if (sd == 0.0f)
      std::fill(buf, buf + n, 0.0f);
    else
      fill_uniform(buf, n, o.seed, name, sd, threads);
  });
  return n_params;
}

}  // namespace cogumi
