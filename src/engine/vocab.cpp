#include "engine/vocab.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <string>
#include <map>
#include <set>
#include <unordered_map>

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

namespace {

const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's space marker

// Tokens in order, each once.
struct VocabBuilder {
  BuiltinVocab v;
  std::set<std::string> seen;
  void add(const std::string& t, float score, int32_t type) {
    if (!seen.insert(t).second) return;
    v.tokens.push_back(t);
    v.scores.push_back(score);
    v.types.push_back(type);
  }
};

// Control tokens, byte fallback, the space marker, printable ASCII and newline: the start of
// both vocabularies. llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte.
void add_base(VocabBuilder& vb) {
  vb.add("<unk>", 0.0f, 2);
  vb.add("<s>", 0.0f, 3);
  vb.add("</s>", 0.0f, 3);
  vb.add("<|im_start|>", 0.0f, 3);
  vb.add("<|im_end|>", 0.0f, 3);
  char buf[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(buf, sizeof buf, "<0x%02X>", b);
    vb.add(buf, 0.0f, 6);
  }
  vb.add(kSpace, -1.0f, 1);
  for (int c = 0x21; c < 0x7F; ++c) vb.add(std::string(1, char(c)), -1.0f, 1);
  vb.add("\n", -1.0f, 1);
}

}  // namespace

BuiltinVocab learned_vocab(const std::vector<std::string>& texts, int n_merges, bool split_punct) {
  VocabBuilder vb;
  add_base(vb);
  // Words: split before each space and around newlines, spaces written as the marker.
  std::map<std::string, int64_t> word_count;
  for (const auto& t : texts) {
    std::string w;
    auto flush = [&] {
      if (!w.empty()) word_count[w]++;
      w.clear();
    };
    for (char c : t) {
      if (c == ' ') {
        flush();
        w = kSpace;
      } else if (c == '\n') {
        flush();
      } else {
        w += c;
      }
    }
    flush();
  }
  // Symbols: the marker (3 bytes) or one byte. Pieces are interned as ids.
  std::vector<std::string> piece;
  std::unordered_map<std::string, int> id_of;
  auto intern = [&](const std::string& p) {
    auto [it, fresh] = id_of.emplace(p, int(piece.size()));
    if (fresh) piece.push_back(p);
    return it->second;
  };
  struct Word {
    std::vector<int> sym;
    int64_t n;
  };
  std::vector<Word> words;
  for (const auto& [w, n] : word_count) {
    Word wd{{}, n};
    for (size_t i = 0; i < w.size();) {
      size_t len = w.compare(i, kSpace.size(), kSpace) == 0 ? kSpace.size() : 1;
      wd.sym.push_back(intern(w.substr(i, len)));
      i += len;
    }
    words.push_back(std::move(wd));
  }
  auto has_digit = [&](int id) {
    return std::any_of(piece[size_t(id)].begin(), piece[size_t(id)].end(),
                       [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  };
  // A piece's class for split_punct: 0 the bare space marker (joins anything), 1 letters, 2 anything else.
  std::vector<int> cls_cache;
  auto cls = [&](int id) {
    if (size_t(id) < cls_cache.size() && cls_cache[size_t(id)] >= 0) return cls_cache[size_t(id)];
    const std::string& p = piece[size_t(id)];
    int c = 0;
    for (size_t i = p.compare(0, kSpace.size(), kSpace) == 0 ? kSpace.size() : 0; i < p.size(); ++i) {
      const unsigned char ch = static_cast<unsigned char>(p[i]);
      c = std::isalpha(ch) || ch == '_' ? 1 : 2;
      break;  // pieces never mix classes when split_punct holds, so the first character decides
    }
    if (cls_cache.size() <= size_t(id)) cls_cache.resize(size_t(id) + 1, -1);
    return cls_cache[size_t(id)] = c;
  };
  auto joinable = [&](int a, int b) {
    if (!split_punct) return true;
    const int ca = cls(a), cb = cls(b);
    return ca == 0 || cb == 0 || ca == cb;
  };
  std::vector<std::string> merged;
  for (int m = 0; m < n_merges; ++m) {
    std::unordered_map<uint64_t, int64_t> pairs;
    for (const auto& w : words)
      for (size_t i = 0; i + 1 < w.sym.size(); ++i)
        pairs[uint64_t(uint32_t(w.sym[i])) << 32 | uint32_t(w.sym[i + 1])] += w.n;
    uint64_t best = 0;
    int64_t best_n = 2;  // a pair must occur at least twice
    std::string best_text;
    for (const auto& [k, n] : pairs) {
      int a = int(k >> 32), b = int(k & 0xffffffffu);
      if (n < best_n || has_digit(a) || has_digit(b) || !joinable(a, b)) continue;
      std::string text = piece[size_t(a)] + piece[size_t(b)];
      if (n > best_n || best_text.empty() || text < best_text) {  // ties: the smaller text, for determinism
        best = k, best_n = n, best_text = std::move(text);
      }
    }
    if (best_text.empty()) break;
    int a = int(best >> 32), b = int(best & 0xffffffffu), ab = intern(best_text);
    for (auto& w : words) {
      size_t o = 0;
      for (size_t i = 0; i < w.sym.size(); ++i, ++o) {
        if (i + 1 < w.sym.size() && w.sym[i] == a && w.sym[i + 1] == b) {
          w.sym[o] = ab;
          ++i;
        } else {
          w.sym[o] = w.sym[i];
        }
      }
      w.sym.resize(o);
    }
    merged.push_back(best_text);
  }
  for (size_t r = 0; r < merged.size(); ++r) vb.add(merged[r], float(merged.size() - r), 1);
  return vb.v;
}

BuiltinVocab builtin_vocab(const std::vector<std::string>& extra_words) {
  VocabBuilder vb;
  add_base(vb);
  const std::string& sp = kSpace;
  for (int c = 0x21; c < 0x7F; ++c) vb.add(sp + char(c), -0.5f, 1);
  // Digit pairs keep numbers short without a huge table.
  for (int a = 0; a < 10; ++a)
    for (int b = 0; b < 10; ++b) vb.add(std::string{char('0' + a), char('0' + b)}, -0.6f, 1);
  auto add_word = [&](const std::string& w) {
    // Every prefix of "▁word" so SPM's pairwise merges can reach the whole word.
    std::string t = sp;
    for (size_t i = 0; i < w.size(); ++i) {
      t += w[i];
      if (i >= 1) vb.add(t, float(i), 1);
    }
  };
  for (const char* w : kWords) add_word(w);
  for (const auto& w : extra_words) add_word(w);
  return vb.v;
}

}  // namespace cogumi
