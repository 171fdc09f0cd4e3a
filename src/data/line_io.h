// cogumi/data: streaming line I/O for data jobs over files larger than memory. LineReader reads
// plain or gzip files (zlib reads both) a buffer at a time; AtomicLineWriter writes a temp file
// beside the target and renames it over the target in commit(), so a run that fails or is killed
// never leaves a partial file under the final name (the destructor removes an uncommitted temp).
#pragma once

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cogumi {

class LineReader {
 public:
  explicit LineReader(const std::filesystem::path& path);  // throws Error naming the path
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;
  // The next line without its "\n" (and "\r"); false at the end of the file.
  bool next(std::string& line);
  size_t line_no() const { return line_no_; }  // 1-based number of the line last returned
  uint64_t bytes_read() const;                 // of the file on disk (compressed for .gz)

 private:
  std::filesystem::path path_;
  void* gz_ = nullptr;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0, line_no_ = 0;
  bool eof_ = false;
};

// True for lines a JSONL reader skips (empty or only spaces and tabs), as core/io's read_jsonl.
bool blank_line(std::string_view line);

class AtomicLineWriter {
 public:
  explicit AtomicLineWriter(const std::filesystem::path& path);  // creates the parent directory
  ~AtomicLineWriter();
  AtomicLineWriter(const AtomicLineWriter&) = delete;
  AtomicLineWriter& operator=(const AtomicLineWriter&) = delete;
  void write_line(std::string_view line);  // appends line + "\n"
  void commit();                           // flush, fsync, rename over the target

 private:
  std::filesystem::path path_, tmp_;
  std::FILE* f_ = nullptr;
};

}  // namespace cogumi
