// cogumi/compress: the importance matrix. For every matrix multiplication with a model weight,
// the sum over calibration tokens of x_j^2 for each input column j (and the token count), read
// from llama.cpp's graph through its eval callback. Written in llama.cpp's imatrix GGUF format
// (tensors "<weight>.in_sum2" [n_cols] and "<weight>.counts" [1]; keys general.type = "imatrix",
// imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size), so llama-quantize --imatrix reads
// our files and we read its.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "engine/model.h"

namespace cogumi {

namespace fs = std::filesystem;

struct ImatrixEntry {
  std::vector<double> sums;     // [n_mat * n_cols]: sum of x_j^2 per input column (per expert for 3-D weights)
  std::vector<int64_t> counts;  // [n_mat]: tokens seen
};

struct Imatrix {
  std::map<std::string, ImatrixEntry> entries;  // by weight name ("blk.0.attn_q.weight")
  std::vector<std::string> datasets;            // calibration file names
  int32_t chunk_count = 0;
  int32_t chunk_size = 0;
  // Mean x_j^2 per column (sums / counts), what llama_model_quantize takes as importance.
  std::map<std::string, std::vector<float>> importance() const;
};

struct ImatrixOptions {
  fs::path model;             // required: the model whose activations are measured (F32/F16 preferred)
  fs::path data;              // required: calibration text (.txt) or records (.jsonl, every string value)
  fs::path out;               // required: imatrix GGUF to write (atomically)
  int chunk = 512;            // tokens per chunk (llama-imatrix's -c); each chunk is one batch
  int chunks = 0;             // at most this many chunks; 0: every chunk the data gives
  bool process_output = false;  // also collect output.weight (llama-imatrix --process-output)
  int n_threads = 0;          // 0: every core
  bool progress = true;
  // llama.cpp's CPU weight repacking (engine/model.h): off, so the statistics come from the plain
  // kernels on every CPU.
  bool repack = false;
  void validate() const;      // throws Error naming the option
};

struct ImatrixResult {
  int n_entries = 0;
  int n_chunks = 0;
  int64_t n_tokens = 0;
  double seconds = 0;
};

// Collects statistics over `chunks` (each one decode of chunk.size() tokens).
Imatrix collect_imatrix(const Model& model, const std::vector<std::vector<Token>>& chunks,
                        bool process_output = false, int n_threads = 0, bool progress = false);

// Loads the model and data, collects, writes opts.out.
ImatrixResult compute_imatrix(const ImatrixOptions& opts);

// llama.cpp's imatrix GGUF format (see above). read_imatrix throws Error naming the file for a
// missing or malformed file (including the legacy .dat format, which we do not read).
void write_imatrix(const Imatrix& im, const fs::path& path);
Imatrix read_imatrix(const fs::path& path);

}  // namespace cogumi
