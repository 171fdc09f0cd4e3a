#include "compress/calib.h"

#include <llama.h>

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

namespace {

void collect_strings(const json& v, std::string& out) {
  if (v.is_string()) {
    if (!out.empty()) out += "\n\n";
    out += v.get<std::string>();
  } else if (v.is_array() || v.is_object()) {
    for (const auto& x : v) collect_strings(x, out);
  }
}

}  // namespace

std::string load_calibration_text(const fs::path& path) {
  if (!fs::exists(path)) fail("calibration file not found: '{}'", path.string());
  std::string text;
  if (path.extension() == ".jsonl") {
    read_jsonl(path, [&](const json& obj, size_t) { collect_strings(obj, text); });
  } else {
    text = read_file(path);
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) fail("calibration file '{}' holds no text", path.string());
  return text;
}

std::vector<std::vector<Token>> calibration_chunks(const Model& model, const std::string& text, int n_ctx,
                                                   int max_chunks, int min_chunks, const std::string& where) {
  if (n_ctx < 16) fail("{}: a chunk must be at least 16 tokens (got {})", where, n_ctx);
  std::vector<Token> tokens = model.tokenize(text, /*add_special=*/true, /*parse_special=*/false);
  size_t n = tokens.size() / size_t(n_ctx);
  if (max_chunks > 0) n = std::min(n, size_t(max_chunks));
  if (int(n) < min_chunks)
    fail("{}: {} tokens give {} chunk(s) of {} tokens; at least {} needed (more text, or a smaller --chunk/--ctx)",
         where, tokens.size(), n, n_ctx, min_chunks);
  const llama_vocab* vocab = llama_model_get_vocab(model.raw());
  const bool add_bos = llama_vocab_get_add_bos(vocab) && llama_vocab_bos(vocab) != LLAMA_TOKEN_NULL;
  std::vector<std::vector<Token>> chunks(n);
  for (size_t i = 0; i < n; ++i) {
    chunks[i].assign(tokens.begin() + long(i * n_ctx), tokens.begin() + long((i + 1) * n_ctx));
    if (add_bos) chunks[i][0] = llama_vocab_bos(vocab);
  }
  return chunks;
}

}  // namespace cogumi
