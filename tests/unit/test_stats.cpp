// stats.h against closed forms and known constants (self-contained; scipy comparisons are in
// tests/reference/test_stats_scipy.cpp), plus the coverage of the paired bootstrap interval on
// simulated paired data with a known difference.
#include <gtest/gtest.h>

#include <cmath>

#include "safeshrink/rng.h"
#include "safeshrink/stats.h"

using namespace ss;

TEST(Stats, NormalQuantileKnownValues) {
  // Published values of the standard normal quantile.
  EXPECT_NEAR(normal_quantile(0.975), 1.959963984540054, 1e-14);
  EXPECT_NEAR(normal_quantile(0.995), 2.5758293035489004, 1e-14);
  EXPECT_NEAR(normal_quantile(0.5), 0.0, 1e-15);
  EXPECT_NEAR(normal_quantile(0.025), -1.959963984540054, 1e-14);
  EXPECT_NEAR(normal_quantile(0.8413447460685429), 1.0, 1e-12);  // Phi(1)
}

TEST(Stats, WilsonClosedFormsAtTheEdges) {
  const double z = 1.959963984540054;
  // k = 0: [0, z^2 / (n + z^2)]; k = n: [n / (n + z^2), 1].
  for (int n : {1, 7, 30, 1000}) {
    auto zero = wilson_interval(0, n);
    ASSERT_TRUE(zero.ok());
    EXPECT_EQ(zero->lo, 0.0);
    EXPECT_NEAR(zero->hi, z * z / (n + z * z), 1e-14) << n;
    auto all = wilson_interval(n, n);
    ASSERT_TRUE(all.ok());
    EXPECT_NEAR(all->lo, n / (n + z * z), 1e-14) << n;
    EXPECT_EQ(all->hi, 1.0);
  }
  auto empty = wilson_interval(0, 0);
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->lo, 0.0);
  EXPECT_EQ(empty->hi, 1.0);
  EXPECT_FALSE(wilson_interval(5, 4).ok());
  EXPECT_FALSE(wilson_interval(-1, 4).ok());
  EXPECT_FALSE(wilson_interval(1, 4, 1.0).ok());
}

TEST(Stats, ClopperPearsonClosedFormsAtTheEdges) {
  // 0/n: hi = 1 - (alpha/2)^(1/n); n/n: lo = (alpha/2)^(1/n).
  for (int n : {1, 10, 57}) {
    auto zero = clopper_pearson_interval(0, n, 0.95);
    ASSERT_TRUE(zero.ok());
    EXPECT_EQ(zero->lo, 0.0);
    EXPECT_NEAR(zero->hi, 1 - std::pow(0.025, 1.0 / n), 1e-12) << n;
    auto all = clopper_pearson_interval(n, n, 0.95);
    ASSERT_TRUE(all.ok());
    EXPECT_NEAR(all->lo, std::pow(0.025, 1.0 / n), 1e-12) << n;
    EXPECT_EQ(all->hi, 1.0);
  }
}

TEST(Stats, BinomialAndMcNemarSmallCasesByHand) {
  EXPECT_NEAR(binomial_pmf(2, 4, 0.5), 6.0 / 16, 1e-15);
  EXPECT_NEAR(binomial_cdf(1, 4, 0.5), 5.0 / 16, 1e-15);
  EXPECT_NEAR(binomial_pmf(1, 3, 0.2), 3 * 0.2 * 0.64, 1e-15);
  // b=1, c=9: 2 * (1 + 10) / 1024; mid-p subtracts P(X = 1) = 10/1024.
  auto m = mcnemar_exact(1, 9);
  ASSERT_TRUE(m.ok());
  EXPECT_NEAR(m->p_exact, 22.0 / 1024, 1e-15);
  EXPECT_NEAR(m->p_mid, 12.0 / 1024, 1e-15);
  EXPECT_NEAR(mcnemar_exact(9, 1)->p_exact, 22.0 / 1024, 1e-15);  // symmetric
  EXPECT_NEAR(mcnemar_exact(0, 5)->p_exact, 2.0 / 32, 1e-15);
  EXPECT_EQ(mcnemar_exact(0, 0)->p_exact, 1.0);
  EXPECT_EQ(mcnemar_exact(4, 4)->p_exact, 1.0);
  EXPECT_FALSE(mcnemar_exact(-1, 2).ok());
}

TEST(Stats, MeanAndPercentileLikeNumpyLinear) {
  EXPECT_DOUBLE_EQ(mean_of({1, 2, 3, 4}), 2.5);
  EXPECT_DOUBLE_EQ(percentile_of({4, 1, 3, 2}, 50), 2.5);
  std::vector<double> hundred;
  for (int i = 1; i <= 100; ++i) hundred.push_back(i);
  EXPECT_NEAR(percentile_of(hundred, 99), 99.01, 1e-12);  // 1 + 0.99 * 99
  EXPECT_DOUBLE_EQ(percentile_of({5}, 99), 5.0);
  EXPECT_DOUBLE_EQ(percentile_of({}, 50), 0.0);
}

// 200 simulated paired datasets (n = 150 pairs) with P(1,1)=.55, P(1,0)=.15, P(0,1)=.05, P(0,0)=.25:
// before rate 0.70, after rate 0.60, true difference -0.10. A 95% interval must cover it in about
// 95% of datasets; [0.90, 0.98] allows the binomial noise of 200 trials (sd 1.5 points) and the
// known slight under-coverage of percentile intervals.
TEST(Stats, PairedBootstrapCoverageOnSimulatedData) {
  Rng rng(2024);
  const int datasets = 200, n = 150;
  int covered = 0;
  for (int d = 0; d < datasets; ++d) {
    std::vector<uint8_t> before(n), after(n);
    for (int i = 0; i < n; ++i) {
      const double u = rng.uniform();
      before[i] = u < 0.70;                           // (1,1) or (1,0)
      after[i] = u < 0.55 || (u >= 0.70 && u < 0.75);  // (1,1) or (0,1)
    }
    auto b = bootstrap_paired_difference(before, after, 2000, 0.95, 1000 + d);
    ASSERT_TRUE(b.ok());
    covered += b->ci.lo <= -0.10 && -0.10 <= b->ci.hi;
  }
  const double coverage = static_cast<double>(covered) / datasets;
  EXPECT_GE(coverage, 0.90);
  EXPECT_LE(coverage, 0.98);
  std::printf("bootstrap coverage of the 95%% interval: %.3f over %d datasets\n", coverage, datasets);
}

TEST(Stats, PairedBootstrapIsSeededAndChecksItsInput) {
  std::vector<uint8_t> a = {1, 1, 0, 1, 0, 1, 1, 1}, b = {0, 1, 0, 1, 1, 0, 0, 1};
  auto x = bootstrap_paired_difference(a, b, 500, 0.9, 7);
  auto y = bootstrap_paired_difference(a, b, 500, 0.9, 7);
  ASSERT_TRUE(x.ok() && y.ok());
  EXPECT_EQ(x->ci.lo, y->ci.lo);
  EXPECT_EQ(x->ci.hi, y->ci.hi);
  EXPECT_DOUBLE_EQ(x->estimate, (4.0 - 6.0) / 8);
  EXPECT_LE(x->ci.lo, x->estimate);
  EXPECT_GE(x->ci.hi, x->estimate);
  EXPECT_FALSE(bootstrap_paired_difference(a, {1, 0}, 10).ok());
  EXPECT_FALSE(bootstrap_paired_difference(a, b, 0).ok());
}
