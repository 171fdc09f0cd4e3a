#include "data/csv.h"

#include "core/error.h"
#include "core/io.h"

namespace cogumi {

std::vector<CsvRow> parse_csv(std::string_view text, const std::string& where, std::vector<size_t>* row_lines) {
  if (text.substr(0, 3) == "\xEF\xBB\xBF") text.remove_prefix(3);
  std::vector<CsvRow> rows;
  if (row_lines) row_lines->clear();
  CsvRow row;
  std::string field;
  bool in_quotes = false, field_started = false;
  size_t line = 1, row_line = 1;
  auto end_field = [&] {
    row.push_back(std::move(field));
    field.clear();
    field_started = false;
  };
  auto end_row = [&] {
    end_field();
    if (!(row.size() == 1 && row[0].empty())) {
      rows.push_back(std::move(row));
      if (row_lines) row_lines->push_back(row_line);
    }
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          field += '"';
          ++i;
        } else {
          in_quotes = false;
        }
      } else {
        if (c == '\n') ++line;
        field += c;
      }
      continue;
    }
    if (c == '"' && !field_started) {
      in_quotes = field_started = true;
    } else if (c == ',') {
      end_field();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      row_line = ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  if (in_quotes) fail("{}:{}: unterminated quoted field", where, row_line);
  if (field_started || !row.empty()) end_row();
  return rows;
}

std::vector<CsvRow> read_csv(const std::filesystem::path& path, std::vector<size_t>* row_lines) {
  return parse_csv(read_file(path), path.string(), row_lines);
}

}  // namespace cogumi
