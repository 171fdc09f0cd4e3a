#include "core/hash.h"

#include <gtest/gtest.h>

#include <string>

namespace cogumi {
namespace {

// The published FNV-1a 64-bit test vectors: saved routers and the curriculum's splits depend
// on these exact values.
TEST(Hash, Fnv1aMatchesThePublishedVectors) {
  EXPECT_EQ(fnv1a(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(fnv1a("foobar"), 0x85944171f73967e8ULL);
  // Chained over pieces, it is the hash of the whole.
  EXPECT_EQ(fnv1a("bar", fnv1a("foo")), fnv1a("foobar"));
  // Bytes >= 0x80 hash as unsigned bytes.
  EXPECT_EQ(fnv1a(std::string("\xff")), (0xcbf29ce484222325ULL ^ 0xffULL) * 0x100000001b3ULL);
}

}  // namespace
}  // namespace cogumi
