// cogumi/data: MinHash signatures and LSH banding for near-duplicate detection, as datatrove
// and text-dedup do it. A text becomes normalized words (ASCII lowercased; punctuation and
// whitespace separate words; UTF-8 bytes stay word characters), each word a 64-bit hash; a
// shingle is k consecutive words (a text shorter than k words is one shingle). Permutation i is
// the multiply-shift map x -> a_i * x + b_i (mod 2^64, a_i odd) over the shingle hash, and the
// signature keeps 16 bits (bits 32..47) of each minimum: b-bit MinHash, so equal values mean
// equal minima except with probability 2^-16, and 1M signatures of 112 values take 224 MB.
//
// Thread safety: MinHasher is immutable after construction; signature() may be called from
// many threads with their own scratch.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace cogumi {

// The words of `text` as 64-bit hashes, normalized as above (appended to `out` after clearing).
void word_hashes(std::string_view text, std::vector<uint64_t>& out);
// The same words as [begin, end) byte offsets into `text` (for showing a matched n-gram).
void word_spans(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out);
// One hash of the whole normalized word sequence: texts equal after normalization hash equal.
uint64_t normalized_hash(const std::vector<uint64_t>& words);

// Rolling hash of word-hash sequences: hash(w[i..i+n)) for every i, the same values for the same
// n words wherever they occur (benchmark n-grams and training n-grams meet in one table).
class NgramHasher {
 public:
  explicit NgramHasher(int n);
  int n() const { return n_; }
  // Calls fn(position, hash) for each n-gram of `words`; nothing when there are fewer than n.
  template <typename Fn>
  void each(const std::vector<uint64_t>& words, Fn&& fn) const {
    if (words.size() < size_t(n_)) return;
    uint64_t h = 0;
    for (int j = 0; j < n_; ++j) h = h * kBase + words[j];
    fn(size_t(0), h);
    for (size_t i = n_; i < words.size(); ++i) {
      h = (h - words[i - n_] * pow_) * kBase + words[i];
      fn(i - n_ + 1, h);
    }
  }

 private:
  static constexpr uint64_t kBase = 0x9E3779B97F4A7C15ULL;
  int n_;
  uint64_t pow_ = 1;  // kBase^(n-1)
};

struct LshParams {
  int bands = 0, rows = 0;
  // P(two texts at Jaccard j share a band) = 1 - (1 - j^rows)^bands (the S-curve).
  double probability(double jaccard) const;
};

// bands x rows <= num_perm minimizing fp_weight * (area under the S-curve below `threshold`)
// + fn_weight * (area above the curve over [threshold, 1]), text-dedup's optimal_param. Candidates
// are verified by estimated Jaccard afterwards, so false positives cost time, not precision: the
// weights favour recall (text-dedup's 0.5/0.5 gives 11 x 10 at 0.75, P(0.75) = 0.47; 0.1/0.9
// gives 16 x 7, P(0.75) = 0.90, P(0.5) = 0.12).
LshParams choose_lsh(double threshold, int num_perm, double fp_weight = 0.1, double fn_weight = 0.9);

class MinHasher {
 public:
  MinHasher(int num_perm, int shingle, uint64_t seed);
  int num_perm() const { return int(a_.size()); }
  int shingle() const { return shingle_; }
  // Writes num_perm() values to sig. `words` must be non-empty.
  void signature(const std::vector<uint64_t>& words, uint16_t* sig, std::vector<uint64_t>& scratch) const;

 private:
  std::vector<uint64_t> a_, b_;
  int shingle_;
};

// Fraction of equal values: the estimated Jaccard similarity of the two texts.
double estimated_jaccard(const uint16_t* a, const uint16_t* b, int num_perm);
// The hash of band `band` (rows values starting at band * rows) of a signature.
uint64_t band_hash(const uint16_t* sig, int band, int rows);

}  // namespace cogumi
