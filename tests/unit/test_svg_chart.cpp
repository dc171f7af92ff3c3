// The report charts of svg_chart.h checked by an independent XML parser (tests/py/svg_structure.py):
// the markup is well-formed, untrusted labels are escaped (they come back as the same text), and the
// element counts are the ones the data implies (one circle per finite point, one rect per bar/cell).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>

#include "safeshrink/svg_chart.h"
#include "test_support.h"

namespace {

std::string parse(const std::string& svg, const std::string& name) {
  const std::string path = ss::test::temp_dir("svg") + "/" + name;
  std::ofstream(path) << svg;
  std::string out;
  EXPECT_EQ(ss::test::run_python("py/svg_structure.py", path, &out), 0) << out;
  return out;
}

TEST(SvgChart, LineChartCountsAndEscapes) {
  SS_REQUIRE_PYTHON("xml");
  ss::LineChartSpec spec;
  spec.title = "ASR <vs> bits & \"quotes\"";
  spec.y_percent = true;
  spec.threshold = 0.5;
  ss::ChartSeries a{"<script>alert(1)</script>", {2, 4, 8, 16}, {0.1, 0.5, std::nan(""), 0.9}, {}, {}};
  ss::ChartSeries b{"clean", {2, 4, 8, 16}, {0.8, 0.85, 0.9, 0.91}, {0.7, 0.8, 0.85, 0.9}, {0.9, 0.9, 0.95, 0.93}};
  spec.series = {a, b};
  const std::string svg = ss::svg_line_chart(spec);
  EXPECT_EQ(svg.find("<script>"), std::string::npos);
  const std::string out = parse(svg, "line.svg");
  // 3 finite points of a + 4 of b.
  EXPECT_NE(out.find("circle=7 "), std::string::npos) << out;
  EXPECT_NE(out.find("<script>alert(1)</script>: 10.0%"), std::string::npos) << out;  // escaped, round-trips
}

TEST(SvgChart, BarChartAndHeatMapCounts) {
  SS_REQUIRE_PYTHON("xml");
  ss::BarChartSpec bars;
  bars.title = "transfer";
  bars.categories = {"int8", "int4", "int2"};
  bars.series = {{"pgd", {}, {0.2, 0.3, 0.6}, {}, {}}, {"qaa", {}, {0.4, 0.5, std::nan("")}, {}, {}}};
  // 5 finite bars + 2 legend swatches.
  EXPECT_NE(parse(ss::svg_bar_chart(bars), "bar.svg").find("rect=7 "), std::string::npos);

  ss::HeatMapSpec heat;
  heat.title = "layer x tensor";
  heat.row_labels = {"0", "1"};
  heat.col_labels = {"attn_q", "attn_k", "ffn_down"};
  heat.values = {0.1, 0.2, std::nan(""), 0.4, 0.5, 0.6};
  const std::string out = parse(ss::svg_heat_map(heat), "heat.svg");
  EXPECT_NE(out.find("rect=6 "), std::string::npos) << out;
  EXPECT_NE(out.find("1 / ffn_down: 0.6"), std::string::npos) << out;
  EXPECT_NE(out.find("0 / ffn_down: —"), std::string::npos) << out;
}

}  // namespace
