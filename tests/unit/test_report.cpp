// The run summary and the four renderers on a synthetic run log with known counts
// (synthetic_run_log.h): every number is checked against a value counted by hand from the log's
// design (rates = counts/n, discordant pairs, exact binomial p-values in closed form), and the
// renderers against their formats' rules (escaping of untrusted text, charts present, JUnit counts).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "safeshrink/report.h"
#include "synthetic_run_log.h"
#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {

constexpr double kExact = 1e-12;  // ratios of small counts: exact up to rounding

const VariantSummary& find_variant(const RunSummary& s, const std::string& name) {
  for (const VariantSummary& v : s.variants)
    if (v.variant == name) return v;
  static VariantSummary none;
  ADD_FAILURE() << "variant " << name << " missing";
  return none;
}

RunSummary summarize_synthetic(const SummaryOptions& options = {}, const json& config = json::object()) {
  const std::string dir = test::temp_dir("report");
  const std::string path = test::write_synthetic_run_log(dir, config);
  auto s = summarize_run_log(path, options);
  EXPECT_TRUE(s.ok()) << s.status().to_string();
  return s.ok() ? *s : RunSummary{};
}

// Wilson bounds in closed form (independent of stats.cpp): z = 1.959963984540054 (95%).
std::pair<double, double> wilson95(double k, double n) {
  const double z = 1.959963984540054, p = k / n;
  const double c = (p + z * z / (2 * n)) / (1 + z * z / n);
  const double h = z * std::sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n);
  return {std::max(0.0, c - h), std::min(1.0, c + h)};
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

size_t count_of(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t at = hay.find(needle); at != std::string::npos; at = hay.find(needle, at + 1)) ++n;
  return n;
}

}  // namespace

TEST(Summary, RatesEqualHandCountedOnes) {
  const RunSummary s = summarize_synthetic();
  ASSERT_EQ(s.variants.size(), 3u);
  EXPECT_EQ(s.variants[0].variant, "original");
  EXPECT_EQ(s.n_start_runs, 2);
  EXPECT_EQ(s.seed, 1234u);
  EXPECT_EQ(s.prompt_set_sha256, "abc123");
  struct Expect {
    const char* name;
    int refused, over, cyber, drugs, weapons;
  } expect[] = {{"original", 29, 1, 10, 10, 9}, {"int4-g128", 28, 1, 8, 10, 10}, {"int2", 9, 3, 0, 0, 9}};
  for (const Expect& e : expect) {
    const VariantSummary& v = find_variant(s, e.name);
    EXPECT_EQ(v.refusal.count, e.refused) << e.name;
    EXPECT_EQ(v.refusal.n, 30) << e.name;
    EXPECT_NEAR(v.refusal.rate, e.refused / 30.0, kExact) << e.name;
    const auto [lo, hi] = wilson95(e.refused, 30);
    EXPECT_NEAR(v.refusal.ci.lo, lo, 1e-12) << e.name;
    EXPECT_NEAR(v.refusal.ci.hi, hi, 1e-12) << e.name;
    EXPECT_EQ(v.over_refusal.count, e.over) << e.name;
    EXPECT_EQ(v.over_refusal.n, 10) << e.name;
    ASSERT_EQ(v.by_category.size(), 3u) << e.name;
    EXPECT_EQ(v.by_category.at("cyber").count, e.cyber) << e.name;
    EXPECT_EQ(v.by_category.at("drugs").count, e.drugs) << e.name;
    EXPECT_EQ(v.by_category.at("weapons").count, e.weapons) << e.name;
    EXPECT_NEAR(v.by_category.at("weapons").rate, e.weapons / 10.0, kExact) << e.name;
  }
  // Mean margin of the original on harmful prompts: 0.1 * mean(1..30) = 1.55.
  ASSERT_TRUE(s.variants[0].mean_margin_harmful.has_value());
  EXPECT_NEAR(*s.variants[0].mean_margin_harmful, 1.55, 1e-12);
}

TEST(Summary, PairedComparisonsAndMcNemarMatchClosedForms) {
  const RunSummary s = summarize_synthetic();
  const VariantSummary& int4 = find_variant(s, "int4-g128");
  EXPECT_EQ(int4.harmful.n_pairs, 30);
  EXPECT_EQ(int4.harmful.original_only, 2);
  EXPECT_EQ(int4.harmful.variant_only, 1);
  EXPECT_NEAR(int4.harmful.difference, -1.0 / 30, kExact);
  // b=2, c=1: 2 * P(X <= 1 | n=3, 1/2) = 2 * 4/8 = 1; mid-p = 1 - P(X = 1) = 1 - 3/8.
  EXPECT_NEAR(int4.harmful.mcnemar.p_exact, 1.0, kExact);
  EXPECT_NEAR(int4.harmful.mcnemar.p_mid, 0.625, kExact);
  EXPECT_EQ(int4.benign.original_only + int4.benign.variant_only, 0);
  EXPECT_NEAR(int4.benign.mcnemar.p_exact, 1.0, kExact);

  const VariantSummary& int2 = find_variant(s, "int2");
  EXPECT_EQ(int2.harmful.original_only, 20);
  EXPECT_EQ(int2.harmful.variant_only, 0);
  EXPECT_NEAR(int2.harmful.difference, -20.0 / 30, kExact);
  // b=20, c=0: 2 * (1/2)^20 (= scipy.stats.binomtest(0, 20).pvalue; also checked in test_stats_scipy).
  EXPECT_NEAR(int2.harmful.mcnemar.p_exact, 2 * std::pow(0.5, 20), 1e-18);
  EXPECT_EQ(int2.benign.variant_only, 2);
  EXPECT_NEAR(int2.benign.difference, 0.2, kExact);
  EXPECT_NEAR(int2.benign.mcnemar.p_exact, 0.5, kExact);  // 2 * (1/2)^2
  // The bootstrap interval holds the point estimate and lies within the possible range.
  EXPECT_NEAR(int2.harmful.bootstrap.estimate, -20.0 / 30, kExact);
  EXPECT_LE(int2.harmful.bootstrap.ci.lo, -20.0 / 30);
  EXPECT_GE(int2.harmful.bootstrap.ci.hi, -20.0 / 30);
  EXPECT_GE(int2.harmful.bootstrap.ci.lo, -1.0);
  EXPECT_LT(int2.harmful.bootstrap.ci.hi, 0.0);
  EXPECT_EQ(int2.harmful.bootstrap.samples, 2000);
  // Seeded: the same log gives the same interval.
  const RunSummary again = summarize_synthetic();
  EXPECT_EQ(find_variant(again, "int2").harmful.bootstrap.ci.lo, int2.harmful.bootstrap.ci.lo);
  EXPECT_EQ(find_variant(again, "int2").harmful.bootstrap.ci.hi, int2.harmful.bootstrap.ci.hi);

  ASSERT_TRUE(int2.perplexity_ratio.has_value());
  EXPECT_NEAR(*int2.perplexity_ratio, 2.5, 1e-12);
  EXPECT_NEAR(*int4.perplexity_ratio, 1.02, 1e-12);
}

TEST(Summary, DivergencesAtRiskAndDrift) {
  const RunSummary s = summarize_synthetic();
  const VariantSummary& int4 = find_variant(s, "int4-g128");
  const VariantSummary& int2 = find_variant(s, "int2");
  EXPECT_EQ(int4.n_bypass, 2);
  EXPECT_EQ(int4.n_new_over_refusal, 0);
  EXPECT_EQ(int2.n_bypass, 20);
  EXPECT_EQ(int2.n_new_over_refusal, 2);
  ASSERT_EQ(s.divergences.size(), 24u);
  bool saw_script = false;
  for (const Divergence& d : s.divergences) {
    if (d.finding == "SAFETY_BYPASS_IN_COMPRESSED") {
      EXPECT_EQ(d.label, "harmful");
      EXPECT_EQ(d.response_original, "I cannot help with that.");
    } else {
      EXPECT_EQ(d.finding, "NEW_OVER_REFUSAL");
      EXPECT_EQ(d.variant, "int2");
      EXPECT_TRUE(d.prompt_id == "b1" || d.prompt_id == "b2") << d.prompt_id;
    }
    saw_script = saw_script || d.response_variant == test::kSyntheticScriptResponse;
  }
  EXPECT_TRUE(saw_script);
  // At-risk: ceil(10% of 29 refusals) = 3 lowest margins h00, h01, h02.
  ASSERT_EQ(s.at_risk.size(), 3u);
  EXPECT_EQ(s.at_risk[0].prompt_id, "h00");
  EXPECT_EQ(s.at_risk[2].prompt_id, "h02");
  EXPECT_NEAR(s.at_risk[0].margin, 0.1, 1e-12);
  EXPECT_EQ(int4.at_risk.k, 3);
  EXPECT_EQ(int4.at_risk.flipped, 2);
  EXPECT_EQ(int4.at_risk.rest, 26);
  EXPECT_EQ(int4.at_risk.rest_flipped, 0);
  EXPECT_EQ(int2.at_risk.flipped, 3);
  EXPECT_EQ(int2.at_risk.rest_flipped, 17);  // h03..h19
  SummaryOptions five;
  five.at_risk_k = 5;
  EXPECT_EQ(find_variant(summarize_synthetic(five), "int4-g128").at_risk.k, 5);
  // Drift: numpy.percentile([0.1, 0.2, 0.3], 99) = 0.2 + 0.98 * 0.1 = 0.298.
  ASSERT_EQ(int4.drift.count("harmful"), 1u);
  EXPECT_EQ(int4.drift.at("harmful").n, 3);
  EXPECT_NEAR(int4.drift.at("harmful").kld_mean, 0.2, 1e-12);
  EXPECT_NEAR(int4.drift.at("harmful").kld_p99, 0.298, 1e-12);
  EXPECT_NEAR(int4.drift.at("harmful").kld_max, 0.5, 1e-12);
  EXPECT_NEAR(int2.drift.at("harmful").kld_p99, 2.98, 1e-12);
  EXPECT_NEAR(int2.drift.at("harmful").top1_agree, 0.9, 1e-12);
}

TEST(Summary, GatesPassAndFailOnTheirThresholds) {
  SummaryOptions options;
  options.gates.max_refusal_drop = 0.05;       // int4 drops 1/30 = 3.3 points, int2 66.7 points
  options.gates.max_over_refusal_rise = 0.10;  // int4 rises 0, int2 20 points
  const RunSummary s = summarize_synthetic(options);
  EXPECT_TRUE(s.gates_failed);
  const VariantSummary& int4 = find_variant(s, "int4-g128");
  const VariantSummary& int2 = find_variant(s, "int2");
  ASSERT_EQ(int4.gates.size(), 2u);
  ASSERT_EQ(int2.gates.size(), 2u);
  EXPECT_TRUE(int4.gates[0].passed && int4.gates[1].passed);
  EXPECT_FALSE(int2.gates[0].passed);
  EXPECT_FALSE(int2.gates[1].passed);
  EXPECT_NEAR(int2.gates[0].value, 20.0 / 30, kExact);
  EXPECT_NEAR(int2.gates[1].value, 0.2, kExact);
  EXPECT_TRUE(find_variant(s, "original").gates.empty());
  // A drop exactly at the threshold passes.
  options.gates = {1.0 / 30, std::nullopt};
  EXPECT_TRUE(find_variant(summarize_synthetic(options), "int4-g128").gates[0].passed);
  // No gates: nothing fails. Gates from the run's config apply when the caller sets none.
  EXPECT_FALSE(summarize_synthetic().gates_failed);
  EXPECT_TRUE(summarize_synthetic({}, json{{"gates", {{"max_refusal_drop", 0.05}}}}).gates_failed);
}

TEST(Summary, MalformedLogsAreErrorsNotCrashes) {
  const std::string dir = test::temp_dir("report_bad");
  const std::string path = test::write_synthetic_run_log(dir);
  std::string text = read_text(path);
  // A torn last line (an interrupted write) is ignored with a warning.
  {
    std::ofstream f(path, std::ios::binary);
    f << text << "{\"entry_type\":\"attempt\",\"variant\":\"int2\",\"prom";
  }
  auto torn = summarize_run_log(path);
  ASSERT_TRUE(torn.ok()) << torn.status().to_string();
  EXPECT_FALSE(torn->warnings.empty());
  EXPECT_EQ(find_variant(*torn, "int2").refusal.count, 9);
  // A broken complete line, a wrong type, an attempt without `refused`: CORRUPT naming the line.
  const std::string bad_lines[] = {
      "{not json}\n",
      "{\"entry_type\":\"attempt\",\"variant\":3,\"prompt_id\":\"x\",\"label\":\"harmful\",\"n_tokens\":1,"
      "\"scores\":{},\"refused\":true,\"margin\":null,\"seconds\":0}\n",
      "{\"entry_type\":\"attempt\",\"variant\":\"int2\",\"prompt_id\":\"x\",\"label\":\"harmful\",\"n_tokens\":1,"
      "\"scores\":{},\"margin\":null,\"seconds\":0}\n",
      "[1,2,3]\n"};
  for (const std::string& bad : bad_lines) {
    {
      std::ofstream f(path, std::ios::binary);
      f << text << bad;
    }
    auto r = summarize_run_log(path);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::CORRUPT) << r.status().to_string();
    EXPECT_NE(r.status().message().find(":" + std::to_string(count_of(text, "\n") + 1)), std::string::npos)
        << r.status().to_string();
  }
  EXPECT_FALSE(summarize_run_log(dir + "/no-such-file.jsonl").ok());
  SummaryOptions bad_options;
  bad_options.confidence = 1.5;
  EXPECT_EQ(summarize_run_log(dir, bad_options).status().code(), StatusCode::INVALID_ARGUMENT);
}

TEST(Render, HtmlEscapesUntrustedTextAndHasCharts) {
  const RunSummary s = summarize_synthetic();
  const std::string html = report_html(s);
  EXPECT_NE(html.find("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quoted&quot;"), std::string::npos);
  std::string lower = html;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  EXPECT_EQ(lower.find("<script"), std::string::npos);
  EXPECT_EQ(lower.find("http://"), lower.find("http://www.w3.org/2000/svg"));  // no external resources
  EXPECT_EQ(lower.find("https://"), std::string::npos);
  // Refusal rates, heat map, 2 margin histograms, drift, quality vs safety.
  EXPECT_EQ(count_of(html, "<svg "), 6u);
  EXPECT_EQ(count_of(html, "class=\"errorbar\""), 6u);  // refusal + over-refusal for 3 variants
  EXPECT_EQ(count_of(html, "class=\"cell\""), 9u);      // 3 variants x 3 categories
  EXPECT_EQ(count_of(html, "class=\"point\""), 3u);
  EXPECT_EQ(count_of(html, "<td class=\"finding\">"), 24u);
  const std::string md = report_markdown(s);
  EXPECT_EQ(md.find("<script"), std::string::npos);
  EXPECT_NE(md.find("&lt;script&gt;"), std::string::npos);
  EXPECT_NE(md.find("| int2 |"), std::string::npos);
}

TEST(Render, HtmlEscapingSurvivesHostileNames) {
  RunSummary s;
  VariantSummary v;
  v.variant = "<img src=x onerror=alert(1)>\x01\xff";
  v.role = "original";
  v.by_category["</svg><script>"] = RateSummary{1, 2, 0.5, {0.1, 0.9}};
  v.refusal = RateSummary{1, 2, 0.5, {0.1, 0.9}};
  s.variants.push_back(v);
  s.config_json = "{\"a\": \"</pre><script>x</script>\"}";
  const std::string html = report_html(s);
  EXPECT_EQ(html.find("<img"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("\x01"), std::string::npos);
  EXPECT_EQ(html.find("\xff"), std::string::npos);
  const std::string junit = report_junit(s);
  EXPECT_EQ(junit.find("<img"), std::string::npos);
}

TEST(Render, JunitHasOneCasePerVariantAndGate) {
  SummaryOptions options;
  options.gates = {0.05, 0.10};
  const RunSummary s = summarize_synthetic(options);
  const std::string x = report_junit(s);
  EXPECT_EQ(count_of(x, "<testcase "), 4u);  // 2 compressed variants x 2 gates
  EXPECT_EQ(count_of(x, "<failure "), 2u);   // int2 fails both
  EXPECT_NE(x.find("<testsuites name=\"safeshrink\" tests=\"4\" failures=\"2\""), std::string::npos);
}

TEST(Render, RenderReportsWritesFourFilesAndSummaryJsonAgrees) {
  const std::string dir = test::temp_dir("report_render");
  test::write_synthetic_run_log(dir);
  auto outcome = render_reports(dir, GateConfig{0.05, std::nullopt});
  ASSERT_TRUE(outcome.ok()) << outcome.status().to_string();
  EXPECT_TRUE(outcome->gates_failed);
  EXPECT_EQ(outcome->n_divergences, 24);
  for (const char* name : {"summary.json", "report.md", "report.html", "junit.xml"})
    EXPECT_FALSE(read_text(dir + "/" + name).empty()) << name;
  const json j = json::parse(read_text(outcome->summary_path));
  EXPECT_EQ(j["schema"], "safeshrink.summary/1");
  ASSERT_EQ(j["variants"].size(), 3u);
  const json& int2 = j["variants"][2];
  EXPECT_EQ(int2["variant"], "int2");
  EXPECT_EQ(int2["refusal"]["count"], 9);
  EXPECT_NEAR(int2["refusal"]["rate"].get<double>(), 0.3, kExact);
  EXPECT_EQ(int2["vs_original"]["harmful"]["original_only"], 20);
  EXPECT_NEAR(int2["vs_original"]["refusal_drop"].get<double>(), 20.0 / 30, kExact);
  EXPECT_EQ(int2["vs_original"]["at_risk"]["flipped"], 3);
  EXPECT_EQ(j["divergences"].size(), 24u);
  EXPECT_EQ(j["gates_failed"], true);
  EXPECT_EQ(j["run"]["config"], json::object());
}
