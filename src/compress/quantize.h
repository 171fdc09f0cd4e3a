// cogumi/compress: quantization through llama_model_quantize, with an importance matrix
// (imatrix.h; ours or llama-imatrix's) and per-tensor type overrides, passed the way the pinned
// llama-quantize passes them (imatrix as mean x^2 per column, overrides as regex=type).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

struct QuantizeOptions {
  fs::path in;                 // required: source GGUF (F32/F16/BF16; quantized only with allow_requantize)
  fs::path out;                // required: written atomically
  std::string type = "q4_k_m"; // any llama-quantize type name, case-insensitive (q8_0, q6_k, iq4_xs, iq2_xs, ...)
  fs::path imatrix;            // optional: imatrix GGUF; IQ1/IQ2 types and Q2_K_S require one
  // "PATTERN=TYPE" (PATTERN: a regex on tensor names, TYPE: a ggml type such as q8_0), e.g.
  // "output=q8_0", "token_embd=q8_0", "ffn_down=q6_k". Several may be given.
  std::vector<std::string> tensor_types;
  std::string output_type;     // type of output.weight ("" = llama.cpp's choice for `type`)
  std::string token_embd_type; // type of token_embd.weight ("" = llama.cpp's choice)
  bool allow_requantize = false;  // quantized input (the loss compounds); always allowed to f32/f16/bf16
  bool pure = false;           // every tensor at `type` (no mixes)
  int n_threads = 0;           // 0: every core
  void validate() const;       // throws Error naming the option
};

struct QuantizeResult {
  uint64_t in_bytes = 0, out_bytes = 0;
  int n_imatrix_entries = 0;
  double seconds = 0;
};

QuantizeResult quantize_model(const QuantizeOptions& opts);

// Type names quantize_model accepts, in llama-quantize's order.
std::vector<std::string> quantize_type_names();

}  // namespace cogumi
