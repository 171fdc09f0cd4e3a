// cogumi/compress: LoRA rank reduction (`cogumi lora shrink`). Each adapted weight's applied
// delta s * B A (s = alpha / r, or 1 when alpha is 0) is factored exactly by a thin SVD (QR of
// B and of A^T, then an SVD of the small r x r core), truncated, and written back as new A/B of
// lower rank in llama.cpp's adapter layout. Ranks may differ per tensor: llama.cpp scales each
// pair by alpha / (its own rank), and the new factors carry that scale, so the applied delta is
// the truncated SVD exactly. The Frobenius error of a tensor's delta is the square root of the
// discarded singular values' energy (Eckart-Young: no rank-k matrix is closer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

struct LoraShrinkOptions {
  int rank = 0;          // keep at most this rank per tensor (>= 1); 0: not this target
  double energy = 0.0;   // keep the fewest singular values holding this fraction of each delta's
                         // squared Frobenius norm, in (0, 1]; 0: not this target
  double size_mb = 0.0;  // tensor data at most this many MB (10^6 bytes), singular values chosen
                         // across tensors by energy per byte (at least rank 1 each); 0: not this
  int n_threads = 0;     // tensors factored at once (0: compute_threads' default; 0-4096); the output is the same
  // Exactly one target must be set (the flags --rank, --energy, --size-mb).
  void validate() const;
};

struct LoraShrinkTensor {
  std::string name;            // the adapted weight ("blk.0.attn_q.weight")
  int64_t n_in = 0, n_out = 0;
  int rank_in = 0, rank_out = 0;
  std::vector<double> sigma;   // singular values of the applied delta, largest first (rank_in of them)
  double energy_kept = 1.0;    // fraction of ||delta||_F^2 kept
  double frob_error = 0.0;     // ||delta - delta'||_F, as predicted by the discarded singular values
};

struct LoraShrinkResult {
  std::vector<LoraShrinkTensor> tensors;
  uint64_t bytes_in = 0, bytes_out = 0;    // tensor data of the input and output adapters
  uint64_t params_in = 0, params_out = 0;
  uint64_t file_bytes_out = 0;
};

// Reads `in`, writes `out` atomically (the input's metadata kept; A/B in the input's types).
// Throws Error for a file that is not a LoRA adapter, a pair with mismatched shapes, or a
// --size-mb below the rank-1 minimum (the message gives that minimum).
LoraShrinkResult lora_shrink(const std::filesystem::path& in, const std::filesystem::path& out,
                             const LoraShrinkOptions& opts);

// The applied delta s * B A of adapted weight `weight` (row-major, n_out rows of n_in values),
// as llama.cpp adds it at scale 1. For tests and reports.
std::vector<float> lora_delta(const std::filesystem::path& adapter, const std::string& weight, int64_t* n_in = nullptr,
                              int64_t* n_out = nullptr);

}  // namespace cogumi
