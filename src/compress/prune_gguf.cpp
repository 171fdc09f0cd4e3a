#include "compress/prune_gguf.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "core/error.h"
#include "engine/gguf_keys.h"
#include "engine/gguf_writer.h"

namespace cogumi {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

bool float_type(ggml_type t) { return t == GGML_TYPE_F32 || t == GGML_TYPE_F16 || t == GGML_TYPE_BF16; }

// Copies key `id` of `src` into `dst` under `key` (every GGUF value type).
void copy_key(gguf_context* dst, const std::string& key, const gguf_context* src, int64_t id) {
  const char* k = key.c_str();
  switch (gguf_get_kv_type(src, id)) {
    case GGUF_TYPE_UINT8: gguf_set_val_u8(dst, k, gguf_get_val_u8(src, id)); break;
    case GGUF_TYPE_INT8: gguf_set_val_i8(dst, k, gguf_get_val_i8(src, id)); break;
    case GGUF_TYPE_UINT16: gguf_set_val_u16(dst, k, gguf_get_val_u16(src, id)); break;
    case GGUF_TYPE_INT16: gguf_set_val_i16(dst, k, gguf_get_val_i16(src, id)); break;
    case GGUF_TYPE_UINT32: gguf_set_val_u32(dst, k, gguf_get_val_u32(src, id)); break;
    case GGUF_TYPE_INT32: gguf_set_val_i32(dst, k, gguf_get_val_i32(src, id)); break;
    case GGUF_TYPE_UINT64: gguf_set_val_u64(dst, k, gguf_get_val_u64(src, id)); break;
    case GGUF_TYPE_INT64: gguf_set_val_i64(dst, k, gguf_get_val_i64(src, id)); break;
    case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, k, gguf_get_val_f32(src, id)); break;
    case GGUF_TYPE_FLOAT64: gguf_set_val_f64(dst, k, gguf_get_val_f64(src, id)); break;
    case GGUF_TYPE_BOOL: gguf_set_val_bool(dst, k, gguf_get_val_bool(src, id)); break;
    case GGUF_TYPE_STRING: gguf_set_val_str(dst, k, gguf_get_val_str(src, id)); break;
    case GGUF_TYPE_ARRAY: {
      const size_t n = gguf_get_arr_n(src, id);
      const gguf_type t = gguf_get_arr_type(src, id);
      if (t == GGUF_TYPE_STRING) {
        std::vector<const char*> v(n);
        for (size_t i = 0; i < n; ++i) v[i] = gguf_get_arr_str(src, id, i);
        gguf_set_arr_str(dst, k, v.data(), n);
      } else {
        gguf_set_arr_data(dst, k, t, gguf_get_arr_data(src, id), n);
      }
      break;
    }
    default: fail("GGUF key '{}' has an unknown type", key);
  }
}

// How a pruned tensor is cut from its source.
enum class Cut { copy, rows, cols };

struct Mapping {
  std::string source;
  Cut cut = Cut::copy;
  std::vector<int64_t> index;  // rows or columns kept
};

std::vector<int64_t> head_rows(const std::vector<int>& groups, int per_group, int head_dim) {
  std::vector<int64_t> rows;
  for (int g : groups)
    for (int h = g * per_group; h < (g + 1) * per_group; ++h)
      for (int d = 0; d < head_dim; ++d) rows.push_back(int64_t(h) * head_dim + d);
  return rows;
}

// The per-layer shape keys: scalars for a llama GGUF, one int32 per layer for deci. llama.cpp
// derives the head size from layer 0's head count unless it is stored, so it is stored when pruned.
void set_shape_keys(gguf_context* kv, const std::string& arch, const std::vector<int>& ff, const std::vector<int>& head,
                    const std::vector<int>& head_kv, bool uniform, int n_embd, int head_dim) {
  const std::string a = arch + ".";
  gguf_set_val_u32(kv, (a + "block_count").c_str(), uint32_t(ff.size()));
  if (uniform) {
    gguf_set_val_u32(kv, (a + "feed_forward_length").c_str(), uint32_t(ff[0]));
    gguf_set_val_u32(kv, (a + "attention.head_count").c_str(), uint32_t(head[0]));
    gguf_set_val_u32(kv, (a + "attention.head_count_kv").c_str(), uint32_t(head_kv[0]));
  } else {
    gguf_set_arr_data(kv, (a + "feed_forward_length").c_str(), GGUF_TYPE_INT32, ff.data(), ff.size());
    gguf_set_arr_data(kv, (a + "attention.head_count").c_str(), GGUF_TYPE_INT32, head.data(), head.size());
    gguf_set_arr_data(kv, (a + "attention.head_count_kv").c_str(), GGUF_TYPE_INT32, head_kv.data(), head_kv.size());
  }
  if (!uniform || int64_t(head[0]) * head_dim != n_embd) {
    gguf_set_val_u32(kv, (a + "attention.key_length").c_str(), uint32_t(head_dim));
    gguf_set_val_u32(kv, (a + "attention.value_length").c_str(), uint32_t(head_dim));
    gguf_set_val_u32(kv, (a + "rope.dimension_count").c_str(), uint32_t(head_dim));
  }
}

}  // namespace

PruneSource::~PruneSource() = default;

PruneSource::PruneSource(const fs::path& path) : path_(path) {
  const std::string p = path.string();
  if (!fs::exists(path)) fail("model not found: '{}'", p);
  ggml_context* meta = nullptr;
  gguf_init_params ip{true, &meta};
  g_.reset(gguf_init_from_file(path.c_str(), ip));
  meta_.reset(meta);
  if (!g_) fail("'{}' is not a readable GGUF file", p);
  const int64_t aid = gguf_find_key(g_.get(), "general.architecture");
  if (aid < 0 || gguf_get_kv_type(g_.get(), aid) != GGUF_TYPE_STRING) fail("'{}': no general.architecture", p);
  arch_ = gguf_get_val_str(g_.get(), aid);
  if (arch_ != "llama" && arch_ != "deci") fail("'{}': pruning supports the llama and deci architectures, not '{}'", p, arch_);
  const std::vector<int> embd = int_or_array("embedding_length", true, 0);
  n_embd_ = embd[0];
  n_ff_ = int_or_array("feed_forward_length", true, 0);
  n_head_ = int_or_array("attention.head_count", true, 0);
  n_head_kv_ = int_or_array("attention.head_count_kv", false, -1);
  for (size_t i = 0; i < n_head_kv_.size(); ++i)
    if (n_head_kv_[i] < 0) n_head_kv_[i] = n_head_[i];
  head_dim_ = int(gguf_int_or(g_.get(), arch_ + ".attention.key_length", n_embd_ / std::max(1, n_head_[0]), p));
  for (int il = 0; il < n_layer(); ++il)
    if (n_head_[size_t(il)] <= 0 || n_head_kv_[size_t(il)] <= 0 || n_ff_[size_t(il)] <= 0 ||
        n_head_[size_t(il)] % n_head_kv_[size_t(il)] != 0)
      fail("'{}': layer {} has {} heads, {} key/value heads and FFN width {}: pruning needs attention and an FFN in "
           "every layer", p, il, n_head_[size_t(il)], n_head_kv_[size_t(il)], n_ff_[size_t(il)]);
  for (int64_t i = 0; i < gguf_get_n_tensors(g_.get()); ++i) {
    const ggml_type t = gguf_get_tensor_type(g_.get(), i);
    if (!float_type(t))
      fail("'{}': tensor '{}' is {}; prune an F32/F16/BF16 model, then quantize", p, gguf_get_tensor_name(g_.get(), i),
           ggml_type_name(t));
    if (ggml_n_dims(ggml_get_tensor(meta_.get(), gguf_get_tensor_name(g_.get(), i))) > 2)
      fail("'{}': tensor '{}' has more than 2 dimensions (not supported)", p, gguf_get_tensor_name(g_.get(), i));
  }
}

// A per-layer value: an integer key (the same in every layer) or an array of n_layer integers.
std::vector<int> PruneSource::int_or_array(const char* suffix, bool required, int def) const {
  const std::string p = path_.string();
  const int64_t n_layer = gguf_int_required(g_.get(), arch_ + ".block_count", p);
  if (n_layer <= 0 || n_layer > 4096) fail("'{}': {}.block_count = {} is out of range", p, arch_, n_layer);
  return gguf_ints_per_layer(g_.get(), arch_ + "." + suffix, int(n_layer), required, def, p);
}

uint64_t PruneSource::n_params() const {
  uint64_t n = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(g_.get()); ++i)
    n += uint64_t(ggml_nelements(ggml_get_tensor(meta_.get(), gguf_get_tensor_name(g_.get(), i))));
  return n;
}

uint64_t PruneSource::n_layer_params() const {
  uint64_t n = 0;
  for (int64_t i = 0; i < gguf_get_n_tensors(g_.get()); ++i) {
    const char* name = gguf_get_tensor_name(g_.get(), i);
    if (starts_with(name, "blk.")) n += uint64_t(ggml_nelements(ggml_get_tensor(meta_.get(), name)));
  }
  return n;
}

bool PruneSource::has(const std::string& name) const { return gguf_find_tensor(g_.get(), name.c_str()) >= 0; }

std::vector<float> PruneSource::read(const std::string& name) const {
  const int64_t id = gguf_find_tensor(g_.get(), name.c_str());
  if (id < 0) fail("'{}': no tensor '{}'", path_.string(), name);
  const ggml_type t = gguf_get_tensor_type(g_.get(), id);
  std::vector<char> raw = gguf_tensor_bytes(path_, g_.get(), id);
  const int64_t n = ggml_nelements(ggml_get_tensor(meta_.get(), name.c_str()));
  if (raw.size() != size_t(n) * ggml_type_size(t)) fail("'{}': tensor '{}' has the wrong size", path_.string(), name);
  std::vector<float> out(static_cast<size_t>(n));
  if (t == GGML_TYPE_F32)
    std::memcpy(out.data(), raw.data(), raw.size());
  else
    ggml_get_type_traits(t)->to_float(raw.data(), out.data(), n);
  return out;
}

void PruneSource::copy_kv(gguf_context* dst, const std::string& arch) const {
  for (int64_t i = 0; i < gguf_get_n_kv(g_.get()); ++i) {
    std::string key = gguf_get_key(g_.get(), i);
    if (starts_with(key, arch_ + ".")) key = arch + key.substr(arch_.size());
    copy_key(dst, key, g_.get(), i);
  }
  gguf_set_val_str(dst, "general.architecture", arch.c_str());
}

void PruneSource::write_pruned(const fs::path& out, const std::vector<PruneLayerPlan>& plan) const {
  if (plan.empty()) fail("pruning '{}': no layer left", path_.string());
  std::vector<int> ff, head, head_kv;
  for (const auto& l : plan) {
    ff.push_back(int(l.neurons.size()));
    head_kv.push_back(int(l.groups.size()));
    head.push_back(head_kv.back() * (n_head(l.source) / n_head_kv(l.source)));
  }
  auto same = [](const std::vector<int>& v) { return std::all_of(v.begin(), v.end(), [&](int x) { return x == v[0]; }); };
  const bool uniform = same(ff) && same(head) && same(head_kv);
  const std::string arch = uniform ? "llama" : "deci";
  GgufWriter w;
  copy_kv(w.kv(), arch);
  set_shape_keys(w.kv(), arch, ff, head, head_kv, uniform, n_embd_, head_dim_);
  std::map<int, size_t> new_index;
  for (size_t i = 0; i < plan.size(); ++i) new_index[plan[i].source] = i;
  std::map<std::string, Mapping> maps;
  for (int64_t i = 0; i < gguf_get_n_tensors(g_.get()); ++i) {
    const std::string name = gguf_get_tensor_name(g_.get(), i);
    const ggml_tensor* t = ggml_get_tensor(meta_.get(), name.c_str());
    int64_t ne0 = t->ne[0], ne1 = t->ne[1];
    Mapping m{name, Cut::copy, {}};
    std::string out_name = name;
    if (starts_with(name, "blk.")) {
      const size_t dot = name.find('.', 4);
      const int src = std::stoi(name.substr(4, dot - 4));
      auto it = new_index.find(src);
      if (it == new_index.end()) continue;  // a removed layer
      const PruneLayerPlan& l = plan[it->second];
      const std::string suffix = name.substr(dot + 1);
      out_name = "blk." + std::to_string(it->second) + "." + suffix;
      const int per_group = n_head(src) / n_head_kv(src);
      if (starts_with(suffix, "attn_q.")) m = {name, Cut::rows, head_rows(l.groups, per_group, head_dim_)};
      else if (starts_with(suffix, "attn_k.") || starts_with(suffix, "attn_v."))
        m = {name, Cut::rows, head_rows(l.groups, 1, head_dim_)};
      else if (suffix == "attn_output.weight") m = {name, Cut::cols, head_rows(l.groups, per_group, head_dim_)};
      else if (starts_with(suffix, "ffn_gate.") || starts_with(suffix, "ffn_up."))
        m = {name, Cut::rows, {l.neurons.begin(), l.neurons.end()}};
      else if (suffix == "ffn_down.weight") m = {name, Cut::cols, {l.neurons.begin(), l.neurons.end()}};
      if (m.cut == Cut::rows) (ne1 == 1 ? ne0 : ne1) = int64_t(m.index.size());
      if (m.cut == Cut::cols) ne0 = int64_t(m.index.size());
    }
    w.add_tensor(out_name, t->type, ne0, ne1);
    maps[out_name] = std::move(m);
  }
  w.write(out, [&](const std::string& name, float* dst, int64_t n) {
    const Mapping& m = maps.at(name);
    const std::vector<float> src = read(m.source);
    const ggml_tensor* t = ggml_get_tensor(meta_.get(), m.source.c_str());
    const int64_t ne0 = t->ne[0], ne1 = t->ne[1];
    int64_t k = 0;
    if (m.cut == Cut::copy) {
      std::copy(src.begin(), src.end(), dst);
      k = int64_t(src.size());
    } else if (m.cut == Cut::rows && ne1 == 1) {  // a bias: one value per row
      for (int64_t r : m.index) dst[k++] = src[size_t(r)];
    } else if (m.cut == Cut::rows) {
      for (int64_t r : m.index)
        for (int64_t c = 0; c < ne0; ++c) dst[k++] = src[size_t(r * ne0 + c)];
    } else {
      for (int64_t r = 0; r < ne1; ++r)
        for (int64_t c : m.index) dst[k++] = src[size_t(r * ne0 + c)];
    }
    if (k != n) fail("internal: pruned tensor '{}' has {} values, expected {}", name, k, n);
  });
}

}  // namespace cogumi
