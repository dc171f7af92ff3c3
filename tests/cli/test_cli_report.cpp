// `safeshrink report RUN_DIR` end to end on the synthetic run log (tests/unit/synthetic_run_log.h):
// exit codes (0, 1 when a gate fails, 2 on bad input), junit.xml parsed by Python's xml.etree, and
// report.html opened in headless Chromium: the DOM keeps the escaped response and the six charts,
// the console stays silent, and a screenshot shows the charts' colours (checked with PIL).
// Chromium and PIL are optional: those checks skip with a message when absent.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../unit/synthetic_run_log.h"
#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {

std::string report_cmd(const std::string& args) { return test::cli_path() + " report " + args + " 2>&1"; }

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

bool have_chromium() { return test::run_command("command -v chromium >/dev/null 2>&1") == 0; }

}  // namespace

TEST(CliReport, ExitCodesFollowTheGates) {
  const std::string dir = test::temp_dir("cli_report");
  test::write_synthetic_run_log(dir);
  std::string out;
  EXPECT_EQ(test::run_command(report_cmd(dir), &out), 0) << out;  // no gate set
  for (const char* f : {"summary.json", "report.md", "report.html", "junit.xml"})
    EXPECT_FALSE(test::read_bytes(dir + "/" + f).empty()) << f;
  // int2 drops 66.7 points and rises 20 points; int4 drops 3.3 points.
  EXPECT_EQ(test::run_command(report_cmd(dir + " --max-refusal-drop 0.05"), &out), 1) << out;
  EXPECT_NE(out.find("FAILED"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(report_cmd(dir + " --max-refusal-drop 0.7 --max-over-refusal-rise 0.2"), &out), 0) << out;
  EXPECT_EQ(test::run_command(report_cmd(dir + " --max-over-refusal-rise 0.19"), &out), 1) << out;
  EXPECT_EQ(test::run_command(report_cmd(dir + "/nowhere"), &out), 2) << out;
  EXPECT_EQ(test::run_command(report_cmd(dir + " --max-refusal-drop banana"), &out), 2) << out;
}

TEST(CliReport, JunitParsesWithOneCasePerVariantAndGate) {
  SS_REQUIRE_PYTHON("xml.etree.ElementTree");
  const std::string dir = test::temp_dir("cli_report_junit");
  test::write_synthetic_run_log(dir);
  std::string out;
  ASSERT_EQ(test::run_command(report_cmd(dir + " --max-refusal-drop 0.05 --max-over-refusal-rise 0.1"), &out), 1) << out;
  ASSERT_EQ(test::run_python("py/junit_structure.py", dir + "/junit.xml", &out), 0) << out;
  const json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["root"], "testsuites");
  ASSERT_EQ(j["suites"].size(), 1u);
  const json& suite = j["suites"][0];
  EXPECT_EQ(suite["tests"], 4);
  EXPECT_EQ(suite["failures"], 2);
  ASSERT_EQ(suite["cases"].size(), 4u);
  int failures = 0;
  for (const json& c : suite["cases"]) {
    const std::string name = c["name"];
    const bool is_int2 = name.rfind("int2 ", 0) == 0;
    EXPECT_EQ(c["failure"].get<bool>(), is_int2) << name;  // int2 fails both gates, int4 passes both
    failures += c["failure"].get<bool>();
    EXPECT_EQ(c["classname"].get<std::string>().rfind("safeshrink.gate.", 0), 0u);
  }
  EXPECT_EQ(failures, 2);
}

TEST(CliReport, HtmlRendersInHeadlessChromium) {
  if (!have_chromium()) GTEST_SKIP() << "chromium is absent (scripts/setup installs it): HTML rendering check skipped";
  const std::string dir = test::temp_dir("cli_report_html");
  test::write_synthetic_run_log(dir);
  std::string out;
  ASSERT_EQ(test::run_command(report_cmd(dir + " --max-refusal-drop 0.05"), &out), 1) << out;
  const std::string chromium = "chromium --headless --disable-gpu --no-sandbox --user-data-dir=" + dir +
                               "/chromium-profile --enable-logging=stderr --v=0 ";
  std::string dom;
  ASSERT_EQ(test::run_command(chromium + "--dump-dom file://" + dir + "/report.html 2>" + dir + "/chromium.log", &dom), 0);
  // The browser's DOM still holds the hostile response as text, and all six charts.
  EXPECT_NE(dom.find("&lt;script&gt;alert('x')&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(dom.find("<script"), std::string::npos);
  EXPECT_EQ(count_of(dom, "<svg "), 6u);
  std::string log;
  test::run_command("cat " + dir + "/chromium.log", &log);
  EXPECT_EQ(log.find(":CONSOLE"), std::string::npos) << "console messages from the report:\n" << log;

  const std::string png = dir + "/report.png";
  ASSERT_EQ(test::run_command(chromium + "--hide-scrollbars --window-size=1280,1400 --screenshot=" + png + " file://" +
                                  dir + "/report.html >/dev/null 2>&1"),
            0);
  if (!test::python_has({"PIL"})) GTEST_SKIP() << "/usr/bin/python3 lacks PIL: screenshot pixels not checked";
  // Bar colours of the charts: original #4c72b0, variants #dd8452, benign #55a868.
  ASSERT_EQ(test::run_python("py/html_render_check.py", png + " '#4c72b0' '#dd8452' '#55a868'", &out), 0) << out;
  const json px = json::parse(out, nullptr, false);
  ASSERT_FALSE(px.is_discarded()) << out;
  EXPECT_EQ(px["width"], 1280);
  EXPECT_GT(px["non_white"].get<double>(), 0.02) << out;
  for (const char* c : {"#4c72b0", "#dd8452", "#55a868"}) EXPECT_GT(px["colors"][c].get<int>(), 200) << c << " " << out;
}
