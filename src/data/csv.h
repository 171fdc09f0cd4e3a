// cogumi/data: CSV (RFC 4180: quoted fields, doubled quotes, newlines inside quotes).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cogumi {

using CsvRow = std::vector<std::string>;

// Parses CSV text. `where` names the source in errors ("file.csv:line: unterminated quote").
// A leading UTF-8 byte-order mark (spreadsheet exports) is skipped, not read into the first
// field. row_lines, when given, receives each row's 1-based starting line, for errors that
// name a row's line.
std::vector<CsvRow> parse_csv(std::string_view text, const std::string& where,
                              std::vector<size_t>* row_lines = nullptr);
std::vector<CsvRow> read_csv(const std::filesystem::path& path, std::vector<size_t>* row_lines = nullptr);

}  // namespace cogumi
