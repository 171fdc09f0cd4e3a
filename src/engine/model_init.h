// cogumi/engine: models made by Cogumi. Writes llama-architecture GGUFs with seeded random
// weights for any shape (tests, speed benchmarks, the starting point of from-scratch
// training), with either Cogumi's built-in small SentencePiece-style vocabulary or the
// tokenizer copied from any GGUF (for example llama.cpp's models/ggml-vocab-llama-bpe.gguf,
// which is Llama 3's 128,256-token vocabulary).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;

struct ModelShape {
  int n_embd = 64;
  int n_layer = 2;
  int n_head = 4;
  int n_head_kv = 2;
  int n_ff = 128;
  int n_ctx_train = 512;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  bool tie_embeddings = false;  // no output.weight; the output projection reuses token_embd
  // Llama 3.1's RoPE scaling ("rope_type": "llama3"), stored as llama.cpp's converter stores it:
  // per-pair frequency divisors in rope_freqs.weight (llama3_rope_freqs). 0: no rope_freqs.
  float rope_llama3_factor = 0.0f;
  float rope_low_freq_factor = 1.0f, rope_high_freq_factor = 4.0f;
  int rope_orig_ctx = 8192;  // original_max_position_embeddings
  void validate() const;
};

// The rope_freqs.weight values llama.cpp's converter (conversion/llama.py) writes for a
// "llama3" rope_scaling: 1 for short wavelengths, `factor` for long ones, smoothed between.
// ggml_rope_ext divides each pair's frequency by its value.
std::vector<float> llama3_rope_freqs(int head_dim, float base, float factor, float low_freq_factor,
                                     float high_freq_factor, int orig_ctx);

// Named shapes: "tiny" (tests), "nano", "1b" (Llama-3.2-1B), "8b" (Llama-3.1-8B); 1b and 8b carry
// their models' llama3 RoPE scaling (rope_freqs.weight).
ModelShape model_shape_preset(const std::string& name);
std::vector<std::string> model_shape_presets();

struct ModelInitOptions {
  ModelShape shape;
  std::string type = "f32";      // f32, f16, bf16, or any llama.cpp quantization (q8_0, q4_k_m, ...)
  uint64_t seed = 1;
  float init_std = 0.02f;        // weights ~ U(-a, a) with this standard deviation
  fs::path vocab_from;           // empty: Cogumi's built-in vocabulary
  std::vector<std::string> extra_words;  // extra whole-word tokens for the built-in vocabulary
  // Fit the vocabulary to these files instead (JSONL: every string value; other files: the
  // text): byte-pair merges learned on them (see learned_vocab in vocab.h).
  std::vector<fs::path> vocab_train;
  int vocab_merges = 2000;
  bool vocab_split_punct = false;  // learned_vocab's split_punct: no piece joins letters to punctuation
  std::string name = "cogumi-random";
  std::string chat_template;     // empty: ChatML for the built-in vocabulary, the source's otherwise
  int n_threads = 0;
  void validate() const;  // the shape's and these fields' ranges; throws Error naming the flag
};

struct ModelInitResult {
  uint64_t n_params = 0;
  uint64_t file_bytes = 0;
  int n_vocab = 0;
};

// Writes the model to `out` atomically. Throws Error on bad options or I/O failure.
ModelInitResult model_init(const fs::path& out, const ModelInitOptions& opts);

// Quantizes a GGUF model with llama.cpp (type: f16, q8_0, q4_k_m, ...). To f32/f16/bf16 a quantized
// model is dequantized (what a trainer needs); quantized to quantized is refused (llama.cpp's
// requantizing compounds the loss).
void model_quantize(const fs::path& in, const fs::path& out, const std::string& type, int n_threads = 0);

// The ChatML template text stored in models made with the built-in vocabulary.
const std::string& chatml_template();

}  // namespace cogumi
