// cogumi/route: text features for routing. Hashed word n-grams and character n-grams of a
// query (the "hashing trick", as fastText and Vowpal Wabbit do): no vocabulary to fit or ship,
// any language and any model, microseconds per query.
//
// A feature vector is sparse: (bucket, value) pairs sorted by bucket, values 1 + log(count)
// (sublinear term frequency), scaled to unit L2 norm so long and short queries weigh alike.
// Hashes are FNV-1a 64 of the n-gram's bytes with a per-kind salt: stable across machines
// and builds, so a router file trained anywhere routes the same everywhere.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>
#include <utility>
#include <vector>

namespace cogumi {

struct FeatureOptions {
  int hash_bits = 18;      // 2^hash_bits buckets (10..24)
  int word_ngram_max = 2;  // word n-grams of 1..N words (0: none; at most 4)
  int char_ngram_min = 3;  // character n-grams of min..max bytes, taken inside word boundaries
  int char_ngram_max = 5;  // (0 for both: none; at most 8)
  bool lowercase = true;   // ASCII lowercase before hashing

  // Throws Error naming the field on a value outside its range.
  void validate() const;
  size_t dim() const { return size_t(1) << hash_bits; }
  nlohmann::json to_json() const;
  // Reads what to_json wrote; missing fields keep their defaults, unknown ones are errors.
  static FeatureOptions from_json(const nlohmann::json& j);
};

using SparseVec = std::vector<std::pair<uint32_t, float>>;

SparseVec featurize(std::string_view text, const FeatureOptions& opts);

}  // namespace cogumi
