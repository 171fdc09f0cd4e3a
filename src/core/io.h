// cogumi/core: files. Whole-file reads, atomic writes, JSONL reading with file:line errors.
//
// Every artifact Cogumi writes goes through write_file_atomic (temp file + fsync + rename),
// so a killed process never leaves a half-written file under the final name.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace cogumi {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Reads a whole file; throws Error naming the path if it cannot be read.
// A path ending in .gz is decompressed.
std::string read_file(const fs::path& path);

// Writes data to path atomically: path.tmp.<pid>, fsync, rename over path.
void write_file_atomic(const fs::path& path, std::string_view data);

// Streams a JSONL file: calls fn(object, line_number) for each non-empty line (1-based).
// A line that is not valid JSON, or not an object, throws Error "file:line: ...".
// A .gz path is decompressed.
void read_jsonl(const fs::path& path, const std::function<void(const json&, size_t line)>& fn);

// Reads a JSONL file into memory (see read_jsonl).
std::vector<json> load_jsonl(const fs::path& path);

// Appends one JSON object per line; each append is flushed so an interrupted run keeps
// every line it reported as written.
class JsonlWriter {
 public:
  explicit JsonlWriter(const fs::path& path, bool append = false);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write(const json& obj);

 private:
  fs::path path_;
  std::FILE* f_ = nullptr;
};

// JSON text of `j` on one line (indent -1) or indented, with any invalid UTF-8 in its strings (a model's
// output can end mid-character) replaced by U+FFFD instead of throwing: for everything that prints model text.
std::string json_text(const json& j, int indent = -1);

// Required-field accessors that name the file, line and field on failure.
std::string get_string(const json& obj, std::string_view field, const std::string& where);

// sha256 of a file, hex.
std::string sha256_file(const fs::path& path);

// sha256 of bytes, hex.
std::string sha256_hex(std::string_view bytes);

}  // namespace cogumi
