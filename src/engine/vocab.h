// cogumi/engine: Cogumi's built-in tokenizer vocabulary (engine-internal).
//
// A SentencePiece-style ("llama" tokenizer model in GGUF) vocabulary that stock llama.cpp
// tokenizes: control tokens, 256 byte-fallback tokens, every printable ASCII character,
// and whole words with all their prefixes (SPM merges pairs, so each word must be
// reachable one character at a time). Words are "▁"-prefixed as SentencePiece does.
#pragma once

#include <string>
#include <vector>

namespace cogumi {

struct BuiltinVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // llama_token_type values
  int32_t unk = 0, bos = 1, eos = 2, im_start = 3, im_end = 4;
};

BuiltinVocab builtin_vocab(const std::vector<std::string>& extra_words = {});

// A vocabulary fitted to a corpus: the control, byte-fallback and printable-ASCII tokens above,
// plus up to n_merges byte-pair merges learned from `texts` (SentencePiece-BPE, as Llama 2's
// tokenizer: a merged piece's score falls with its rank, so llama.cpp's SPM tokenizer, which
// merges the best-scoring adjacent pair first, replays the merges in order). Words start at
// "▁" (a space) or a newline and pieces never cross them; digits are never merged, so
// numbers are read and written one digit at a time. Deterministic for the same texts.
// split_punct: no merge joins letters to punctuation, much as GPT-2's and Llama 3's pre-tokenizers split them
// (here '_' counts as a letter, for code names, and bytes above 0x7F as punctuation), so "B. Mia" is
// [B][.][ Mia] and "than Bob." is [ than][ Bob][.]: a name or an option letter is the same token wherever it
// is copied from (without it, "B." and " Bob." are pieces of their own).
BuiltinVocab learned_vocab(const std::vector<std::string>& texts, int n_merges, bool split_punct = false);

}  // namespace cogumi
