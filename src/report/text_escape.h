// Escaping untrusted text (prompts, model responses, variant names) for the report formats:
// UTF-8 repair, HTML/XML escaping, Markdown table cells, and number formatting shared by the
// renderers. This is internal to src/report/ and is not a templating engine. To support one more
// output format, add its escape function here and use it in that renderer only.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace ss::report_text {

// Replaces every byte that is not part of a well-formed UTF-8 sequence with U+FFFD.
inline std::string sanitize_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  size_t i = 0;
  const auto byte = [&](size_t j) { return static_cast<unsigned char>(in[j]); };
  while (i < in.size()) {
    const unsigned char c = byte(i);
    size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) { out += static_cast<char>(c); ++i; continue; }
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    bool ok = len != 0 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      if ((byte(i + k) & 0xC0) != 0x80) ok = false;
      else cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    // Reject overlong forms, surrogates and code points past U+10FFFF.
    if (ok && ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
               (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF))
      ok = false;
    if (ok) { out.append(in.substr(i, len)); i += len; }
    else { out += "\xEF\xBF\xBD"; ++i; }
  }
  return out;
}

// HTML/XML text and attribute escaping of sanitized UTF-8. Control characters that XML 1.0 forbids
// become U+FFFD, so the output is valid in both HTML and XML.
inline std::string xml_escape(std::string_view raw) {
  const std::string in = sanitize_utf8(raw);
  std::string out;
  out.reserve(in.size() + in.size() / 8);
  for (char ch : in) {
    switch (ch) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n' && ch != '\t' && ch != '\r') out += "\xEF\xBF\xBD";
        else out += ch;
    }
  }
  return out;
}
inline std::string html_escape(std::string_view raw) { return xml_escape(raw); }

// One Markdown table cell: HTML-escaped (Markdown renderers pass raw HTML through), pipes escaped,
// newlines shown as <br>, cut to max_chars code points with an ellipsis.
inline std::string markdown_cell(std::string_view raw, size_t max_chars = 200) {
  std::string in = sanitize_utf8(raw);
  size_t cps = 0, cut = in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    if ((static_cast<unsigned char>(in[i]) & 0xC0) != 0x80) {
      if (cps == max_chars) { cut = i; break; }
      ++cps;
    }
  }
  const bool truncated = cut < in.size();
  in.resize(cut);
  std::string out;
  for (char ch : xml_escape(in)) {
    if (ch == '|') out += "\\|";
    else if (ch == '\n') out += "<br>";
    else if (ch == '\r' || ch == '\t') out += ' ';
    else if (ch == '`') out += "&#96;";
    else out += ch;
  }
  if (truncated) out += "…";
  return out;
}

inline std::string format_number(double v, int digits = 3) {
  if (!std::isfinite(v)) return v != v ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}
inline std::string format_fixed(double v, int decimals) {
  if (!std::isfinite(v)) return format_number(v);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}
// 0.1234 -> "12.3%"
inline std::string format_percent(double rate, int decimals = 1) { return format_fixed(100 * rate, decimals) + "%"; }
// A signed difference in percentage points: -0.05 -> "-5.0 pp"
inline std::string format_points(double diff, int decimals = 1) {
  std::string out = diff > 0 ? "+" : "";
  out += format_fixed(100 * diff, decimals);
  out += " pp";
  return out;
}
// p-values: "0.0312", "<1e-06"
inline std::string format_p(double p) {
  if (p < 1e-6) return "<1e-06";
  return format_number(p, 3);
}

}  // namespace ss::report_text
