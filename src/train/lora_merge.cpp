#include "train/lora_merge.h"

#include <ggml.h>
#include <gguf.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "core/error.h"
#include "engine/gguf_writer.h"

namespace cogumi {

namespace {

struct Gguf {
  gguf_context* g = nullptr;
  ggml_context* meta = nullptr;
  std::filesystem::path path;
  explicit Gguf(const std::filesystem::path& p) : path(p) {
    if (!std::filesystem::exists(p)) fail("file not found: '{}'", p.string());
    gguf_init_params ip{true, &meta};
    g = gguf_init_from_file(p.c_str(), ip);
    if (!g) fail("'{}' is not a readable GGUF file", p.string());
  }
  ~Gguf() {
    if (g) gguf_free(g);
    if (meta) ggml_free(meta);
  }
  std::string str(const char* key) const {
    int64_t id = gguf_find_key(g, key);
    if (id < 0) return "";
    // gguf_get_val_str asserts (aborts) on a key of another type: a malformed file is refused.
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_STRING)
      fail("'{}': key '{}' is {}, expected a string", path.string(), key, gguf_type_name(gguf_get_kv_type(g, id)));
    return gguf_get_val_str(g, id);
  }
  float f32(const char* key) const {
    int64_t id = gguf_find_key(g, key);
    if (id < 0) return 0.0f;
    if (gguf_get_kv_type(g, id) != GGUF_TYPE_FLOAT32)
      fail("'{}': key '{}' is {}, expected f32", path.string(), key, gguf_type_name(gguf_get_kv_type(g, id)));
    return gguf_get_val_f32(g, id);
  }
  // Tensor data as float32.
  std::vector<float> read(const std::string& name) const {
    int64_t id = gguf_find_tensor(g, name.c_str());
    if (id < 0) fail("'{}': no tensor '{}'", path.string(), name);
    ggml_type t = gguf_get_tensor_type(g, id);
    std::vector<char> raw = gguf_tensor_bytes(path, g, id);
    const size_t bytes = raw.size();
    if (t == GGML_TYPE_F32) {
      std::vector<float> out(bytes / 4);
      std::memcpy(out.data(), raw.data(), bytes);
      return out;
    }
    if (t == GGML_TYPE_F16 || t == GGML_TYPE_BF16) {
      std::vector<float> out(bytes / 2);
      ggml_get_type_traits(t)->to_float(raw.data(), out.data(), int64_t(out.size()));
      return out;
    }
    fail("'{}': tensor '{}' is {}; merging needs an F32, F16 or BF16 base", path.string(), name, ggml_type_name(t));
  }
};

}  // namespace

nlohmann::json lora_info(const std::filesystem::path& adapter) {
  Gguf a(adapter);
  if (a.str("general.type") != "adapter" || a.str("adapter.type") != "lora")
    fail("'{}' is not a LoRA adapter (general.type='{}', adapter.type='{}')", adapter.string(), a.str("general.type"),
         a.str("adapter.type"));
  const float alpha = a.f32("adapter.lora.alpha");
  nlohmann::json tensors = nlohmann::json::array();
  std::set<std::string> modules;
  uint64_t n_params = 0;
  int rank = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(a.g); ++i) {
    std::string name = gguf_get_tensor_name(a.g, i);
    const int64_t* ne = gguf_get_tensor_ne(a.g, i);
    // ne[0]*ne[1] alone can overflow when a later dimension is 0 (gguf bounds the full product).
    uint64_t n = 0;
    if (__builtin_mul_overflow(uint64_t(ne[0]), uint64_t(ne[1]), &n) || __builtin_add_overflow(n_params, n, &n_params))
      fail("'{}': tensor '{}' is {}x{}: too many parameters", adapter.string(), name, ne[0], ne[1]);
    if (name.size() > 7 && name.compare(name.size() - 7, 7, ".lora_a") == 0) {
      std::string w = name.substr(0, name.size() - 7);
      rank = int(ne[1]);
      int64_t bi = gguf_find_tensor(a.g, (w + ".lora_b").c_str());
      int64_t n_out = bi >= 0 ? gguf_get_tensor_ne(a.g, bi)[1] : 0;
      tensors.push_back({{"name", w}, {"rank", ne[1]}, {"n_in", ne[0]}, {"n_out", n_out}});
      size_t dot = w.rfind(".weight");
      std::string m = w.substr(0, dot);
      modules.insert(m.substr(m.rfind('.') + 1));
    }
  }
  return {{"path", adapter.string()}, {"arch", a.str("general.architecture")},
          {"alpha", alpha},
          {"rank", rank}, {"n_params", n_params}, {"modules", modules}, {"tensors", tensors}};
}

void lora_merge(const std::filesystem::path& base, const std::filesystem::path& adapter,
                const std::filesystem::path& out, float scale) {
  if (!(scale >= -100.0f && scale <= 100.0f)) fail("--scale must be in [-100, 100], got {}", scale);
  nlohmann::json info = lora_info(adapter);
  Gguf b(base), a(adapter);
  if (b.str("general.architecture") != a.str("general.architecture"))
    fail("adapter '{}' is for '{}', base '{}' is '{}'", adapter.string(), a.str("general.architecture"), base.string(),
         b.str("general.architecture"));
  const float alpha = info["alpha"].get<float>();
  std::map<std::string, std::pair<std::string, std::string>> deltas;  // weight -> (A, B)
  for (auto& t : info["tensors"]) {
    std::string w = t["name"].get<std::string>();
    int64_t id = gguf_find_tensor(b.g, w.c_str());
    if (id < 0) fail("adapter tensor '{}' has no counterpart in '{}'", w, base.string());
    const int64_t* ne = gguf_get_tensor_ne(b.g, id);
    if (ne[0] != t["n_in"].get<int64_t>() || ne[1] != t["n_out"].get<int64_t>())
      fail("adapter tensor '{}' is {}x{}, base has {}x{}", w, t["n_in"].get<int64_t>(), t["n_out"].get<int64_t>(), ne[0],
           ne[1]);
    deltas[w] = {w + ".lora_a", w + ".lora_b"};
  }
  GgufWriter wtr;
  gguf_set_kv(wtr.kv(), b.g);
  for (int64_t i = 0; i < gguf_get_n_tensors(b.g); ++i) {
    ggml_type t = gguf_get_tensor_type(b.g, i);
    const char* name = gguf_get_tensor_name(b.g, i);
    if (t != GGML_TYPE_F32 && t != GGML_TYPE_F16 && t != GGML_TYPE_BF16)
      fail("'{}': tensor '{}' is {}; merge into an F32/F16/BF16 base, then quantize", base.string(), name,
           ggml_type_name(t));
    const int64_t* ne = gguf_get_tensor_ne(b.g, i);
    wtr.add_tensor(name, t, ne[0], ne[1]);
  }
  wtr.write(out, [&](const std::string& name, float* buf, int64_t n) {
    std::vector<float> w = b.read(name);
    std::copy(w.begin(), w.end(), buf);
    auto d = deltas.find(name);
    if (d == deltas.end()) return;
    std::vector<float> A = a.read(d->second.first), B = a.read(d->second.second);
    int64_t id = gguf_find_tensor(b.g, name.c_str());
    const int64_t n_in = gguf_get_tensor_ne(b.g, id)[0], n_out = gguf_get_tensor_ne(b.g, id)[1];
    const int64_t r = int64_t(A.size()) / n_in;
    const float s = scale * (alpha != 0.0f ? alpha / float(r) : 1.0f);
    if (n != n_in * n_out) fail("internal: size mismatch merging '{}'", name);
    // W[j][i] += s * sum_k B[j][k] * A[k][i]   (ggml rows: W row j has n_in values)
#pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n_out; ++j)
      for (int64_t k = 0; k < r; ++k) {
        const float bjk = s * B[j * r + k];
        const float* ak = &A[k * n_in];
        float* wj = &buf[j * n_in];
        for (int64_t i = 0; i < n_in; ++i) wj[i] += bjk * ak[i];
      }
  });
}

}  // namespace cogumi
