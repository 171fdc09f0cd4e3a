// cogumi compress pack/unpack/verify: a byte-identical round trip for every weight type and
// option, compression that helps where the bytes allow it, and a corrupt or truncated pack that
// is refused by name and leaves no file behind.
#include <gtest/gtest.h>

#include <fstream>

#include "compress/pack.h"
#include "core/io.h"
#include "engine/model_init.h"
#include "test_util.h"

namespace cogumi {
namespace {

namespace fs = std::filesystem;

// A small random-init model of `type` whose rows quantize with k-quants (n_embd 256).
const fs::path& model_of(const std::string& type) {
  static std::map<std::string, fs::path> made;
  auto it = made.find(type);
  if (it != made.end()) return it->second;
  ModelInitOptions o;
  o.shape = model_shape_preset("tiny");
  o.shape.n_embd = 256;
  o.shape.n_ff = 512;
  o.shape.n_layer = 1;
  o.type = type;
  o.seed = 3;
  const fs::path p = test::tmp_dir() / ("pack-" + type + ".gguf");
  model_init(p, o);
  return made[type] = p;
}

TEST(Pack, RoundTripIsByteIdentical) {
  struct Case {
    bool split, dict;
  };
  for (const std::string type : {"f16", "bf16", "q8_0", "q4_k_m"}) {
    const std::string original = read_file(model_of(type));
    for (Case c : {Case{true, false}, Case{false, false}, Case{true, true}}) {
      SCOPED_TRACE(fmt::format("{} split={} dict={}", type, c.split, c.dict));
      PackOptions o;
      o.level = 3;
      o.split = c.split;
      o.dict = c.dict;
      const fs::path packed = test::tmp_dir() / "rt.czst", back = test::tmp_dir() / "rt.gguf";
      const PackResult r = pack_gguf(model_of(type), packed, o);
      EXPECT_EQ(r.raw_bytes, original.size());
      EXPECT_EQ(r.packed_bytes, fs::file_size(packed));
      EXPECT_LT(r.packed_bytes, r.raw_bytes);
      EXPECT_EQ(r.sha256, sha256_file(model_of(type)));
      const UnpackResult u = unpack_gguf(packed, back);
      EXPECT_EQ(u.sha256, r.sha256);
      EXPECT_TRUE(read_file(back) == original) << "unpacked file differs from the original";
      EXPECT_EQ(verify_pack(packed).raw_bytes, original.size());
      if (type == "q4_k_m") {
        EXPECT_GT(r.by_type.count("q4_K") + r.by_type.count("q5_K") + r.by_type.count("q6_K"), 0u);
      }
    }
  }
}

TEST(Pack, ByteSplitHelpsOnHalfPrecision) {
  for (const std::string type : {"f16", "bf16"}) {
    PackOptions split, whole;
    split.level = whole.level = 3;
    whole.split = false;
    const PackResult a = pack_gguf(model_of(type), test::tmp_dir() / "s.czst", split);
    const PackResult b = pack_gguf(model_of(type), test::tmp_dir() / "w.czst", whole);
    EXPECT_LT(a.packed_bytes, b.packed_bytes) << type;
    EXPECT_LT(a.ratio(), 0.95) << type << ": random-init half-precision weights have redundant exponent bytes";
  }
}

TEST(Pack, ThreadsAndWindowsWriteTheSameBytes) {
  // Planes are compressed on several threads, one zstd frame per plane from one context each, so the file does
  // not depend on the thread count or the read-ahead window. Before session 34, --threads set zstd's own workers,
  // whose frames differ from a single thread's once a plane is larger than a zstd job (measured: a 58 MiB plane at
  // level 12), so a pipeline's pack would have changed with the machine's cores.
  ModelInitOptions mi;
  mi.shape = model_shape_preset("tiny");
  mi.shape.n_embd = 1024;
  mi.shape.n_ff = 4096;
  mi.shape.n_layer = 1;
  mi.type = "f16";
  mi.seed = 5;
  const fs::path model = test::tmp_dir() / "pack-wide-f16.gguf";
  model_init(model, mi);
  struct Run {
    bool dict;
    int threads, window_mb;
  };
  std::map<bool, std::string> first;
  for (Run c : {Run{false, 0, 1024}, Run{false, 1, 1024}, Run{false, 3, 1024}, Run{false, 2, 1}, Run{true, 1, 1024},
                Run{true, 3, 2}}) {
    SCOPED_TRACE(fmt::format("dict={} threads={} window={} MiB", c.dict, c.threads, c.window_mb));
    PackOptions o;
    o.level = 3;
    o.dict = c.dict;
    o.threads = c.threads;
    o.window_mb = c.window_mb;
    const fs::path packed = test::tmp_dir() / "threads.czst";
    const PackResult r = pack_gguf(model, packed, o);
    const std::string bytes = read_file(packed);
    if (!first.count(c.dict)) {
      first[c.dict] = bytes;
      EXPECT_EQ(unpack_gguf(packed, test::tmp_dir() / "threads.gguf").sha256, r.sha256);
      EXPECT_TRUE(read_file(test::tmp_dir() / "threads.gguf") == read_file(model));
    } else {
      EXPECT_TRUE(bytes == first[c.dict]) << "the packed bytes changed";
    }
  }
  PackOptions bad;
  bad.window_mb = 0;
  EXPECT_THROW(bad.validate(), Error);
}

void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary).write(s.data(), std::streamsize(s.size()));
}

TEST(Pack, CorruptOrTruncatedPackIsRefusedAndLeavesNoFile) {
  PackOptions o;
  o.level = 3;
  const fs::path packed = test::tmp_dir() / "c.czst", bad = test::tmp_dir() / "bad.czst",
                 out = test::tmp_dir() / "c-out.gguf";
  pack_gguf(model_of("f16"), packed, o);
  std::string bytes = read_file(packed);
  std::string flipped = bytes;
  flipped[flipped.size() / 2] ^= 0x5a;
  write_bytes(bad, flipped);
  std::string err = test::error_of([&] { unpack_gguf(bad, out); });
  EXPECT_NE(err.find("segment"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));
  for (const auto& e : fs::directory_iterator(test::tmp_dir()))
    EXPECT_EQ(e.path().filename().string().find("c-out.gguf.part"), std::string::npos) << "temporary file left behind";

  write_bytes(bad, bytes.substr(0, bytes.size() - 100));
  err = test::error_of([&] { verify_pack(bad); });
  EXPECT_NE(err.find("truncated"), std::string::npos) << err;

  err = test::error_of([&] { unpack_gguf(model_of("f16"), out); });
  EXPECT_NE(err.find("not a cogumi pack"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out));

  PackOptions level;
  level.level = 23;
  err = test::error_of([&] { pack_gguf(model_of("f16"), packed, level); });
  EXPECT_NE(err.find("--level must be in 1..22"), std::string::npos) << err;
}

}  // namespace
}  // namespace cogumi
