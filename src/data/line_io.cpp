#include "data/line_io.h"

#include <unistd.h>
#include <zlib.h>

#include <cstring>

#include "core/error.h"

namespace cogumi {

namespace fs = std::filesystem;

LineReader::LineReader(const fs::path& path) : path_(path), buf_(1 << 20) {
  if (!fs::exists(path)) fail("'{}': no such file", path.string());
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("'{}': cannot open: {}", path.string(), std::strerror(errno));
  gzbuffer(f, 1 << 18);
  gz_ = f;
}

LineReader::~LineReader() {
  if (gz_) gzclose(static_cast<gzFile>(gz_));
}

uint64_t LineReader::bytes_read() const { return uint64_t(gzoffset(static_cast<gzFile>(gz_))); }

bool LineReader::next(std::string& line) {
  line.clear();
  bool any = false;
  while (true) {
    if (pos_ == len_) {
      if (eof_) break;
      int n = gzread(static_cast<gzFile>(gz_), buf_.data(), unsigned(buf_.size()));
      if (n < 0) {
        int err = 0;
        fail("'{}': read error: {}", path_.string(), gzerror(static_cast<gzFile>(gz_), &err));
      }
      if (n == 0) {
        eof_ = true;
        break;
      }
      pos_ = 0, len_ = size_t(n);
    }
    any = true;
    const char* start = buf_.data() + pos_;
    const void* nl = std::memchr(start, '\n', len_ - pos_);
    if (nl) {
      size_t k = size_t(static_cast<const char*>(nl) - start);
      line.append(start, k);
      pos_ += k + 1;
      ++line_no_;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
    line.append(start, len_ - pos_);
    pos_ = len_;
  }
  if (!any) return false;
  ++line_no_;  // a last line without "\n"
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

bool blank_line(std::string_view line) { return line.find_first_not_of(" \t") == std::string_view::npos; }

AtomicLineWriter::AtomicLineWriter(const fs::path& path) : path_(path) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  tmp_ = path;
  tmp_ += ".tmp." + std::to_string(getpid());
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) fail("cannot write '{}': {}", tmp_.string(), std::strerror(errno));
  std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
}

AtomicLineWriter::~AtomicLineWriter() {
  if (f_) {
    std::fclose(f_);
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicLineWriter::write_line(std::string_view line) {
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fputc('\n', f_) == EOF)
    fail("cannot write '{}': {}", tmp_.string(), std::strerror(errno));
}

void AtomicLineWriter::commit() {
  if (std::fflush(f_) != 0 || fsync(fileno(f_)) != 0)
    fail("cannot write '{}': {}", tmp_.string(), std::strerror(errno));
  std::fclose(f_);
  f_ = nullptr;
  std::error_code ec;
  fs::rename(tmp_, path_, ec);
  if (ec) {
    fs::remove(tmp_, ec);
    fail("cannot rename '{}' to '{}': {}", tmp_.string(), path_.string(), ec.message());
  }
}

}  // namespace cogumi
