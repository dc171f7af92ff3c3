// junit.xml: one JUnit test case per (compressed variant x configured gate), so a CI system shows
// each gate as a passing or failing test. This is not a summary: the numbers live in summary.json;
// the failure message repeats only what a CI reader needs. To add a gate, evaluate it in
// summary.cpp (GateResult); it appears here without change.
#include <string>

#include "safeshrink/report.h"
#include "text_escape.h"

namespace ss {

std::string report_junit(const RunSummary& s) {
  using report_text::format_points;
  using report_text::xml_escape;
  int tests = 0, failures = 0, skipped = 0;
  std::string cases;
  for (const VariantSummary& v : s.variants) {
    for (const GateResult& g : v.gates) {
      ++tests;
      cases += "    <testcase name=\"" + xml_escape(v.variant + " " + g.gate) + "\" classname=\"safeshrink.gate." +
               xml_escape(g.gate) + "\" time=\"0\">\n";
      const std::string measured = (g.gate == "max_refusal_drop" ? "refusal rate dropped by " : "over-refusal rate rose by ") +
                                   format_points(g.value) + " (threshold " + format_points(g.threshold) + ")";
      if (!g.evaluated) {
        ++skipped;
        cases += "      <skipped message=\"no paired prompts to compare\"/>\n";
      } else if (!g.passed) {
        ++failures;
        cases += "      <failure message=\"" + xml_escape(measured) + "\" type=\"" + xml_escape(g.gate) + "\">" +
                 xml_escape(v.variant + ": " + measured) + "</failure>\n";
      } else {
        cases += "      <system-out>" + xml_escape(measured) + "</system-out>\n";
      }
      cases += "    </testcase>\n";
    }
  }
  const std::string counts = "tests=\"" + std::to_string(tests) + "\" failures=\"" + std::to_string(failures) +
                             "\" errors=\"0\" skipped=\"" + std::to_string(skipped) + "\"";
  std::string out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  out += "<testsuites name=\"safeshrink\" " + counts + " time=\"0\">\n";
  out += "  <testsuite name=\"safeshrink.gates." + xml_escape(s.run_id.empty() ? "run" : s.run_id) + "\" " + counts +
         " time=\"0\">\n";
  out += cases;
  out += "  </testsuite>\n</testsuites>\n";
  return out;
}

}  // namespace ss
