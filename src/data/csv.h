// cogumi/data: CSV (RFC 4180: quoted fields, doubled quotes, newlines inside quotes).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace cogumi {

using CsvRow = std::vector<std::string>;

// Parses CSV text. `where` names the source in errors ("file.csv:line: unterminated quote").
std::vector<CsvRow> parse_csv(std::string_view text, const std::string& where);
std::vector<CsvRow> read_csv(const std::filesystem::path& path);

}  // namespace cogumi
