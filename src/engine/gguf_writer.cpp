#include "engine/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"

namespace cogumi {

namespace {
struct GgmlDel {
  void operator()(ggml_context* c) const { ggml_free(c); }
};

uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t hash_name(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}
}  // namespace

void fill_uniform(float* out, int64_t n, uint64_t seed, const std::string& name, float stddev, int n_threads) {
  const float a = stddev * std::sqrt(3.0f);
  const int64_t chunk = 1 << 16;
  const int64_t n_chunks = (n + chunk - 1) / chunk;
  n_threads = std::max(1, std::min<int>(n_threads, int(n_chunks)));
  auto work = [&](int t) {
    for (int64_t c = t; c < n_chunks; c += n_threads) {
      uint64_t st = seed ^ hash_name(name) ^ (uint64_t(c) * 0xD1B54A32D192ED03ull);
      for (int64_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i) {
        double u = double(splitmix64(st) >> 11) * (1.0 / 9007199254740992.0);
        out[i] = float((2.0 * u - 1.0) * a);
      }
    }
  };
  std::vector<std::thread> ts;
  for (int t = 1; t < n_threads; ++t) ts.emplace_back(work, t);
  work(0);
  for (auto& t : ts) t.join();
}

std::vector<char> gguf_tensor_bytes(const std::filesystem::path& path, const gguf_context* g, int64_t id) {
  // A header can claim any size: check it against the file before allocating it.
  std::error_code ec;
  const uint64_t file = std::filesystem::file_size(path, ec);
  const uint64_t off = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id), size = gguf_get_tensor_size(g, id);
  if (ec || off > file || size > file - off)
    fail("'{}': truncated data for tensor '{}'", path.string(), gguf_get_tensor_name(g, id));
  std::vector<char> raw(size);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  bool ok = std::fseek(f, long(gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id)), SEEK_SET) == 0 &&
            std::fread(raw.data(), 1, raw.size(), f) == raw.size();
  std::fclose(f);
  if (!ok) fail("'{}': truncated data for tensor '{}'", path.string(), gguf_get_tensor_name(g, id));
  return raw;
}

GgufWriter::GgufWriter() : gguf_(gguf_init_empty()) {}
GgufWriter::~GgufWriter() = default;

void GgufWriter::add_tensor(const std::string& name, ggml_type type, int64_t ne0, int64_t ne1) {
  decls_.push_back({name, type, ne0, ne1});
}

namespace {

// Syncs a directory so a rename inside it survives a power cut.
void sync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) fail("cannot open directory '{}' to sync it: {}", dir.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("cannot sync directory '{}': {}", dir.string(), std::strerror(err));
}

}  // namespace

void GgufWriter::write(const std::filesystem::path& path, const FillFn& fill) {
  ggml_init_params ip{(decls_.size() + 8) * ggml_tensor_overhead(), nullptr, true};
  std::unique_ptr<ggml_context, GgmlDel> gctx(ggml_init(ip));
  for (const auto& d : decls_) {
    ggml_tensor* t = d.ne1 == 1 ? ggml_new_tensor_1d(gctx.get(), d.type, d.ne0)
                                : ggml_new_tensor_2d(gctx.get(), d.type, d.ne0, d.ne1);
    ggml_set_name(t, d.name.c_str());
    gguf_add_tensor(gguf_.get(), t);
  }
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::filesystem::path tmp = path.string() + ".part." + std::to_string(getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) fail("cannot write '{}': {}", tmp.string(), std::strerror(errno));
  // Every failure (a short write, or ENOSPC that only shows at fflush/fsync/fclose because the
  // tail sat in stdio's buffer) removes the temporary file, so the previous file under `path`
  // is never replaced by a truncated one.
  auto abandon = [&](const char* what) {
    const int err = errno;
    if (f) std::fclose(f);
    f = nullptr;
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    fail("{} '{}' failed: {} ('{}' is unchanged)", what, tmp.string(), std::strerror(err), path.string());
  };
  try {
    auto put = [&](const void* d, size_t n) {
      if (std::fwrite(d, 1, n, f) != n) abandon("writing");
    };
    std::vector<char> meta(gguf_get_meta_size(gguf_.get()));
    gguf_get_meta_data(gguf_.get(), meta.data());
    put(meta.data(), meta.size());
    size_t written = 0;
    std::vector<float> buf;
    std::vector<uint16_t> half;
    for (int64_t i = 0; i < gguf_get_n_tensors(gguf_.get()); ++i) {
      size_t off = gguf_get_tensor_offset(gguf_.get(), i);
      if (off > written) {
        std::vector<char> pad(off - written, 0);
        put(pad.data(), pad.size());
        written = off;
      }
      const int64_t* ne = gguf_get_tensor_ne(gguf_.get(), i);
      int64_t n = ne[0] * ne[1];
      buf.resize(size_t(n));
      fill(gguf_get_tensor_name(gguf_.get(), i), buf.data(), n);
      const ggml_type type = gguf_get_tensor_type(gguf_.get(), i);
      if (type == GGML_TYPE_F16 || type == GGML_TYPE_BF16) {
        half.resize(size_t(n));
        if (type == GGML_TYPE_F16)
          ggml_fp32_to_fp16_row(buf.data(), reinterpret_cast<ggml_fp16_t*>(half.data()), n);
        else
          ggml_fp32_to_bf16_row(buf.data(), reinterpret_cast<ggml_bf16_t*>(half.data()), n);
        put(half.data(), size_t(n) * sizeof(uint16_t));
        written += size_t(n) * sizeof(uint16_t);
      } else {
        put(buf.data(), size_t(n) * sizeof(float));
        written += size_t(n) * sizeof(float);
      }
    }
    if (std::fflush(f) != 0) abandon("flushing");
    if (::fsync(fileno(f)) != 0) abandon("syncing");
    const int rc = std::fclose(f);
    f = nullptr;
    if (rc != 0) abandon("closing");
  } catch (...) {
    if (f) {  // the fill callback threw: leave nothing behind
      std::fclose(f);
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
    }
    throw;
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    fail("cannot rename '{}' to '{}': {}", tmp.string(), path.string(), ec.message());
  }
  sync_dir(path.parent_path());
}

}  // namespace cogumi
