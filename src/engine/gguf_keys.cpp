#include "engine/gguf_keys.h"

#include "core/error.h"

namespace cogumi {

int64_t gguf_int_at(const gguf_context* g, int64_t id, const std::string& file) {
  switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(g, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(g, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(g, id);
    case GGUF_TYPE_UINT64: {
      const uint64_t v = gguf_get_val_u64(g, id);
      if (v > uint64_t(INT64_MAX)) fail("'{}': GGUF key '{}' = {} is out of range", file, gguf_get_key(g, id), v);
      return int64_t(v);
    }
    case GGUF_TYPE_INT64: return gguf_get_val_i64(g, id);
    default:
      fail("'{}': GGUF key '{}' is {}, expected an integer", file, gguf_get_key(g, id),
           gguf_type_name(gguf_get_kv_type(g, id)));
  }
}

int64_t gguf_int_or(const gguf_context* g, const std::string& key, int64_t def, const std::string& file) {
  const int64_t id = gguf_find_key(g, key.c_str());
  return id < 0 ? def : gguf_int_at(g, id, file);
}

int64_t gguf_int_required(const gguf_context* g, const std::string& key, const std::string& file) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) fail("'{}': missing GGUF key '{}'", file, key);
  return gguf_int_at(g, id, file);
}

std::vector<int> gguf_ints_per_layer(const gguf_context* g, const std::string& key, int n_layer, bool required,
                                     int def, const std::string& file) {
  constexpr int64_t kMax = int64_t(1) << 30;
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) {
    if (required) fail("'{}': missing GGUF key '{}'", file, key);
    return std::vector<int>(size_t(n_layer), def);
  }
  if (gguf_get_kv_type(g, id) != GGUF_TYPE_ARRAY) {
    const int64_t v = gguf_int_at(g, id, file);
    if (v < 0 || v > kMax) fail("'{}': GGUF key '{}' = {} is out of range", file, key, v);
    return std::vector<int>(size_t(n_layer), int(v));
  }
  const gguf_type t = gguf_get_arr_type(g, id);
  if ((t != GGUF_TYPE_INT32 && t != GGUF_TYPE_UINT32) || int64_t(gguf_get_arr_n(g, id)) != n_layer)
    fail("'{}': GGUF key '{}' must be one integer or {} 32-bit integers (one per layer), it is an array of {} {}", file,
         key, n_layer, gguf_get_arr_n(g, id), gguf_type_name(t));
  const auto* d = static_cast<const int32_t*>(gguf_get_arr_data(g, id));
  std::vector<int> out(d, d + n_layer);
  for (int il = 0; il < n_layer; ++il) {
    // A UINT32 above 2^31 reads as negative here: one check covers both signs.
    if (out[size_t(il)] < 0 || out[size_t(il)] > kMax)
      fail("'{}': GGUF key '{}' is out of range in layer {} ({})", file, key, il, out[size_t(il)]);
  }
  return out;
}

float gguf_f32_or(const gguf_context* g, const std::string& key, float def, const std::string& file) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return def;
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT32) return gguf_get_val_f32(g, id);
  if (gguf_get_kv_type(g, id) == GGUF_TYPE_FLOAT64) return float(gguf_get_val_f64(g, id));
  fail("'{}': GGUF key '{}' is {}, expected a float", file, key, gguf_type_name(gguf_get_kv_type(g, id)));
}

std::string gguf_str_or(const gguf_context* g, const std::string& key, const std::string& def, const std::string& file) {
  const int64_t id = gguf_find_key(g, key.c_str());
  if (id < 0) return def;
  if (gguf_get_kv_type(g, id) != GGUF_TYPE_STRING)
    fail("'{}': GGUF key '{}' is {}, expected a string", file, key, gguf_type_name(gguf_get_kv_type(g, id)));
  return gguf_get_val_str(g, id);
}

}  // namespace cogumi
