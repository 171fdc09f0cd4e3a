// cogumi/compress: vocabulary trimming (`cogumi compress vocab`). Keeps the tokens a corpus uses,
// every vocabulary piece inside them (the SPM/BPE merge intermediates: a merge the tokenizer makes
// on corpus text always produces a substring of a token it ends with), every single-character
// piece, and every special/control/byte token; drops the rest and rewrites the tokenizer
// (tokens, token types, scores, merges whose halves and result survive, special token ids) and
// the token_embd / output rows, in any tensor type. Stock llama.cpp loads the result, and text
// from the corpus tokenizes exactly as before (the tokenizer's merge choices only ever pick from
// pieces that are kept). Other text may split into more, shorter pieces where a dropped piece
// was used.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cogumi {

struct VocabTrimOptions {
  std::vector<std::filesystem::path> corpus;  // JSONL (every string value) or plain text; >= 1
  int min_count = 1;       // a corpus token is kept when it occurs at least this often (>= 1)
  bool keep_chars = true;  // keep every one-character piece (other text still spells out)
  // Also keep the tokens the model itself writes in this many greedy tokens after each corpus
  // text (0: off; 0..4096). A model may write a word in pieces that the tokenizer never makes
  // from text (non-canonical tokenizations; common in random or undertrained models), so the
  // corpus's own tokens need not cover its greedy output.
  int generate = 0;
  void validate() const;   // throws Error naming the flag
};

struct VocabTrimResult {
  int n_vocab_in = 0, n_vocab_out = 0;
  int n_used = 0;          // distinct tokens of the corpus kept (>= min_count)
  int n_inner = 0;         // pieces kept only as intermediates inside used tokens
  int n_generated = 0;     // distinct tokens the model wrote (--generate) that the corpus text lacks
  uint64_t n_merges_in = 0, n_merges_out = 0;
  uint64_t corpus_tokens = 0;
  uint64_t bytes_in = 0, bytes_out = 0;  // file sizes
};

// Trims `model` into `out` (written atomically). Throws Error for an unsupported tokenizer
// (only "llama" SPM and "gpt2" BPE vocabularies), unreadable corpus files (naming file:line), or
// a model without token_embd.weight.
VocabTrimResult vocab_trim(const std::filesystem::path& model, const std::filesystem::path& out,
                           const VocabTrimOptions& opts);

// Log-likelihood of texts under a model, comparable across vocabularies per byte: each text is
// cut to `max_bytes` (at a UTF-8 boundary) and scored as llama.cpp tokenizes it (BOS first).
struct TextScore {
  uint64_t n_texts = 0, n_tokens = 0, n_bytes = 0;  // tokens scored (after BOS), bytes of text
  double nll = 0.0;                                 // natural log, summed
  double ppl() const;                               // per token of this model's tokenizer
  double bits_per_byte() const;                     // comparable between tokenizers
};
TextScore score_texts(const std::filesystem::path& model, const std::vector<std::string>& texts,
                      size_t max_bytes = 1000, int n_threads = 0);

// The texts of corpus files as vocab_trim reads them (JSONL: every string value; else the file).
std::vector<std::string> corpus_file_texts(const std::vector<std::filesystem::path>& files);

}  // namespace cogumi
