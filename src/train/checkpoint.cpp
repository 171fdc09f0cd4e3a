#include "train/checkpoint.h"

#include <ggml-backend.h>
#include <gguf.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "core/error.h"
#include "engine/gguf_writer.h"

namespace cogumi {

namespace {
constexpr const char* kStateKey = "cogumi.checkpoint.state";
struct GgufDel {
  void operator()(gguf_context* g) const { gguf_free(g); }
};
}  // namespace

void save_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t, const nlohmann::json& state) {
  GgufWriter w;
  gguf_set_val_str(w.kv(), "general.type", "cogumi-checkpoint");
  gguf_set_val_str(w.kv(), kStateKey, state.dump().c_str());
  for (auto& [name, x] : t.device) w.add_tensor(name, GGML_TYPE_F32, ggml_nelements(x));
  for (auto& [name, v] : t.host) w.add_tensor(name, GGML_TYPE_F32, int64_t(v->size() / sizeof(float)));
  w.write(path, [&](const std::string& name, float* out, int64_t n) {
    if (auto d = t.device.find(name); d != t.device.end()) {
      if (d->second->type != GGML_TYPE_F32 || ggml_nelements(d->second) != n) fail("internal: checkpoint tensor '{}'", name);
      ggml_backend_tensor_get(d->second, out, 0, size_t(n) * sizeof(float));
    } else {
      std::memcpy(out, t.host.at(name)->data(), size_t(n) * sizeof(float));
    }
    // A NaN or inf here would make this "the last good checkpoint" of a broken run; failing
    // leaves the previous one in place.
    for (int64_t i = 0; i < n; ++i)
      if (!std::isfinite(out[i]))
        fail("not writing checkpoint '{}': tensor '{}' holds a non-finite value (the previous checkpoint is kept)",
             path.string(), name);
  });
}

namespace {
std::unique_ptr<gguf_context, GgufDel> open_checkpoint(const std::filesystem::path& path, nlohmann::json& state) {
  if (!std::filesystem::exists(path)) fail("no checkpoint at '{}'", path.string());
  gguf_init_params gp{true, nullptr};
  std::unique_ptr<gguf_context, GgufDel> g(gguf_init_from_file(path.c_str(), gp));
  if (!g) fail("'{}' is not a readable checkpoint (GGUF)", path.string());
  int64_t k = gguf_find_key(g.get(), kStateKey);
  if (k < 0 || gguf_get_kv_type(g.get(), k) != GGUF_TYPE_STRING)
    fail("'{}' is not a cogumi checkpoint (no {})", path.string(), kStateKey);
  state = nlohmann::json::parse(gguf_get_val_str(g.get(), k), nullptr, false);
  if (!state.is_object()) fail("'{}': the checkpoint's state is not a JSON object", path.string());
  return g;
}
}  // namespace

nlohmann::json checkpoint_state(const std::filesystem::path& path) {
  nlohmann::json state;
  open_checkpoint(path, state);
  return state;
}

nlohmann::json load_checkpoint(const std::filesystem::path& path, const CheckpointTensors& t) {
  nlohmann::json state;
  auto g = open_checkpoint(path, state);
  auto bytes_of = [&](const std::string& name, size_t want) {
    int64_t id = gguf_find_tensor(g.get(), name.c_str());
    if (id < 0) fail("checkpoint '{}' has no tensor '{}' (written by a different run?)", path.string(), name);
    auto b = gguf_tensor_bytes(path, g.get(), id);
    if (want && b.size() != want)
      fail("checkpoint '{}': tensor '{}' has {} bytes, expected {} (a different model or LoRA rank?)", path.string(), name,
           b.size(), want);
    return b;
  };
  for (auto& [name, x] : t.device) {
    auto b = bytes_of(name, ggml_nbytes(x));
    ggml_backend_tensor_set(x, b.data(), 0, b.size());
  }
  for (auto& [name, v] : t.host) {
    if (gguf_find_tensor(g.get(), name.c_str()) < 0)
      v->clear();
    else
      *v = bytes_of(name, 0);
  }
  return state;
}

}  // namespace cogumi
