// Statistics for safety evaluations: confidence intervals of a proportion (Wilson score,
// Clopper-Pearson), the exact McNemar test on paired binary outcomes, a seeded paired bootstrap
// interval of a rate difference, and plain summaries (mean, percentile). This is not a general
// statistics library: it holds exactly what the summary of a run log needs, each function checked
// against scipy in tests/reference/test_stats_scipy.cpp. To add one more, declare it here with its
// reference (paper or scipy function), implement it in src/report/stats.cpp and add its case to
// tests/py/stats_scipy.py.
#pragma once

#include <cstdint>
#include <vector>

#include "safeshrink/status.h"

namespace ss {

struct Interval {
  double lo = 0;
  double hi = 0;
};

// Quantile of the standard normal distribution (inverse CDF), p in (0, 1). Equals
// scipy.stats.norm.ppf to ~1e-15 relative (rational start + Halley steps on erfc).
double normal_quantile(double p);

// Wilson score interval of `successes` out of `n` at `confidence` (two-sided), E. B. Wilson 1927.
// n == 0 gives [0, 1]. Bounds are clamped to [0, 1].
Result<Interval> wilson_interval(int64_t successes, int64_t n, double confidence = 0.95);

// Clopper-Pearson ("exact") interval: the bounds where the binomial tail equals (1-confidence)/2,
// found by bisection; equals scipy.stats.binomtest(k, n).proportion_ci(method="exact").
// 0/n gives lo = 0, n/n gives hi = 1, n == 0 gives [0, 1].
Result<Interval> clopper_pearson_interval(int64_t successes, int64_t n, double confidence = 0.95);

// P(X = k) and P(X <= k) for X ~ Binomial(n, p), computed in log space (lgamma), safe for large n.
double binomial_pmf(int64_t k, int64_t n, double p);
double binomial_cdf(int64_t k, int64_t n, double p);

// Exact McNemar test on the discordant pairs of a paired binary comparison: `b` pairs changed one
// way, `c` the other way. Under H0 b ~ Binomial(b + c, 1/2). p_exact is the two-sided binomial
// p-value (scipy.stats.binomtest(b, b + c, 0.5).pvalue); p_mid is the mid-p variant
// 2 P(X <= min(b,c)) - P(X = min(b,c)) (Fagerland et al. 2013). b + c == 0 gives 1 and 1.
struct McNemarResult {
  int64_t b = 0;
  int64_t c = 0;
  double p_exact = 1;
  double p_mid = 1;
};
Result<McNemarResult> mcnemar_exact(int64_t b, int64_t c);

// Paired bootstrap of the difference of two rates on the same items: resamples item indices with
// replacement `samples` times (seeded, deterministic) and returns the percentile interval of
// mean(after) - mean(before). `before` and `after` hold 0/1 outcomes per item, same length.
struct BootstrapDifference {
  double estimate = 0;  // mean(after) - mean(before) on the data itself
  Interval ci;
  int samples = 0;
};
Result<BootstrapDifference> bootstrap_paired_difference(const std::vector<uint8_t>& before,
                                                        const std::vector<uint8_t>& after, int samples = 2000,
                                                        double confidence = 0.95, uint64_t seed = 0x5eed);

// Arithmetic mean; 0 for an empty vector.
double mean_of(const std::vector<double>& values);
// Percentile q in [0, 100] with linear interpolation between order statistics (numpy.percentile's
// default "linear" method); 0 for an empty vector.
double percentile_of(std::vector<double> values, double q);

}  // namespace ss
