// cogumi/compress: calibration text, cut into fixed-length token chunks. The importance
// matrix (imatrix.h) and the quality report (kld.h) read their data the same way, and the
// same way llama.cpp's llama-imatrix and llama-perplexity do: the whole text tokenized once,
// cut into n_ctx-token chunks, each chunk's first token replaced by BOS when the vocabulary
// adds one.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "engine/model.h"

namespace cogumi {

namespace fs = std::filesystem;

// The text of a calibration file: a .jsonl file gives every string value of every record
// (in order, separated by blank lines); any other file is read as text. Throws Error naming
// the file (and line, for JSONL) when it cannot be read or holds no text.
std::string load_calibration_text(const fs::path& path);

// Chunks of exactly n_ctx tokens; at most max_chunks (<= 0: all). Throws Error, naming the
// file, when the text gives fewer than `min_chunks` chunks.
std::vector<std::vector<Token>> calibration_chunks(const Model& model, const std::string& text, int n_ctx,
                                                   int max_chunks, int min_chunks, const std::string& where);

}  // namespace cogumi
