// cogumi/compress: lossless packing of GGUF files (`cogumi compress pack|unpack|verify`).
//
// A .czst file is zstd over the GGUF, framed per tensor so unpack streams (one tensor in memory
// at a time): a header (magic, version, level, the optional zstd dictionary), then one segment
// for the GGUF header and one per tensor's data (with the alignment padding after it), then a
// trailer with the original size and SHA-256. A segment may be split into byte planes before
// compression: for F16/BF16/F32 the k-th byte of every element together (the exponent bytes of
// trained weights repeat a few values; ZipNN's observation), for quantized blocks each field of
// the block together (Q8_0: scales vs quants; Q4_K: d/dmin, scales, quants). The split layout is
// written in the segment, so unpack needs no table. Every zstd frame carries its checksum, and
// unpack checks the whole file's SHA-256 and writes the output atomically: a corrupt or
// truncated pack leaves no file behind and names the tensor where it broke.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace cogumi {

struct PackOptions {
  int level = 12;         // zstd level, 1..22 (19+ are slow: minutes per GB on 2 cores)
  bool split = true;      // byte-plane / block-field split (what measured best: bench/pack_bench.sh)
  bool dict = false;      // a dictionary trained (ZDICT) on samples of the file, stored in the pack
  int dict_kb = 112;      // its size in KiB, 1..4096
  int threads = 0;        // planes compressed at once, one thread each (0: COGUMI_THREADS or every core); the
                          // bytes written are the same at any count
  int window_mb = 1024;   // file bytes read ahead and held (with their compressed planes) for the threads, 1..65536;
                          // a segment larger than this is a window alone
  void validate() const;  // throws Error naming the flag
};

struct PackTypeStats {
  uint64_t n_tensors = 0, raw_bytes = 0, packed_bytes = 0;
  double ratio() const { return raw_bytes ? double(packed_bytes) / double(raw_bytes) : 1.0; }
};

struct PackResult {
  uint64_t raw_bytes = 0, packed_bytes = 0;  // the whole files
  uint64_t dict_bytes = 0;                   // 0 when no dictionary (or training failed: see note)
  std::string sha256;                        // of the original
  std::map<std::string, PackTypeStats> by_type;  // ggml type name ("f16", "q4_K"); "header" for metadata
  std::string note;                          // e.g. why a requested dictionary was not used
  double seconds = 0.0;
  double ratio() const { return raw_bytes ? double(packed_bytes) / double(raw_bytes) : 1.0; }
};

// Packs GGUF `in` into `out` (written atomically). Throws Error for a file that is not a GGUF.
PackResult pack_gguf(const std::filesystem::path& in, const std::filesystem::path& out, const PackOptions& opts);

struct UnpackResult {
  uint64_t raw_bytes = 0;
  uint64_t n_segments = 0;
  std::string sha256;
  double seconds = 0.0;
};

// Restores the original GGUF byte for byte into `out` (atomically; nothing is left under `out` or
// its temporary name when the pack is corrupt, truncated or its SHA-256 does not match).
UnpackResult unpack_gguf(const std::filesystem::path& in, const std::filesystem::path& out);

// Decompresses and checks every frame and the SHA-256 without writing anything.
UnpackResult verify_pack(const std::filesystem::path& in);

}  // namespace cogumi
