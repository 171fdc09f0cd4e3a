// cogumi/compress: a GGUF opened for reading (header only; tensor data read on demand). Shared
// by lora_shrink, pack and vocab_trim.
#pragma once

#include <ggml.h>
#include <gguf.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

class GgufFile {
 public:
  // Throws Error naming the path for a missing or unreadable file.
  explicit GgufFile(const std::filesystem::path& path);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  gguf_context* get() const { return g_; }
  const std::filesystem::path& path() const { return path_; }
  // A string / f32 key; `fallback` when the key is missing; Error when it has another type.
  std::string str(const char* key, const std::string& fallback = "") const;
  float f32(const char* key, float fallback) const;
  int64_t tensor_id(const std::string& name) const;  // Error naming file and tensor when missing
  const int64_t* ne(int64_t id) const { return gguf_get_tensor_ne(g_, id); }
  ggml_type type(int64_t id) const { return gguf_get_tensor_type(g_, id); }
  std::vector<char> bytes(int64_t id) const;
  // The tensor as float32 (F32, F16, BF16 or any type ggml can dequantize).
  std::vector<float> floats(int64_t id) const;

 private:
  std::filesystem::path path_;
  gguf_context* g_ = nullptr;
};

// A file written under a temporary name (PATH.part.PID) and renamed over `path` by commit()
// (after fflush and fsync); removed if never committed, so a failed or interrupted write leaves
// neither a partial file under `path` nor the temporary behind.
class AtomicFileOut {
 public:
  explicit AtomicFileOut(const std::filesystem::path& path);
  ~AtomicFileOut();
  AtomicFileOut(const AtomicFileOut&) = delete;
  AtomicFileOut& operator=(const AtomicFileOut&) = delete;
  void put(const void* d, size_t n);
  template <typename T>
  void put_pod(T v) { put(&v, sizeof v); }  // little-endian hosts (x86-64, aarch64)
  void pad_to(uint64_t offset);              // zero bytes up to `offset`
  void commit();
  uint64_t written() const { return written_; }

 private:
  std::filesystem::path path_, tmp_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
  uint64_t written_ = 0;
};

}  // namespace cogumi
