// The charts of include/safeshrink/svg_chart.h: line charts with interval whiskers, grouped bars and
// heat maps as inline SVG, and the HTML page shell of the non-audit reports. Geometry only: the
// numbers arrive computed. Every label goes through html_escape (text_escape.h). To add a chart kind,
// declare its spec in the header and write one function here that returns an <svg>.
#include "safeshrink/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "text_escape.h"

namespace ss {
namespace {

using namespace report_text;

const char* const kSeriesColors[] = {"#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3",
                                     "#937860", "#da8bc3", "#8c8c8c", "#ccb974", "#64b5cd"};
constexpr int kNumColors = sizeof(kSeriesColors) / sizeof(kSeriesColors[0]);

std::string num(double v) { return format_fixed(v, 1); }

std::string text(double x, double y, const std::string& raw, const char* anchor = "middle", int size = 11,
                 const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" text-anchor=\"" + anchor + "\" font-size=\"" +
         std::to_string(size) + "\"" + extra + ">" + html_escape(raw) + "</text>";
}
std::string line(double x1, double y1, double x2, double y2, const std::string& color, double width = 1,
                 const std::string& extra = "") {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\" stroke=\"" +
         color + "\" stroke-width=\"" + format_number(width) + "\"" + extra + "/>";
}
std::string rect(double x, double y, double w, double h, const std::string& fill, const std::string& title) {
  std::string r = "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(std::max(0.0, w)) + "\" height=\"" +
                  num(std::max(0.0, h)) + "\" fill=\"" + fill + "\"";
  return title.empty() ? r + "/>" : r + "><title>" + html_escape(title) + "</title></rect>";
}
std::string svg_open(int w, int h, const std::string& label) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"" + std::to_string(w) + "\" height=\"" +
         std::to_string(h) + "\" viewBox=\"0 0 " + std::to_string(w) + " " + std::to_string(h) +
         "\" role=\"img\" aria-label=\"" + html_escape(label) + "\">";
}
std::string value_label(double v, bool percent) { return percent ? format_percent(v, 1) : format_number(v, 3); }

// Rounds a span to 1, 2, 2.5 or 5 times a power of ten for tick spacing.
double nice_step(double span, int ticks) {
  if (!(span > 0)) return 1;
  const double raw = span / ticks;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10) * mag;
}

struct Range {
  double lo = 0, hi = 1;
};

// Data range of y (values and interval ends), widened when flat, overridden by the spec.
Range y_range(const std::vector<ChartSeries>& series, bool percent, const std::optional<double>& y_min,
              const std::optional<double>& y_max, const std::optional<double>& threshold) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  auto take = [&](double v) {
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  };
  for (const auto& s : series) {
    for (double v : s.y) take(v);
    for (double v : s.lo) take(v);
    for (double v : s.hi) take(v);
  }
  if (threshold) take(*threshold);
  Range r;
  if (percent) {
    r.lo = 0, r.hi = 1;
  } else if (std::isfinite(lo)) {
    r.lo = std::min(0.0, lo), r.hi = hi;
    if (r.hi - r.lo < 1e-12) r.hi = r.lo + 1;
  }
  if (y_min) r.lo = *y_min;
  if (y_max) r.hi = *y_max;
  if (!(r.hi > r.lo)) r.hi = r.lo + 1;
  return r;
}

// Horizontal grid lines and labels of the y axis; returns the SVG.
std::string y_axis(const Range& r, bool percent, double left, double right, double top, double bottom,
                   const std::string& label) {
  std::string out;
  const double step = nice_step(r.hi - r.lo, 4);
  for (double v = std::ceil(r.lo / step) * step; v <= r.hi + step * 1e-9; v += step) {
    const double y = bottom - (bottom - top) * (v - r.lo) / (r.hi - r.lo);
    out += line(left, y, right, y, "#ddd");
    out += text(left - 6, y + 4, value_label(std::abs(v) < step * 1e-9 ? 0.0 : v, percent), "end", 10);
  }
  if (!label.empty())
    out += text(14, (top + bottom) / 2, label, "middle", 11,
                " transform=\"rotate(-90 14 " + num((top + bottom) / 2) + ")\"");
  return out;
}

std::string legend(const std::vector<ChartSeries>& series, double x, double y) {
  std::string out;
  for (size_t i = 0; i < series.size(); ++i) {
    const double yy = y + 14.0 * static_cast<double>(i);
    out += rect(x, yy - 8, 10, 10, kSeriesColors[i % kNumColors], "");
    out += text(x + 14, yy + 1, series[i].name, "start", 10);
  }
  return out;
}

// Interpolates from green (t = 0) through yellow to red (t = 1).
std::string heat_color(double t) {
  t = std::clamp(t, 0.0, 1.0);
  int r, g;
  if (t < 0.5) r = static_cast<int>(std::lround(85 + 2 * t * (230 - 85))), g = static_cast<int>(std::lround(168 + 2 * t * (200 - 168)));
  else r = static_cast<int>(std::lround(230 - (2 * t - 1) * (230 - 196))), g = static_cast<int>(std::lround(200 - (2 * t - 1) * (200 - 78)));
  const int b = static_cast<int>(std::lround(t < 0.5 ? 104 - 2 * t * (104 - 90) : 90 - (2 * t - 1) * (90 - 82)));
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", r, g, b);
  return buf;
}

constexpr const char* kPageStyle =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1200px}"
    "table{border-collapse:collapse;margin:8px 0 16px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;"
    "text-align:left;font-size:13px}th{background:#f3f3f3}.ci{color:#666;font-size:11px}"
    ".verdict{font-weight:bold;font-size:18px}.fail{color:#b00020}.pass{color:#1b7a2f}"
    ".charts{display:flex;flex-wrap:wrap;gap:16px}.chart{border:1px solid #eee;background:#fff}"
    ".warning{color:#a05a00}.mono{font-family:monospace;font-size:12px}";

}  // namespace

std::string html_escape_text(std::string_view raw) { return html_escape(raw); }

std::string svg_line_chart(const LineChartSpec& spec) {
  const int w = spec.width, h = spec.height;
  const double left = 56, right = w - 130.0, top = 28, bottom = h - 44.0;
  std::string out = svg_open(w, h, spec.title);
  out += text(w / 2.0, 16, spec.title, "middle", 12, " font-weight=\"bold\"");
  const Range yr = y_range(spec.series, spec.y_percent, spec.y_min, spec.y_max, spec.threshold);
  out += y_axis(yr, spec.y_percent, left, right, top, bottom, spec.y_label);
  // x range: categories or data.
  Range xr;
  const bool categorical = !spec.x_categories.empty();
  if (categorical) {
    xr.lo = -0.5, xr.hi = static_cast<double>(spec.x_categories.size()) - 0.5;
  } else {
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    for (const auto& s : spec.series)
      for (double v : s.x)
        if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (std::isfinite(lo)) xr.lo = lo, xr.hi = hi > lo ? hi : lo + 1;
  }
  auto px = [&](double x) { return left + (right - left) * (x - xr.lo) / (xr.hi - xr.lo); };
  auto py = [&](double y) { return bottom - (bottom - top) * (std::clamp(y, yr.lo, yr.hi) - yr.lo) / (yr.hi - yr.lo); };
  out += line(left, bottom, right, bottom, "#888");
  if (categorical) {
    for (size_t i = 0; i < spec.x_categories.size(); ++i) {
      const double x = px(static_cast<double>(i));
      out += text(x, bottom + 14, spec.x_categories[i], "middle", 9);
    }
  } else {
    const double step = nice_step(xr.hi - xr.lo, 5);
    for (double v = std::ceil(xr.lo / step) * step; v <= xr.hi + step * 1e-9; v += step) {
      out += line(px(v), bottom, px(v), bottom + 4, "#888");
      out += text(px(v), bottom + 15, format_number(std::abs(v) < step * 1e-9 ? 0.0 : v, 3), "middle", 10);
    }
  }
  if (!spec.x_label.empty()) out += text((left + right) / 2, h - 8.0, spec.x_label, "middle", 11);
  if (spec.threshold)
    out += line(left, py(*spec.threshold), right, py(*spec.threshold), "#b00020", 1, " stroke-dasharray=\"4 3\"");
  for (size_t si = 0; si < spec.series.size(); ++si) {
    const ChartSeries& s = spec.series[si];
    const std::string color = kSeriesColors[si % kNumColors];
    const size_t n = std::min(s.x.size(), s.y.size());
    std::string path;
    bool pen_down = false;
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        pen_down = false;
        continue;
      }
      path += (pen_down ? " L" : " M") + num(px(s.x[i])) + " " + num(py(s.y[i]));
      pen_down = true;
    }
    if (!path.empty())
      out += "<path d=\"" + path.substr(1) + "\" fill=\"none\" stroke=\"" + color + "\" stroke-width=\"2\"/>";
    for (size_t i = 0; i < n; ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      const double x = px(s.x[i]), y = py(s.y[i]);
      if (i < s.lo.size() && i < s.hi.size() && std::isfinite(s.lo[i]) && std::isfinite(s.hi[i])) {
        out += line(x, py(s.lo[i]), x, py(s.hi[i]), color, 1);
        out += line(x - 3, py(s.lo[i]), x + 3, py(s.lo[i]), color, 1);
        out += line(x - 3, py(s.hi[i]), x + 3, py(s.hi[i]), color, 1);
      }
      std::string tip = s.name + ": " + value_label(s.y[i], spec.y_percent);
      if (categorical && s.x[i] >= 0 && s.x[i] < static_cast<double>(spec.x_categories.size()))
        tip = spec.x_categories[static_cast<size_t>(s.x[i])] + " — " + tip;
      out += "<circle cx=\"" + num(x) + "\" cy=\"" + num(y) + "\" r=\"3\" fill=\"" + color + "\"><title>" +
             html_escape(tip) + "</title></circle>";
    }
  }
  out += legend(spec.series, right + 12, top + 6);
  return out + "</svg>";
}

std::string svg_bar_chart(const BarChartSpec& spec) {
  const int w = spec.width, h = spec.height;
  const double left = 56, right = w - 130.0, top = 28, bottom = h - 44.0;
  std::string out = svg_open(w, h, spec.title);
  out += text(w / 2.0, 16, spec.title, "middle", 12, " font-weight=\"bold\"");
  const Range yr = y_range(spec.series, spec.y_percent, spec.y_min, spec.y_max, std::nullopt);
  out += y_axis(yr, spec.y_percent, left, right, top, bottom, spec.y_label);
  auto py = [&](double y) { return bottom - (bottom - top) * (std::clamp(y, yr.lo, yr.hi) - yr.lo) / (yr.hi - yr.lo); };
  const size_t nc = std::max<size_t>(1, spec.categories.size());
  const size_t ns = std::max<size_t>(1, spec.series.size());
  const double group = (right - left) / static_cast<double>(nc);
  const double bar = group * 0.8 / static_cast<double>(ns);
  out += line(left, py(std::max(yr.lo, 0.0)), right, py(std::max(yr.lo, 0.0)), "#888");
  for (size_t c = 0; c < spec.categories.size(); ++c) {
    const double g0 = left + group * static_cast<double>(c) + group * 0.1;
    out += text(left + group * (static_cast<double>(c) + 0.5), bottom + 14, spec.categories[c], "middle", 9);
    for (size_t si = 0; si < spec.series.size(); ++si) {
      const ChartSeries& s = spec.series[si];
      if (c >= s.y.size() || !std::isfinite(s.y[c])) continue;
      const double x = g0 + bar * static_cast<double>(si);
      const double base = py(std::max(yr.lo, 0.0)), top_y = py(s.y[c]);
      out += rect(x, std::min(base, top_y), bar - 1, std::abs(base - top_y), kSeriesColors[si % kNumColors],
                  spec.categories[c] + " — " + s.name + ": " + value_label(s.y[c], spec.y_percent));
      if (c < s.lo.size() && c < s.hi.size() && std::isfinite(s.lo[c]) && std::isfinite(s.hi[c])) {
        const double xm = x + (bar - 1) / 2;
        out += line(xm, py(s.lo[c]), xm, py(s.hi[c]), "#333", 1);
      }
    }
  }
  out += legend(spec.series, right + 12, top + 6);
  return out + "</svg>";
}

std::string svg_heat_map(const HeatMapSpec& spec) {
  const size_t rows = spec.row_labels.size(), cols = spec.col_labels.size();
  const double left = 110, top = 52;
  const int w = static_cast<int>(left + spec.cell_width * static_cast<double>(cols) + 20);
  const int h = static_cast<int>(top + spec.cell_height * static_cast<double>(rows) + 16);
  std::string out = svg_open(w, h, spec.title);
  out += text(w / 2.0, 16, spec.title, "middle", 12, " font-weight=\"bold\"");
  const double span = spec.hi > spec.lo ? spec.hi - spec.lo : 1.0;
  for (size_t c = 0; c < cols; ++c)
    out += text(left + spec.cell_width * (static_cast<double>(c) + 0.5), top - 8, spec.col_labels[c], "middle", 9);
  for (size_t r = 0; r < rows; ++r) {
    const double y = top + spec.cell_height * static_cast<double>(r);
    out += text(left - 6, y + spec.cell_height * 0.65, spec.row_labels[r], "end", 10);
    for (size_t c = 0; c < cols; ++c) {
      const size_t i = r * cols + c;
      const double v = i < spec.values.size() ? spec.values[i] : std::nan("");
      const double x = left + spec.cell_width * static_cast<double>(c);
      if (!std::isfinite(v)) {
        out += rect(x, y, spec.cell_width - 1, spec.cell_height - 1, "#f3f3f3", spec.row_labels[r] + " / " + spec.col_labels[c] + ": —");
        continue;
      }
      double t = (v - spec.lo) / span;
      if (!spec.high_is_bad) t = 1 - t;
      out += rect(x, y, spec.cell_width - 1, spec.cell_height - 1, heat_color(t),
                  spec.row_labels[r] + " / " + spec.col_labels[c] + ": " + format_number(v, 4));
      if (spec.value_decimals >= 0)
        out += text(x + spec.cell_width / 2.0, y + spec.cell_height * 0.68, format_fixed(v, spec.value_decimals), "middle", 9);
    }
  }
  return out + "</svg>";
}

std::string html_page(const std::string& title, const std::string& body_html) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta http-equiv=\"Content-Security-"
         "Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\"><title>" +
         html_escape(title) + "</title><style>" + kPageStyle + "</style></head><body>\n<h1>" + html_escape(title) +
         "</h1>\n" + body_html + "\n</body></html>\n";
}

}  // namespace ss
