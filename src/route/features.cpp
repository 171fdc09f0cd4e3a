#include "route/features.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "core/hash.h"

namespace cogumi {

namespace {

// Word tokens: runs of letters/digits/underscore (and bytes >= 0x80, so UTF-8 words stay
// whole), and each other non-space byte on its own: "x->y" gives x - > y, which keeps code
// and JSON punctuation visible to the router.
std::vector<std::string_view> word_tokens(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  auto wordy = [](unsigned char c) { return std::isalnum(c) || c == '_' || c >= 0x80; };
  while (i < s.size()) {
    unsigned char c = s[i];
    if (std::isspace(c)) {
      ++i;
    } else if (wordy(c)) {
      size_t j = i;
      while (j < s.size() && wordy(static_cast<unsigned char>(s[j]))) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    } else {
      out.push_back(s.substr(i, 1));
      ++i;
    }
  }
  return out;
}

}  // namespace

void FeatureOptions::validate() const {
  if (hash_bits < 10 || hash_bits > 24)
    fail("router features: hash_bits must be 10..24, got {}", hash_bits);
  if (word_ngram_max < 0 || word_ngram_max > 4)
    fail("router features: word_ngram_max must be 0..4, got {}", word_ngram_max);
  if (char_ngram_min < 0 || char_ngram_max < 0 || char_ngram_max > 8 ||
      char_ngram_min > char_ngram_max || (char_ngram_max > 0 && char_ngram_min == 0))
    fail(
        "router features: char n-grams must satisfy 1 <= char_ngram_min <= char_ngram_max <= 8 (or "
        "both 0), got {}..{}",
        char_ngram_min, char_ngram_max);
  if (word_ngram_max == 0 && char_ngram_max == 0)
    fail("router features: no word and no character n-grams");
}

nlohmann::json FeatureOptions::to_json() const {
  return {{"hash_bits", hash_bits},
          {"word_ngram_max", word_ngram_max},
          {"char_ngram_min", char_ngram_min},
          {"char_ngram_max", char_ngram_max},
          {"lowercase", lowercase}};
}

FeatureOptions FeatureOptions::from_json(const nlohmann::json& j) {
  if (!j.is_object()) fail("router features: expected an object");
  FeatureOptions o;
  for (auto& [k, v] : j.items()) {
    if (k == "lowercase") {
      if (!v.is_boolean()) fail("router features: 'lowercase' must be true or false");
      o.lowercase = v.get<bool>();
      continue;
    }
    int* field = k == "hash_bits"        ? &o.hash_bits
                 : k == "word_ngram_max" ? &o.word_ngram_max
                 : k == "char_ngram_min" ? &o.char_ngram_min
                 : k == "char_ngram_max" ? &o.char_ngram_max
                                         : nullptr;
    if (!field) fail("router features: unknown field '{}'", k);
    if (!v.is_number_integer()) fail("router features: '{}' must be an integer", k);
    *field = v.get<int>();
  }
  o.validate();
  return o;
}

SparseVec featurize(std::string_view text, const FeatureOptions& o) {
  std::string lowered;
  if (o.lowercase) {
    lowered.assign(text);
    for (auto& c : lowered) c = char(std::tolower(static_cast<unsigned char>(c)));
    text = lowered;
  }
  const uint64_t mask = o.dim() - 1;
  std::unordered_map<uint32_t, float> counts;
  counts.reserve(text.size() * 4);
  auto add = [&](uint64_t h) { counts[uint32_t(h & mask)] += 1.0f; };

  const auto words = word_tokens(text);
  for (int n = 1; n <= o.word_ngram_max; ++n) {
    for (size_t i = 0; i + size_t(n) <= words.size(); ++i) {
      uint64_t h = fnv1a("w", kFnv1aOffset + uint64_t(n));
      for (int k = 0; k < n; ++k) h = fnv1a(words[i + size_t(k)], fnv1a(" ", h));
      add(h);
    }
  }
  if (o.char_ngram_max > 0) {
    std::string padded;
    for (auto w : words) {
      padded.assign("<").append(w).append(">");
      for (int n = o.char_ngram_min; n <= o.char_ngram_max; ++n)
        for (size_t i = 0; i + size_t(n) <= padded.size(); ++i)
          add(fnv1a(std::string_view(padded).substr(i, size_t(n)), fnv1a("c", kFnv1aOffset)));
    }
  }
  SparseVec v(counts.begin(), counts.end());
  std::sort(v.begin(), v.end());
  double norm = 0;
  for (auto& [_, x] : v) {
    x = 1.0f + std::log(x);
    norm += double(x) * x;
  }
  if (norm > 0) {
    const float inv = float(1.0 / std::sqrt(norm));
    for (auto& [_, x] : v) x *= inv;
  }
  return v;
}

}  // namespace cogumi
