// cogumi/compress (pruning, internal): the source model's GGUF as pruning sees it (shape per
// layer, tensors as float32) and the writer of a pruned copy (llama or deci architecture).
#pragma once

#include <ggml.h>
#include <gguf.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

// What survives of one source layer: the FFN neurons and KV groups kept (ascending indices).
struct PruneLayerPlan {
  int source = 0;
  std::vector<int> neurons;  // of the source layer's n_ff
  std::vector<int> groups;   // of its n_head_kv
};

class PruneSource {
 public:
  explicit PruneSource(const fs::path& path);  // throws Error: unreadable, other arch, quantized
  ~PruneSource();
  PruneSource(const PruneSource&) = delete;
  PruneSource& operator=(const PruneSource&) = delete;

  const fs::path& path() const { return path_; }
  const std::string& arch() const { return arch_; }
  int n_layer() const { return int(n_ff_.size()); }
  int n_embd() const { return n_embd_; }
  int head_dim() const { return head_dim_; }
  int n_ff(int il) const { return n_ff_[size_t(il)]; }
  int n_head(int il) const { return n_head_[size_t(il)]; }
  int n_head_kv(int il) const { return n_head_kv_[size_t(il)]; }
  uint64_t n_params() const;        // every tensor
  uint64_t n_layer_params() const;  // blk.* tensors
  // Tensor data as float32 (F32/F16/BF16). Throws Error naming the file and tensor.
  std::vector<float> read(const std::string& name) const;
  bool has(const std::string& name) const;

  // Writes the pruned model atomically: the layers in `plan` (in order, renumbered), each with its
  // kept neurons and groups; every other tensor and key copied. One shape in all layers writes a
  // `llama` GGUF, otherwise `deci` with per-layer arrays.
  void write_pruned(const fs::path& out, const std::vector<PruneLayerPlan>& plan) const;

 private:
  struct GgufDel {
    void operator()(gguf_context* g) const { gguf_free(g); }
  };
  struct GgmlDel {
    void operator()(ggml_context* c) const { ggml_free(c); }
  };
  std::vector<int> int_or_array(const char* suffix, bool required, int def) const;
  void copy_kv(gguf_context* dst, const std::string& arch) const;
  fs::path path_;
  std::unique_ptr<ggml_context, GgmlDel> meta_;
  std::unique_ptr<gguf_context, GgufDel> g_;
  std::string arch_;
  int n_embd_ = 0, head_dim_ = 0;
  std::vector<int> n_ff_, n_head_, n_head_kv_;
};

}  // namespace cogumi
