// stats.h against scipy/numpy (tests/py/stats_scipy.py run by /usr/bin/python3): Wilson intervals
// (scipy's binomtest(...).proportion_ci(method="wilson") and the formula with norm.ppf) including
// the edges 0/n and n/n, Clopper-Pearson (method="exact"), exact McNemar as binomtest(b, b+c, 0.5)
// and its mid-p, normal quantiles, numpy percentiles. Tolerances: 1e-12 absolute for closed forms;
// 1e-9 for Clopper-Pearson (scipy inverts the beta CDF, we bisect the binomial tail).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "safeshrink/stats.h"
#include "test_support.h"

using namespace ss;
using nlohmann::json;

namespace {

struct Proportion {
  int k, n;
  double conf;
};
const Proportion kProportions[] = {{0, 10, 0.95},  {10, 10, 0.95}, {1, 10, 0.95},   {37, 120, 0.95}, {500, 1000, 0.95},
                                   {3, 7, 0.90},   {0, 1, 0.95},   {1, 1, 0.99},    {29, 30, 0.95},  {9, 30, 0.99},
                                   {0, 400, 0.95}, {400, 400, 0.9}, {123, 456, 0.8}, {1, 2000, 0.95}};

std::string name(const char* kind, const Proportion& p) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s:%d:%d:%g", kind, p.k, p.n, p.conf);
  return buf;
}

// Includes the discordant pairs of the synthetic run log in test_report.cpp: (2,1), (20,0), (0,2).
const std::pair<int, int> kPairs[] = {{0, 5}, {1, 9},  {9, 1},  {7, 3},  {12, 30}, {50, 50},   {100, 140},
                                      {0, 1}, {2, 1},  {20, 0}, {0, 2},  {3, 17},  {400, 470}, {1, 60}};
const double kQuantiles[] = {1e-12, 1e-6, 0.001, 0.02, 0.02425, 0.1, 0.5, 0.7, 0.95, 0.975, 0.999, 1 - 1e-9};

std::string mcnemar_name(std::pair<int, int> bc) {
  return "mcnemar:" + std::to_string(bc.first) + ":" + std::to_string(bc.second);
}
std::string ppf_name(double p) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "ppf:%.17g", p);
  return buf;
}

// All reference values from one Python run (importing scipy takes seconds); null without scipy.
const json& scipy_reference() {
  static const json ref = [] {
    if (!test::python_has({"scipy", "numpy"})) return json();
    std::string args;
    for (const Proportion& p : kProportions) args += " '" + name("wilson", p) + "' '" + name("exact", p) + "'";
    for (auto bc : kPairs) args += " '" + mcnemar_name(bc) + "'";
    for (double p : kQuantiles) args += " '" + ppf_name(p) + "'";
    args += " 'pct:99:0.1,0.2,0.3' 'pct:37.5:5,1,4,2,8,7,3' 'pct:0:3,1,2'";
    std::string out;
    const int rc = test::run_python("py/stats_scipy.py", args, &out);
    EXPECT_EQ(rc, 0) << out;
    json j = json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j.is_discarded() ? json() : j;
  }();
  return ref;
}

#define SS_REQUIRE_SCIPY()                                                                    \
  do {                                                                                        \
    if (scipy_reference().is_null())                                                          \
      GTEST_SKIP() << "/usr/bin/python3 lacks scipy/numpy (scripts/setup installs them)";    \
  } while (0)

}  // namespace

TEST(StatsScipy, WilsonMatchesScipyAndTheFormula) {
  SS_REQUIRE_SCIPY();
  const json& ref = scipy_reference();
  for (const Proportion& p : kProportions) {
    const json& r = ref[name("wilson", p)];
    auto ci = wilson_interval(p.k, p.n, p.conf);
    ASSERT_TRUE(ci.ok());
    EXPECT_NEAR(ci->lo, r[0].get<double>(), 1e-12) << name("wilson", p) << " formula";
    EXPECT_NEAR(ci->hi, r[1].get<double>(), 1e-12) << name("wilson", p) << " formula";
    EXPECT_NEAR(ci->lo, r[2].get<double>(), 1e-12) << name("wilson", p) << " scipy";
    EXPECT_NEAR(ci->hi, r[3].get<double>(), 1e-12) << name("wilson", p) << " scipy";
  }
}

TEST(StatsScipy, ClopperPearsonMatchesScipyExact) {
  SS_REQUIRE_SCIPY();
  const json& ref = scipy_reference();
  for (const Proportion& p : kProportions) {
    const json& r = ref[name("exact", p)];
    auto ci = clopper_pearson_interval(p.k, p.n, p.conf);
    ASSERT_TRUE(ci.ok());
    EXPECT_NEAR(ci->lo, r[0].get<double>(), 1e-9) << name("exact", p);
    EXPECT_NEAR(ci->hi, r[1].get<double>(), 1e-9) << name("exact", p);
  }
}

TEST(StatsScipy, ExactMcNemarMatchesBinomtest) {
  SS_REQUIRE_SCIPY();
  const json& ref = scipy_reference();
  std::vector<std::string> cases;
  std::vector<std::pair<int, int>> pairs(std::begin(kPairs), std::end(kPairs));
  for (auto bc : pairs) cases.push_back(mcnemar_name(bc));
  for (size_t i = 0; i < cases.size(); ++i) {
    auto m = mcnemar_exact(pairs[i].first, pairs[i].second);
    ASSERT_TRUE(m.ok());
    const double p = ref[cases[i]][0].get<double>(), mid = ref[cases[i]][1].get<double>();
    // Relative for tiny p-values, absolute otherwise.
    EXPECT_NEAR(m->p_exact, p, 1e-12 + 1e-10 * p) << cases[i];
    EXPECT_NEAR(m->p_mid, mid, 1e-12 + 1e-10 * mid) << cases[i];
  }
}

TEST(StatsScipy, NormalQuantileAndPercentileMatchScipyNumpy) {
  SS_REQUIRE_SCIPY();
  const json& ref = scipy_reference();
  const auto& ps = kQuantiles;
  std::vector<std::string> cases;
  for (double p : ps) cases.push_back(ppf_name(p));
  for (size_t i = 0; i < std::size(ps); ++i) {
    const double want = ref[cases[i]][0].get<double>();
    EXPECT_NEAR(normal_quantile(ps[i]), want, 1e-12 * std::max(1.0, std::fabs(want))) << cases[i];
  }
  EXPECT_NEAR(percentile_of({0.1, 0.2, 0.3}, 99), ref["pct:99:0.1,0.2,0.3"][0].get<double>(), 1e-14);
  EXPECT_NEAR(percentile_of({5, 1, 4, 2, 8, 7, 3}, 37.5), ref["pct:37.5:5,1,4,2,8,7,3"][0].get<double>(), 1e-14);
  EXPECT_NEAR(percentile_of({3, 1, 2}, 0), ref["pct:0:3,1,2"][0].get<double>(), 1e-14);
}
