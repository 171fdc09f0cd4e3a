#include "compress/pack.h"

#include <openssl/evp.h>
#include <zdict.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>

#include "compress/gguf_file.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/threads.h"

namespace cogumi {

namespace fs = std::filesystem;

void PackOptions::validate() const {
  if (level < 1 || level > ZSTD_maxCLevel()) fail("--level must be in 1..{}, got {}", ZSTD_maxCLevel(), level);
  if (dict_kb < 1 || dict_kb > 4096) fail("--dict-kb must be in 1..4096, got {}", dict_kb);
  if (threads < 0 || threads > 256) fail("--threads must be in 0..256, got {}", threads);
  if (window_mb < 1 || window_mb > 65536) fail("--window-mb must be in 1..65536, got {}", window_mb);
}

namespace {

constexpr char kMagic[4] = {'C', 'Z', 'S', 'T'};
constexpr uint32_t kVersion = 1;
constexpr uint32_t kSegTag = 0x4d474553;  // "SEGM"
constexpr uint32_t kEndTag = 0x21444e45;  // "END!"
constexpr uint32_t kHeaderType = 0xffffffffu;
constexpr uint64_t kMaxName = 4096, kMaxFields = 64;

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// ---- SHA-256, streamed ------------------------------------------------------
class Sha256 {
 public:
  Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
  ~Sha256() { EVP_MD_CTX_free(ctx_); }
  void update(const void* d, size_t n) { EVP_DigestUpdate(ctx_, d, n); }
  std::string digest() {  // 32 raw bytes
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return std::string(reinterpret_cast<char*>(md), len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

std::string hex(const std::string& raw) {
  std::string h;
  for (unsigned char c : raw) h += fmt::format("{:02x}", c);
  return h;
}

// ---- files ----------------------------------------------------------------------
using AtomicOut = AtomicFileOut;

class In {
 public:
  explicit In(const fs::path& path) : path_(path) {
    if (!fs::exists(path)) fail("file not found: '{}'", path.string());
    f_ = std::fopen(path.c_str(), "rb");
    if (!f_) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  }
  ~In() { std::fclose(f_); }
  void get(void* d, size_t n, const std::string& what) {
    if (n && std::fread(d, 1, n, f_) != n) fail("'{}': truncated in {}", path_.string(), what);
  }
  template <typename T>
  T get_pod(const std::string& what) {
    T v{};
    get(&v, sizeof v, what);
    return v;
  }
  std::string get_str(size_t n, const std::string& what) {
    std::string s(n, '\0');
    get(s.data(), n, what);
    return s;
  }
  void seek(uint64_t off) {
    if (std::fseek(f_, long(off), SEEK_SET) != 0) fail("'{}': cannot seek to {}", path_.string(), off);
  }
  bool at_eof() { return std::fgetc(f_) == EOF; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  std::FILE* f_;
};

// ---- the GGUF as segments ------------------------------------------------------
struct Segment {
  std::string name;                 // tensor name; "(gguf header)" for the metadata
  uint32_t type = kHeaderType;      // ggml_type, or kHeaderType
  uint64_t off = 0, len = 0;        // bytes [off, off + len) of the file, padding included
  uint64_t data_len = 0;            // the tensor's own bytes (the rest is padding)
};

std::vector<Segment> gguf_segments(const fs::path& path) {
  GgufFile g(path);
  const uint64_t file = fs::file_size(path), base = gguf_get_data_offset(g.get());
  std::vector<Segment> t;
  for (int64_t i = 0; i < gguf_get_n_tensors(g.get()); ++i)
    t.push_back({gguf_get_tensor_name(g.get(), i), uint32_t(g.type(i)), base + gguf_get_tensor_offset(g.get(), i), 0,
                 gguf_get_tensor_size(g.get(), i)});
  std::sort(t.begin(), t.end(), [](const Segment& a, const Segment& b) { return a.off < b.off; });
  std::vector<Segment> segs;
  segs.push_back({"(gguf header)", kHeaderType, 0, t.empty() ? file : t[0].off, 0});
  for (size_t i = 0; i < t.size(); ++i) {
    const uint64_t end = i + 1 < t.size() ? t[i + 1].off : file;
    if (end < t[i].off + t[i].data_len || end > file) fail("'{}': tensor '{}' runs past the file", path.string(), t[i].name);
    t[i].len = end - t[i].off;
    segs.push_back(t[i]);
  }
  return segs;
}

std::string read_segment(In& in, const Segment& s) {
  in.seek(s.off);
  return in.get_str(s.len, "tensor '" + s.name + "'");
}

// ---- byte planes ----------------------------------------------------------------
struct Field {
  uint16_t off, len;
};
struct Layout {
  uint32_t block = 0;  // 0: no split
  std::vector<Field> fields;
};

// Block fields of each type (ggml-common.h). A layout that does not add up to the type's block
// size is not used.
Layout layout_for(uint32_t type) {
  Layout l;
  switch (ggml_type(type)) {
    case GGML_TYPE_F32: l = {4, {{0, 1}, {1, 1}, {2, 1}, {3, 1}}}; break;
    case GGML_TYPE_F16:
    case GGML_TYPE_BF16: l = {2, {{0, 1}, {1, 1}}}; break;
    case GGML_TYPE_Q8_0: l = {34, {{0, 2}, {2, 32}}}; break;
    case GGML_TYPE_Q4_0: l = {18, {{0, 2}, {2, 16}}}; break;
    case GGML_TYPE_Q4_1: l = {20, {{0, 4}, {4, 16}}}; break;
    case GGML_TYPE_Q5_0: l = {22, {{0, 2}, {2, 4}, {6, 16}}}; break;
    case GGML_TYPE_Q5_1: l = {24, {{0, 4}, {4, 4}, {8, 16}}}; break;
    case GGML_TYPE_Q2_K: l = {84, {{0, 16}, {16, 64}, {80, 4}}}; break;
    case GGML_TYPE_Q3_K: l = {110, {{0, 32}, {32, 64}, {96, 12}, {108, 2}}}; break;
    case GGML_TYPE_Q4_K: l = {144, {{0, 4}, {4, 12}, {16, 128}}}; break;
    case GGML_TYPE_Q5_K: l = {176, {{0, 4}, {4, 12}, {16, 32}, {48, 128}}}; break;
    case GGML_TYPE_Q6_K: l = {210, {{0, 128}, {128, 64}, {192, 16}, {208, 2}}}; break;
    default: return {};
  }
  if (type < GGML_TYPE_COUNT && l.block != ggml_type_size(ggml_type(type))) return {};
  return l;
}

// Field planes of the whole blocks, then the rest (a partial block, padding) as the last plane.
std::vector<std::string> split_planes(const std::string& d, uint64_t data_len, const Layout& l) {
  if (l.block == 0) return {d};
  const uint64_t n_blocks = std::min<uint64_t>(data_len, d.size()) / l.block;
  std::vector<std::string> planes;
  for (const Field& f : l.fields) {
    std::string p(n_blocks * f.len, '\0');
    for (uint64_t b = 0; b < n_blocks; ++b) std::memcpy(&p[b * f.len], &d[b * l.block + f.off], f.len);
    planes.push_back(std::move(p));
  }
  planes.push_back(d.substr(n_blocks * l.block));
  return planes;
}

std::string merge_planes(const std::vector<std::string>& planes, const Layout& l, const std::string& where) {
  if (l.block == 0) return planes.at(0);
  if (planes.size() != l.fields.size() + 1) fail("{}: {} planes for {} fields", where, planes.size(), l.fields.size());
  const uint64_t n_blocks = l.fields.empty() || l.fields[0].len == 0 ? 0 : planes[0].size() / l.fields[0].len;
  std::string d(n_blocks * l.block + planes.back().size(), '\0');
  for (size_t k = 0; k < l.fields.size(); ++k) {
    const Field& f = l.fields[k];
    if (planes[k].size() != n_blocks * f.len) fail("{}: plane {} has {} bytes, expected {}", where, k, planes[k].size(), n_blocks * f.len);
    if (uint32_t(f.off) + f.len > l.block) fail("{}: field {} lies outside its {}-byte block", where, k, l.block);
    for (uint64_t b = 0; b < n_blocks; ++b) std::memcpy(&d[b * l.block + f.off], &planes[k][b * f.len], f.len);
  }
  std::memcpy(&d[n_blocks * l.block], planes.back().data(), planes.back().size());
  return d;
}

// ---- zstd ---------------------------------------------------------------------------
struct CCtxDel {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  void operator()(ZSTD_CDict* c) const { ZSTD_freeCDict(c); }
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
  void operator()(ZSTD_DDict* c) const { ZSTD_freeDDict(c); }
};

// One compression context (a plane at a time, on the calling thread). The dictionary, when there is one, is
// digested once and shared read-only by every context.
class Compressor {
 public:
  Compressor(const PackOptions& o, const ZSTD_CDict* dict) : cctx_(ZSTD_createCCtx()) {
    ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_compressionLevel, o.level);
    ZSTD_CCtx_setParameter(cctx_.get(), ZSTD_c_checksumFlag, 1);
    if (dict) ZSTD_CCtx_refCDict(cctx_.get(), dict);
  }
  // A plane as (method, bytes): zstd, or stored when zstd would not make it smaller.
  std::pair<uint8_t, std::string> compress(const std::string& plane) {
    std::string out(ZSTD_compressBound(plane.size()), '\0');
    const size_t n = ZSTD_compress2(cctx_.get(), out.data(), out.size(), plane.data(), plane.size());
    if (ZSTD_isError(n)) fail("zstd: {}", ZSTD_getErrorName(n));
    if (n >= plane.size()) return {0, plane};
    out.resize(n);
    out.shrink_to_fit();  // held until its window is written: its size, not the bound's
    return {1, std::move(out)};
  }

 private:
  std::unique_ptr<ZSTD_CCtx, CCtxDel> cctx_;
};

// Contexts for the threads: one is taken per plane and given back (a level-12 context holds megabytes, so they are
// kept, not made per plane).
class CompressorPool {
 public:
  CompressorPool(const PackOptions& o, const std::string& dict) : o_(o) {
    if (!dict.empty()) cdict_.reset(ZSTD_createCDict(dict.data(), dict.size(), o.level));
  }
  std::pair<uint8_t, std::string> compress(const std::string& plane) {
    std::unique_ptr<Compressor> z;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) z = std::move(free_.back()), free_.pop_back();
    }
    if (!z) z = std::make_unique<Compressor>(o_, cdict_.get());
    auto r = z->compress(plane);
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(z));
    return r;
  }

 private:
  const PackOptions& o_;
  std::unique_ptr<ZSTD_CDict, CCtxDel> cdict_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Compressor>> free_;
};

// Up to 8 evenly spaced 4 KiB samples of every plane of every segment (32 MiB in all at most).
std::string train_dict(In& in, const std::vector<Segment>& segs, const PackOptions& o, std::string& note) {
  constexpr size_t kChunk = 4096, kPerPlane = 8, kMaxTotal = 32u << 20;
  std::string samples;
  std::vector<size_t> sizes;
  for (const Segment& s : segs) {
    const std::string d = read_segment(in, s);
    for (const std::string& p : o.split ? split_planes(d, s.data_len, layout_for(s.type)) : std::vector<std::string>{d}) {
      const size_t n = std::min(kPerPlane, (p.size() + kChunk - 1) / kChunk);
      for (size_t k = 0; k < n && samples.size() < kMaxTotal; ++k) {
        const size_t off = n > 1 ? (p.size() - std::min(kChunk, p.size())) * k / (n - 1) : 0;
        const size_t len = std::min(kChunk, p.size() - off);
        samples.append(p, off, len);
        sizes.push_back(len);
      }
    }
  }
  std::string dict(size_t(o.dict_kb) * 1024, '\0');
  const size_t n = ZDICT_trainFromBuffer(dict.data(), dict.size(), samples.data(), sizes.data(), unsigned(sizes.size()));
  if (ZDICT_isError(n)) {
    note = fmt::format("no dictionary: training on {} samples failed ({})", sizes.size(), ZDICT_getErrorName(n));
    return "";
  }
  dict.resize(n);
  return dict;
}

// A segment read and compressed, waiting for its turn to be written.
struct PackedSegment {
  uint64_t raw_bytes = 0;                              // the file's bytes (hashed as read: in order)
  Layout layout;
  std::vector<std::string> planes;                     // split
  std::vector<std::pair<uint8_t, std::string>> zplanes;  // (method, bytes) per plane
};

void write_segment(AtomicOut& out, const Segment& s, const PackedSegment& p) {
  const Layout& l = p.layout;
  out.put_pod(kSegTag);
  out.put_pod(uint16_t(s.name.size()));
  out.put(s.name.data(), s.name.size());
  out.put_pod(s.type);
  out.put_pod(p.raw_bytes);
  out.put_pod(l.block);
  out.put_pod(uint8_t(l.fields.size()));
  for (const Field& f : l.fields) {
    out.put_pod(f.off);
    out.put_pod(f.len);
  }
  out.put_pod(uint8_t(p.planes.size()));
  for (size_t k = 0; k < p.planes.size(); ++k) {
    const auto& [method, bytes] = p.zplanes[k];
    out.put_pod(method);
    out.put_pod(uint64_t(p.planes[k].size()));
    out.put_pod(uint64_t(bytes.size()));
    out.put(bytes.data(), bytes.size());
  }
}

}  // namespace

PackResult pack_gguf(const fs::path& in_path, const fs::path& out_path, const PackOptions& o) {
  o.validate();
  const auto t0 = Clock::now();
  const std::vector<Segment> segs = gguf_segments(in_path);
  In in(in_path);
  PackResult r;
  const std::string dict = o.dict ? train_dict(in, segs, o, r.note) : "";
  r.dict_bytes = dict.size();
  CompressorPool zs(o, dict);
  const int threads = compute_threads(o.threads);
  AtomicOut out(out_path);
  out.put(kMagic, 4);
  out.put_pod(kVersion);
  out.put_pod(uint64_t(fs::file_size(in_path)));
  out.put_pod(int32_t(o.level));
  out.put_pod(uint32_t(dict.size()));
  out.put(dict.data(), dict.size());
  Sha256 sha;
  // Windows of whole segments (up to window_mb of the file, at least one segment): read in order, their planes
  // compressed on the threads, written in order. Each plane is one zstd frame made by one context, so the bytes do
  // not depend on the thread count.
  const uint64_t window = uint64_t(o.window_mb) << 20;
  for (size_t a = 0; a < segs.size();) {
    size_t b = a;
    uint64_t bytes = 0;
    while (b < segs.size() && (b == a || bytes + segs[b].len <= window)) bytes += segs[b++].len;
    std::vector<PackedSegment> win(b - a);
    std::vector<std::pair<size_t, size_t>> jobs;  // (segment in the window, plane)
    for (size_t i = a; i < b; ++i) {
      PackedSegment& p = win[i - a];
      const std::string raw = read_segment(in, segs[i]);
      sha.update(raw.data(), raw.size());
      p.raw_bytes = raw.size();
      p.layout = o.split && segs[i].type != kHeaderType ? layout_for(segs[i].type) : Layout{};
      p.planes = split_planes(raw, segs[i].data_len, p.layout);
      p.zplanes.resize(p.planes.size());
      for (size_t k = 0; k < p.planes.size(); ++k) jobs.emplace_back(i - a, k);
    }
    // the largest planes first, so that a big one does not start last
    std::stable_sort(jobs.begin(), jobs.end(), [&](const auto& x, const auto& y) {
      return win[x.first].planes[x.second].size() > win[y.first].planes[y.second].size();
    });
    parallel_for(jobs.size(), threads, [&](size_t j) {
      PackedSegment& p = win[jobs[j].first];
      p.zplanes[jobs[j].second] = zs.compress(p.planes[jobs[j].second]);
    });
    for (size_t i = a; i < b; ++i) {
      const Segment& s = segs[i];
      PackedSegment& p = win[i - a];
      const uint64_t before = out.written();
      write_segment(out, s, p);
      auto& st = r.by_type[s.type == kHeaderType ? "header" : ggml_type_name(ggml_type(s.type))];
      st.n_tensors += s.type != kHeaderType;
      st.raw_bytes += p.raw_bytes;
      st.packed_bytes += out.written() - before;
      r.raw_bytes += p.raw_bytes;
      p = PackedSegment{};  // free it before the next window
    }
    a = b;
  }
  const std::string digest = sha.digest();
  out.put_pod(kEndTag);
  out.put_pod(r.raw_bytes);
  out.put(digest.data(), digest.size());
  r.packed_bytes = out.written();
  out.commit();
  r.sha256 = hex(digest);
  r.seconds = seconds_since(t0);
  return r;
}

namespace {

class Decompressor {
 public:
  explicit Decompressor(const std::string& dict) : dctx_(ZSTD_createDCtx()) {
    if (!dict.empty()) {
      ddict_.reset(ZSTD_createDDict(dict.data(), dict.size()));
      ZSTD_DCtx_refDDict(dctx_.get(), ddict_.get());
    }
  }
  std::string decompress(const std::string& src, uint64_t raw_len, const std::string& where) {
    std::string out(raw_len, '\0');
    const size_t n = ZSTD_decompressDCtx(dctx_.get(), out.data(), out.size(), src.data(), src.size());
    if (ZSTD_isError(n)) fail("{}: {}", where, ZSTD_getErrorName(n));
    if (n != raw_len) fail("{}: {} bytes decompressed, expected {}", where, n, raw_len);
    return out;
  }

 private:
  std::unique_ptr<ZSTD_DCtx, CCtxDel> dctx_;
  std::unique_ptr<ZSTD_DDict, CCtxDel> ddict_;
};

// One segment's bytes; `left` (bytes of the original still to come) bounds every allocation.
std::string read_segment_record(In& in, Decompressor& z, uint64_t index, uint64_t left) {
  const uint16_t name_len = in.get_pod<uint16_t>("a segment name");
  if (name_len > kMaxName) fail("'{}': segment {} is corrupt (name of {} bytes)", in.path().string(), index, name_len);
  const std::string name = in.get_str(name_len, "a segment name");
  const std::string where = fmt::format("'{}': segment {} ('{}')", in.path().string(), index, name);
  in.get_pod<uint32_t>(where);  // ggml type (for reports)
  const uint64_t raw_len = in.get_pod<uint64_t>(where);
  if (raw_len > left) fail("{}: {} bytes, more than the {} the header leaves", where, raw_len, left);
  Layout l;
  l.block = in.get_pod<uint32_t>(where);
  const uint8_t n_fields = in.get_pod<uint8_t>(where);
  if (n_fields > kMaxFields) fail("{}: {} fields", where, n_fields);
  for (uint8_t k = 0; k < n_fields; ++k) {
    const uint16_t off = in.get_pod<uint16_t>(where);
    l.fields.push_back({off, in.get_pod<uint16_t>(where)});
  }
  const uint8_t n_planes = in.get_pod<uint8_t>(where);
  std::vector<std::string> planes;
  uint64_t total = 0;
  for (uint8_t k = 0; k < n_planes; ++k) {
    const uint8_t method = in.get_pod<uint8_t>(where);
    const uint64_t plane_raw = in.get_pod<uint64_t>(where), stored = in.get_pod<uint64_t>(where);
    if (plane_raw > raw_len - total || (method == 0 && stored != plane_raw) || stored > 2 * plane_raw + 1024 || method > 1)
      fail("{}: plane {} is corrupt (method {}, {} -> {} bytes)", where, k, method, plane_raw, stored);
    total += plane_raw;
    std::string bytes = in.get_str(stored, where);
    planes.push_back(method == 0 ? std::move(bytes) : z.decompress(bytes, plane_raw, fmt::format("{} plane {}", where, k)));
  }
  if (total != raw_len || planes.empty()) fail("{}: planes hold {} bytes, expected {}", where, total, raw_len);
  return merge_planes(planes, l, where);
}

// Streams the pack through `sink` (nullptr: verify only).
UnpackResult unpack_to(const fs::path& in_path, AtomicOut* sink) {
  const auto t0 = Clock::now();
  In in(in_path);
  char magic[4] = {};
  in.get(magic, 4, "the header");
  if (std::memcmp(magic, kMagic, 4) != 0) fail("'{}' is not a cogumi pack (no CZST magic)", in_path.string());
  const uint32_t version = in.get_pod<uint32_t>("the header");
  if (version != kVersion) fail("'{}': pack version {}, this cogumi reads {}", in_path.string(), version, kVersion);
  const uint64_t size = in.get_pod<uint64_t>("the header");
  in.get_pod<int32_t>("the header");  // level
  const uint32_t dict_len = in.get_pod<uint32_t>("the header");
  if (dict_len > (4096u << 10)) fail("'{}': dictionary of {} bytes is corrupt", in_path.string(), dict_len);
  Decompressor z(in.get_str(dict_len, "the dictionary"));
  Sha256 sha;
  UnpackResult r;
  for (;;) {
    const uint32_t tag = in.get_pod<uint32_t>(fmt::format("segment {}", r.n_segments));
    if (tag == kEndTag) break;
    if (tag != kSegTag) fail("'{}': segment {} is corrupt (bad tag)", in_path.string(), r.n_segments);
    const std::string d = read_segment_record(in, z, r.n_segments, size - r.raw_bytes);
    sha.update(d.data(), d.size());
    if (sink) sink->put(d.data(), d.size());
    r.raw_bytes += d.size();
    ++r.n_segments;
  }
  const uint64_t total = in.get_pod<uint64_t>("the trailer");
  const std::string want = in.get_str(32, "the trailer"), got = sha.digest();
  if (total != r.raw_bytes || total != size)
    fail("'{}': {} bytes unpacked, the pack says {}", in_path.string(), r.raw_bytes, total);
  if (got != want) fail("'{}': SHA-256 mismatch: unpacked {}, packed from {}", in_path.string(), hex(got), hex(want));
  if (!in.at_eof()) fail("'{}': bytes after the trailer", in_path.string());
  r.sha256 = hex(got);
  r.seconds = seconds_since(t0);
  return r;
}

}  // namespace

UnpackResult unpack_gguf(const fs::path& in, const fs::path& out) {
  AtomicOut sink(out);
  UnpackResult r = unpack_to(in, &sink);
  sink.commit();
  return r;
}

UnpackResult verify_pack(const fs::path& in) { return unpack_to(in, nullptr); }

}  // namespace cogumi
