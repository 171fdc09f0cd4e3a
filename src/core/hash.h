// cogumi/core: FNV-1a, the 64-bit string hash behind the curriculum's split assignment, the
// router's hashed n-gram features and its held-out split. Saved routers and shipped datasets
// depend on its exact values: never change the constants.
#pragma once

#include <cstdint>
#include <string_view>

namespace cogumi {

inline constexpr uint64_t kFnv1aOffset = 0xcbf29ce484222325ULL;
inline constexpr uint64_t kFnv1aPrime = 0x100000001b3ULL;

// FNV-1a of `s`, continuing from `h` (the offset basis for a fresh hash), so a hash can be
// chained over several pieces: fnv1a(b, fnv1a(a)) == fnv1a(a + b).
constexpr uint64_t fnv1a(std::string_view s, uint64_t h = kFnv1aOffset) {
  for (char c : s) h = (h ^ uint64_t(static_cast<unsigned char>(c))) * kFnv1aPrime;
  return h;
}

}  // namespace cogumi
