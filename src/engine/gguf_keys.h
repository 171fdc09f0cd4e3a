// cogumi/engine: typed reads of GGUF metadata for engine/train/compress (exposes gguf types).
//
// gguf_get_val_* assert (abort the process) when a key holds another type than the one asked for,
// so a malformed or hand-edited file would crash the trainer or the pruner. These reads check the
// type first and throw Error naming the file and the key. Integers are accepted in any of GGUF's
// eight integer types, as llama.cpp's loader accepts them. One home for what model_graph.cpp and
// prune_gguf.cpp each had a copy of.
#pragma once

#include <gguf.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cogumi {

// The integer value of key `id` (any GGUF integer type). `file` names the file in the error.
int64_t gguf_int_at(const gguf_context* g, int64_t id, const std::string& file);

// Key `key` as an integer; `def` when it is missing. Error when it has another type.
int64_t gguf_int_or(const gguf_context* g, const std::string& key, int64_t def, const std::string& file);
// Key `key` as an integer; Error naming the key when it is missing or of another type.
int64_t gguf_int_required(const gguf_context* g, const std::string& key, const std::string& file);

// A per-layer value as llama.cpp's get_key_or_arr reads it: one integer (the same in every layer)
// or an array of exactly n_layer 32-bit integers (deci's per-layer FFN widths and head counts).
// Missing: `def` in every layer when `required` is false, else Error. Every value must lie in
// [0, 2^30]; Error naming the key otherwise.
std::vector<int> gguf_ints_per_layer(const gguf_context* g, const std::string& key, int n_layer, bool required,
                                     int def, const std::string& file);

// Key `key` as a float (F32 or F64); `def` when missing. Error when it has another type.
float gguf_f32_or(const gguf_context* g, const std::string& key, float def, const std::string& file);
// Key `key` as a string; `def` when missing. Error when it has another type.
std::string gguf_str_or(const gguf_context* g, const std::string& key, const std::string& def, const std::string& file);

}  // namespace cogumi
