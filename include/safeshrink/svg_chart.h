// Self-contained SVG charts and an HTML page shell for the reports that are not the safety audit's
// (backdoor survival, adversarial robustness, attribution): line charts with optional interval
// bands, grouped bars, and heat maps, plus escaping. No script, no external resource; every label is
// escaped, so untrusted strings (variant names, file names) are safe. This renders geometry only;
// statistics are computed by the caller. The audit's own charts stay in src/report/report_html.cpp.
// To add a chart kind: a spec struct and one function here, implemented in src/report/svg_chart.cpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ss {

std::string html_escape_text(std::string_view raw);  // & < > " ' escaped, invalid UTF-8 replaced

struct ChartSeries {
  std::string name;
  std::vector<double> x, y;     // same length; NaN y = gap
  std::vector<double> lo, hi;   // optional interval per point (same length as y), drawn as whiskers
};

// Numeric x axis, or categorical when x_categories is non-empty (then x holds indices 0..n-1).
struct LineChartSpec {
  std::string title, x_label, y_label;
  std::vector<ChartSeries> series;
  std::vector<std::string> x_categories;
  bool y_percent = false;               // y in [0, 1] shown as 0..100%
  std::optional<double> y_min, y_max;   // default: from the data (0..1 when y_percent)
  std::optional<double> threshold;      // a dashed horizontal line (e.g. survival threshold 0.5)
  int width = 560, height = 300;
};
std::string svg_line_chart(const LineChartSpec& spec);

// One group of bars per category, one bar per series (series.y[i] = value of category i).
struct BarChartSpec {
  std::string title, y_label;
  std::vector<std::string> categories;
  std::vector<ChartSeries> series;
  bool y_percent = false;
  std::optional<double> y_min, y_max;
  int width = 560, height = 300;
};
std::string svg_bar_chart(const BarChartSpec& spec);

// values (rows x cols), row-major; NaN = empty cell. Colour runs from `lo` (green) to `hi` (red);
// high_is_bad = false swaps the ends. Each cell carries a <title> with row, column and value.
struct HeatMapSpec {
  std::string title;
  std::vector<std::string> row_labels, col_labels;
  std::vector<double> values;
  double lo = 0, hi = 1;
  bool high_is_bad = true;
  int value_decimals = 2;   // digits printed in the cell (-1: none)
  int cell_width = 56, cell_height = 22;
};
std::string svg_heat_map(const HeatMapSpec& spec);

// <!DOCTYPE html> ... with the reports' CSS and a Content-Security-Policy that forbids scripts;
// `body_html` is inserted as is (the caller escapes what it puts there).
std::string html_page(const std::string& title, const std::string& body_html);

}  // namespace ss
