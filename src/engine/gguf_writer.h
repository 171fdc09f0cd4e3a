// cogumi/engine: GGUF files for engine/train/compress (exposes ggml types): a streaming writer,
// and raw reads of one tensor's data.
//
// Collects key/values and tensor descriptions, then writes the header and streams each
// tensor's data from a callback, so an 8B model never needs to sit in memory at once.
// The file appears under its final name only when complete (temp file, checked flush, fsync and
// close, rename, directory fsync); a failed write (a full disk) leaves the previous file intact.
#pragma once

#include <ggml.h>
#include <gguf.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cogumi {

class GgufWriter {
 public:
  GgufWriter();
  ~GgufWriter();
  gguf_context* kv() { return gguf_.get(); }
  // Declares a tensor (1-D when ne1 == 1). type: GGML_TYPE_F32, F16 or BF16.
  void add_tensor(const std::string& name, ggml_type type, int64_t ne0, int64_t ne1 = 1);
  // fill(name, out, n) writes n float32 values; they are converted to the tensor's type.
  using FillFn = std::function<void(const std::string& name, float* out, int64_t n)>;
  void write(const std::filesystem::path& path, const FillFn& fill);

 private:
  struct Decl {
    std::string name;
    ggml_type type;
    int64_t ne0, ne1;
  };
  struct GgufDel {
    void operator()(gguf_context* g) const { gguf_free(g); }
  };
  std::unique_ptr<gguf_context, GgufDel> gguf_;
  std::vector<Decl> decls_;
};

// The raw bytes of tensor `id` of an open GGUF (`g` read from `path` with no_alloc). Throws Error
// naming the file and tensor when the data is cut short.
std::vector<char> gguf_tensor_bytes(const std::filesystem::path& path, const gguf_context* g, int64_t id);

// Deterministic uniform fill with the given standard deviation, keyed by (seed, name) and
// independent of the thread count.
void fill_uniform(float* out, int64_t n, uint64_t seed, const std::string& name, float stddev, int n_threads);

}  // namespace cogumi
