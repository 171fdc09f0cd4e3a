#include "core/io.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace cogumi {

static bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

static std::string read_gz(const fs::path& path) {
  gzFile gz = gzopen(path.c_str(), "rb");
  if (!gz) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, n);
  int err = 0;
  // gzerror's text lives in the gzFile: copy it before gzclose frees it.
  const std::string msg = gzerror(gz, &err);
  gzclose(gz);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) fail("'{}': corrupt gzip data: {}", path.string(), msg);
  return out;
}

std::string read_file(const fs::path& path) {
  if (!fs::exists(path)) fail("file not found: '{}'", path.string());
  if (ends_with(path.string(), ".gz")) return read_gz(path);
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const fs::path& path, std::string_view data) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot write '{}': {}", tmp.string(), std::strerror(errno));
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      fs::remove(tmp);
      fail("write to '{}' failed: {}", tmp.string(), std::strerror(e));
    }
    off += static_cast<size_t>(w);
  }
  ::fsync(fd);
  ::close(fd);
  fs::rename(tmp, path);
}

void read_jsonl(const fs::path& path, const std::function<void(const json&, size_t)>& fn) {
  std::string data = read_file(path);
  size_t line_no = 0, pos = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    std::string_view line(data.data() + pos, end - pos);
    ++line_no;
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    json obj;
    try {
      obj = json::parse(line);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number too large (1e400)
      fail("{}:{}: invalid JSON: {}", path.string(), line_no, e.what());
    }
    if (!obj.is_object()) fail("{}:{}: expected a JSON object, got {}", path.string(), line_no, obj.type_name());
    fn(obj, line_no);
  }
}

std::vector<json> load_jsonl(const fs::path& path) {
  std::vector<json> out;
  read_jsonl(path, [&](const json& o, size_t) { out.push_back(o); });
  return out;
}

JsonlWriter::JsonlWriter(const fs::path& path, bool append) : path_(path) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  f_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!f_) fail("cannot write '{}': {}", path.string(), std::strerror(errno));
}

JsonlWriter::~JsonlWriter() {
  if (f_) std::fclose(f_);
}

std::string json_text(const json& j, int indent) { return j.dump(indent, ' ', false, json::error_handler_t::replace); }

void JsonlWriter::write(const json& obj) {
  std::string line = json_text(obj);
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), f_) != line.size() || std::fflush(f_) != 0)
    fail("write to '{}' failed: {}", path_.string(), std::strerror(errno));
}

std::string get_string(const json& obj, std::string_view field, const std::string& where) {
  auto it = obj.find(field);
  if (it == obj.end()) fail("{}: missing field '{}'", where, field);
  if (!it->is_string()) fail("{}: field '{}' must be a string, got {}", where, field, it->type_name());
  return it->get<std::string>();
}

std::string sha256_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path.string());
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), buf.size());
    EVP_DigestUpdate(ctx, buf.data(), in.gcount());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md, &len, EVP_sha256(), nullptr) != 1) fail("sha256: OpenSSL's digest failed");
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

}  // namespace cogumi
