#include "compress/gguf_file.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "engine/gguf_writer.h"

namespace cogumi {

GgufFile::GgufFile(const std::filesystem::path& path) : path_(path) {
  if (!std::filesystem::exists(path)) fail("file not found: '{}'", path.string());
  gguf_init_params ip{true, nullptr};
  g_ = gguf_init_from_file(path.c_str(), ip);
  if (!g_) fail("'{}' is not a readable GGUF file", path.string());
}

GgufFile::~GgufFile() {
  if (g_) gguf_free(g_);
}

std::string GgufFile::str(const char* key, const std::string& fallback) const {
  const int64_t id = gguf_find_key(g_, key);
  if (id < 0) return fallback;
  if (gguf_get_kv_type(g_, id) != GGUF_TYPE_STRING)
    fail("'{}': key '{}' is {}, expected a string", path_.string(), key, gguf_type_name(gguf_get_kv_type(g_, id)));
  return gguf_get_val_str(g_, id);
}

float GgufFile::f32(const char* key, float fallback) const {
  const int64_t id = gguf_find_key(g_, key);
  if (id < 0) return fallback;
  if (gguf_get_kv_type(g_, id) != GGUF_TYPE_FLOAT32)
    fail("'{}': key '{}' is {}, expected f32", path_.string(), key, gguf_type_name(gguf_get_kv_type(g_, id)));
  return gguf_get_val_f32(g_, id);
}

int64_t GgufFile::tensor_id(const std::string& name) const {
  const int64_t id = gguf_find_tensor(g_, name.c_str());
  if (id < 0) fail("'{}': no tensor '{}'", path_.string(), name);
  return id;
}

std::vector<char> GgufFile::bytes(int64_t id) const { return gguf_tensor_bytes(path_, g_, id); }

std::vector<float> GgufFile::floats(int64_t id) const {
  const ggml_type t = type(id);
  const std::vector<char> raw = bytes(id);
  const int64_t* d = ne(id);
  const int64_t n = d[0] * d[1] * d[2] * d[3];
  std::vector<float> out(static_cast<size_t>(n));
  if (t == GGML_TYPE_F32) {
    std::memcpy(out.data(), raw.data(), out.size() * sizeof(float));
    return out;
  }
  const auto* traits = ggml_get_type_traits(t);
  if (!traits->to_float)
    fail("'{}': tensor '{}' has type {}, which cannot be read as floats", path_.string(),
         gguf_get_tensor_name(g_, id), ggml_type_name(t));
  traits->to_float(raw.data(), out.data(), n);
  return out;
}

AtomicFileOut::AtomicFileOut(const std::filesystem::path& path)
    : path_(path), tmp_(path.string() + ".part." + std::to_string(getpid())) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("cannot write '{}': {}", tmp_.string(), std::strerror(errno));
}

AtomicFileOut::~AtomicFileOut() {
  if (f_) std::fclose(f_);
  std::error_code ec;
  if (!committed_) std::filesystem::remove(tmp_, ec);
}

void AtomicFileOut::put(const void* d, size_t n) {
  if (n && std::fwrite(d, 1, n, f_) != n) fail("writing '{}' failed: {}", tmp_.string(), std::strerror(errno));
  written_ += n;
}

void AtomicFileOut::pad_to(uint64_t offset) {
  static const char zeros[256] = {};
  while (written_ < offset) put(zeros, size_t(std::min<uint64_t>(sizeof zeros, offset - written_)));
}

void AtomicFileOut::commit() {
  const bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!ok || !closed) fail("writing '{}' failed: {}", tmp_.string(), std::strerror(err));
  std::filesystem::rename(tmp_, path_);
  committed_ = true;
}

}  // namespace cogumi
