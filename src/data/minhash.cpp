#include "data/minhash.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/hash.h"

namespace cogumi {

namespace {

// splitmix64's finalizer: spreads every input bit over the whole word (FNV's high bits are weak).
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xBF58476D1CE4E5B9ULL;
  x ^= x >> 27;
  x *= 0x94D049BB133111EBULL;
  x ^= x >> 31;
  return x;
}

inline bool word_byte(unsigned char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80; }
inline unsigned char lower(unsigned char c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

// Walks the words of text: fn(begin, end, hash).
template <typename Fn>
void each_word(std::string_view text, Fn&& fn) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    while (i < n && !word_byte(s[i])) ++i;
    if (i == n) break;
    size_t b = i;
    uint64_t h = kFnv1aOffset;
    while (i < n && word_byte(s[i])) h = (h ^ lower(s[i++])) * kFnv1aPrime;
    fn(b, i, mix64(h));
  }
}

}  // namespace

void word_hashes(std::string_view text, std::vector<uint64_t>& out) {
  out.clear();
  each_word(text, [&](size_t, size_t, uint64_t h) { out.push_back(h); });
}

void word_spans(std::string_view text, std::vector<std::pair<uint32_t, uint32_t>>& out) {
  out.clear();
  each_word(text, [&](size_t b, size_t e, uint64_t) { out.emplace_back(uint32_t(b), uint32_t(e)); });
}

uint64_t normalized_hash(const std::vector<uint64_t>& words) {
  uint64_t h = 0x6A09E667F3BCC908ULL ^ words.size();
  for (uint64_t w : words) h = mix64(h ^ w) + 0x9E3779B97F4A7C15ULL;
  return h;
}

NgramHasher::NgramHasher(int n) : n_(n) {
  if (n < 1) fail("n-gram length must be >= 1, got {}", n);
  for (int i = 1; i < n; ++i) pow_ *= kBase;
}

double LshParams::probability(double j) const { return 1.0 - std::pow(1.0 - std::pow(j, rows), bands); }

LshParams choose_lsh(double threshold, int num_perm, double fp_weight, double fn_weight) {
  if (!(threshold > 0 && threshold < 1)) fail("threshold must be in (0, 1), got {}", threshold);
  if (num_perm < 1) fail("num_perm must be >= 1, got {}", num_perm);
  // Midpoint-rule integrals of the S-curve, as text-dedup's scipy.integrate.quad, close enough.
  auto area = [](const LshParams& p, double lo, double hi, bool below) {
    const int steps = 200;
    double s = 0, dx = (hi - lo) / steps;
    for (int i = 0; i < steps; ++i) {
      double pr = p.probability(lo + (i + 0.5) * dx);
      s += below ? pr : 1.0 - pr;
    }
    return s * dx;
  };
  LshParams best;
  double best_err = std::numeric_limits<double>::infinity();
  for (int b = 1; b <= num_perm; ++b)
    for (int r = 1; b * r <= num_perm; ++r) {
      LshParams p{b, r};
      double err = fp_weight * area(p, 0, threshold, true) + fn_weight * area(p, threshold, 1, false);
      if (err < best_err) best_err = err, best = p;
    }
  return best;
}

MinHasher::MinHasher(int num_perm, int shingle, uint64_t seed) : shingle_(shingle) {
  if (num_perm < 1 || num_perm > 1024) fail("num_perm must be in 1..1024, got {}", num_perm);
  if (shingle < 1 || shingle > 64) fail("shingle size must be in 1..64, got {}", shingle);
  std::mt19937_64 rng(seed);
  for (int i = 0; i < num_perm; ++i) {
    a_.push_back(rng() | 1);  // odd: a bijection of 64-bit words
    b_.push_back(rng());
  }
}

void MinHasher::signature(const std::vector<uint64_t>& words, uint16_t* sig, std::vector<uint64_t>& scratch) const {
  scratch.clear();
  if (words.size() < size_t(shingle_)) {
    scratch.push_back(mix64(normalized_hash(words)));
  } else {
    NgramHasher(shingle_).each(words, [&](size_t, uint64_t h) { scratch.push_back(mix64(h)); });
  }
  const size_t np = a_.size();
  // Minima over 64-bit values; the 16 bits kept lie below the few leading zero bits of a minimum.
  uint64_t mins[1024];
  std::fill(mins, mins + np, std::numeric_limits<uint64_t>::max());
  const uint64_t* a = a_.data();
  const uint64_t* b = b_.data();
  for (uint64_t x : scratch)
    for (size_t i = 0; i < np; ++i) mins[i] = std::min(mins[i], a[i] * x + b[i]);
  for (size_t i = 0; i < np; ++i) sig[i] = uint16_t(mins[i] >> 32);
}

double estimated_jaccard(const uint16_t* a, const uint16_t* b, int num_perm) {
  int eq = 0;
  for (int i = 0; i < num_perm; ++i) eq += a[i] == b[i];
  return double(eq) / num_perm;
}

uint64_t band_hash(const uint16_t* sig, int band, int rows) {
  uint64_t h = mix64(uint64_t(band) + 1);
  const uint16_t* p = sig + size_t(band) * rows;
  for (int i = 0; i < rows; i += 4) {
    uint64_t w = 0;
    for (int j = i; j < std::min(rows, i + 4); ++j) w = (w << 16) | p[j];
    h = mix64(h ^ w) + 0x9E3779B97F4A7C15ULL;
  }
  return h;
}

}  // namespace cogumi
