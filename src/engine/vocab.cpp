#include "engine/vocab.h"

#include <set>

namespace cogumi {

namespace {
// Frequent English words plus the vocabulary of Cogumi's domains (math, code, reasoning,
// tool calls). Order matters only for ties; longer tokens win merges through their score.
const char* kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "was", "on", "be", "by", "are",
    "this", "from", "or", "an", "at", "not", "which", "have", "has", "but", "all", "can", "one", "two", "three",
    "four", "five", "six", "seven", "eight", "nine", "ten", "each", "more", "than", "many", "how", "what", "who",
    "answer", "question", "number", "numbers", "total", "sum", "difference", "product", "times", "plus", "minus",
    "does", "do", "did", "he", "she", "they", "his", "her", "their", "if", "then", "else", "so", "there", "left",
    "buys", "sells", "has", "had", "gives", "gets", "more", "less", "apples", "books", "dollars", "cost", "costs",
    "def", "return", "for", "while", "range", "len", "list", "int", "str", "True", "False", "None", "import",
    "print", "result", "value", "values", "self", "class", "elif", "not", "and", "or", "in", "lambda", "yield",
    "function", "name", "arguments", "parameters", "call", "tool", "type", "string", "integer", "object",
    "taller", "shorter", "older", "younger", "larger", "smaller", "first", "last", "before", "after", "all",
    "some", "no", "therefore", "because", "true", "false", "Which", "following", "statement", "correct",
    "user", "assistant", "system", "The", "A", "B", "C", "D", "Answer", "Question", "Let", "We", "So",
};
}  // namespace

BuiltinVocab builtin_vocab(const std::vector<std::string>& extra_words) {
  BuiltinVocab v;
  std::set<std::string> seen;
  auto add = [&](const std::string& t, float score, int32_t type) {
    if (!seen.insert(t).second) return;
    v.tokens.push_back(t);
    v.scores.push_back(score);
    v.types.push_back(type);
  };
  // llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte.
  add("<unk>", 0.0f, 2);
  add("<s>", 0.0f, 3);
  add("</s>", 0.0f, 3);
  add("<|im_start|>", 0.0f, 3);
  add("<|im_end|>", 0.0f, 3);
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    add(buf, 0.0f, 6);
  }
  const std::string sp = "\xE2\x96\x81";  // U+2581, SentencePiece's space marker
  add(sp, -1.0f, 1);
  for (int c = 0x21; c < 0x7F; ++c) add(std::string(1, char(c)), -1.0f, 1);
  add("\n", -1.0f, 1);
  for (int c = 0x21; c < 0x7F; ++c) add(sp + char(c), -0.5f, 1);
  // Digit pairs keep numbers short without a huge table.
  for (int a = 0; a < 10; ++a)
    for (int b = 0; b < 10; ++b) add(std::string{char('0' + a), char('0' + b)}, -0.6f, 1);
  auto add_word = [&](const std::string& w) {
    // Every prefix of "▁word" so SPM's pairwise merges can reach the whole word.
    std::string t = sp;
    for (size_t i = 0; i < w.size(); ++i) {
      t += w[i];
      if (i >= 1) add(t, float(i), 1);
    }
  };
  for (const char* w : kWords) add_word(w);
  for (const auto& w : extra_words) add_word(w);
  return v;
}

}  // namespace cogumi
