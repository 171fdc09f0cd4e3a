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

}  // namespace cogumi
