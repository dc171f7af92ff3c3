// An RFC 4180 CSV reader for prompt-set files (eval.h parse_csv): quoted fields with "" escapes
// and embedded newlines, CRLF or LF, a leading UTF-8 BOM dropped, blank lines skipped, caps on
// field count and field size. It is not a dialect sniffer (comma only) and not a type converter:
// fields stay strings. To accept another separator, make it a parameter of parse_csv.
#include <string>

#include "safeshrink/eval.h"

namespace ss {

Result<std::vector<CsvRecord>> parse_csv(std::string_view text, const std::string& file, const PromptLoadOptions& caps) {
  std::vector<CsvRecord> out;
  size_t i = 0;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF && static_cast<unsigned char>(text[1]) == 0xBB &&
      static_cast<unsigned char>(text[2]) == 0xBF)
    i = 3;
  int64_t line = 1;
  const size_t n = text.size();
  auto line_what = [&](int64_t l) { return "CSV line " + std::to_string(l); };
  while (i < n) {
    // Blank line (outside quotes): skipped.
    if (text[i] == '\n') { ++line; ++i; continue; }
    if (text[i] == '\r' && i + 1 < n && text[i + 1] == '\n') { ++line; i += 2; continue; }
    CsvRecord rec;
    rec.line = line;
    bool end_of_record = false;
    while (!end_of_record) {
      if (static_cast<int64_t>(rec.fields.size()) >= caps.max_fields)
        return corrupt(file, i, line_what(rec.line), "at most " + std::to_string(caps.max_fields) + " fields",
                       "more");
      std::string field;
      if (i < n && text[i] == '"') {
        const size_t open_at = i;
        const int64_t open_line = line;
        ++i;
        bool closed = false;
        while (i < n) {
          const char c = text[i];
          if (c == '"') {
            if (i + 1 < n && text[i + 1] == '"') { field.push_back('"'); i += 2; continue; }
            ++i;
            closed = true;
            break;
          }
          if (c == '\n') ++line;
          field.push_back(c);
          ++i;
          if (field.size() > caps.max_field_bytes)
            return corrupt(file, open_at, line_what(open_line), "a field of at most " +
                           std::to_string(caps.max_field_bytes) + " bytes", "a longer field");
        }
        if (!closed)
          return corrupt(file, open_at, line_what(open_line), "a closing quote", "end of file inside a quoted field");
        if (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n'))
          return corrupt(file, i, line_what(line), "',' or end of line after a closing quote",
                         std::string("'") + text[i] + "'");
      } else {
        const size_t start = i;
        while (i < n && text[i] != ',' && text[i] != '\n' && !(text[i] == '\r' && i + 1 < n && text[i + 1] == '\n')) ++i;
        if (i - start > caps.max_field_bytes)
          return corrupt(file, start, line_what(line), "a field of at most " + std::to_string(caps.max_field_bytes) +
                         " bytes", std::to_string(i - start) + " bytes");
        field.assign(text.substr(start, i - start));
      }
      rec.fields.push_back(std::move(field));
      if (i >= n) {
        end_of_record = true;
      } else if (text[i] == ',') {
        ++i;
        if (i >= n) rec.fields.emplace_back();  // "a,b," at EOF: a last empty field
      } else if (text[i] == '\n') {
        ++i; ++line; end_of_record = true;
      } else {  // "\r\n"
        i += 2; ++line; end_of_record = true;
      }
    }
    if (static_cast<int64_t>(out.size()) >= caps.max_rows + 1)
      return corrupt(file, i, line_what(rec.line), "at most " + std::to_string(caps.max_rows) + " rows", "more");
    out.push_back(std::move(rec));
  }
  return out;
}

}  // namespace ss
