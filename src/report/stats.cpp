// Implementation of stats.h: proportion intervals, exact McNemar, paired bootstrap, percentiles.
// This file computes; it reads no run log and renders nothing (summary.cpp does that). To add a
// statistic, declare it in include/safeshrink/stats.h and put it here next to its relatives.
#include "safeshrink/stats.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "safeshrink/rng.h"

namespace ss {
namespace {

Status check_proportion_args(int64_t successes, int64_t n, double confidence) {
  if (n < 0) return invalid_argument("n must be non-negative, got " + std::to_string(n));
  if (successes < 0 || successes > n)
    return invalid_argument("successes must be in [0, n=" + std::to_string(n) + "], got " + std::to_string(successes));
  if (!(confidence > 0 && confidence < 1))
    return invalid_argument("confidence must be in (0, 1), got " + std::to_string(confidence));
  return ok_status();
}

double log_binomial_pmf(int64_t k, int64_t n, double p) {
  const double kd = static_cast<double>(k), nd = static_cast<double>(n);
  return std::lgamma(nd + 1) - std::lgamma(kd + 1) - std::lgamma(nd - kd + 1) + kd * std::log(p) +
         (nd - kd) * std::log1p(-p);
}

// P(X >= k), summed directly so that tiny upper tails keep their precision.
double binomial_upper_tail(int64_t k, int64_t n, double p) {
  if (k <= 0) return 1;
  if (k > n) return 0;
  double sum = 0;
  for (int64_t i = n; i >= k; --i) sum += binomial_pmf(i, n, p);
  return std::min(1.0, sum);
}

}  // namespace

double normal_quantile(double p) {
  if (!(p > 0 && p < 1)) return p == 0 ? -HUGE_VAL : (p == 1 ? HUGE_VAL : std::nan(""));
  // Rational approximation (P. J. Acklam), relative error ~1e-9, then two Halley steps on erfc.
  static const double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                             1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static const double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                             6.680131188771972e+01,  -1.328068155288572e+01};
  static const double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                             -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static const double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                             3.754408661907416e+00};
  const double p_low = 0.02425;
  double x;
  if (p < p_low) {
    const double q = std::sqrt(-2 * std::log(p));
    x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  } else if (p <= 1 - p_low) {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  } else {
    const double q = std::sqrt(-2 * std::log1p(-p));
    x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
        ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  for (int step = 0; step < 2; ++step) {
    // Work on the smaller tail so that the residual keeps its precision.
    const double e = x < 0 ? 0.5 * std::erfc(-x / std::sqrt(2.0)) - p : (1 - p) - 0.5 * std::erfc(x / std::sqrt(2.0));
    const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
    x = x - u / (1 + x * u / 2);
  }
  return x;
}

Result<Interval> wilson_interval(int64_t successes, int64_t n, double confidence) {
  SS_RETURN_IF_ERROR(check_proportion_args(successes, n, confidence));
  if (n == 0) return Interval{0, 1};
  const double z = normal_quantile(1 - (1 - confidence) / 2);
  const double nd = static_cast<double>(n), phat = static_cast<double>(successes) / nd, z2 = z * z;
  const double denom = 1 + z2 / nd;
  const double center = (phat + z2 / (2 * nd)) / denom;
  const double half = z * std::sqrt(phat * (1 - phat) / nd + z2 / (4 * nd * nd)) / denom;
  Interval out{std::clamp(center - half, 0.0, 1.0), std::clamp(center + half, 0.0, 1.0)};
  if (successes == 0) out.lo = 0;
  if (successes == n) out.hi = 1;
  return out;
}

Result<Interval> clopper_pearson_interval(int64_t successes, int64_t n, double confidence) {
  SS_RETURN_IF_ERROR(check_proportion_args(successes, n, confidence));
  if (n == 0) return Interval{0, 1};
  const double tail = (1 - confidence) / 2;
  Interval out{0, 1};
  if (successes > 0) {  // lo: P(X >= k | p) = tail, increasing in p
    double lo = 0, hi = 1;
    for (int it = 0; it < 200 && hi - lo > 1e-16; ++it) {
      const double mid = 0.5 * (lo + hi);
      (binomial_upper_tail(successes, n, mid) < tail ? lo : hi) = mid;
    }
    out.lo = 0.5 * (lo + hi);
  }
  if (successes < n) {  // hi: P(X <= k | p) = tail, decreasing in p
    double lo = 0, hi = 1;
    for (int it = 0; it < 200 && hi - lo > 1e-16; ++it) {
      const double mid = 0.5 * (lo + hi);
      (binomial_cdf(successes, n, mid) > tail ? lo : hi) = mid;
    }
    out.hi = 0.5 * (lo + hi);
  }
  return out;
}

double binomial_pmf(int64_t k, int64_t n, double p) {
  if (n < 0 || k < 0 || k > n) return 0;
  if (p <= 0) return k == 0 ? 1 : 0;
  if (p >= 1) return k == n ? 1 : 0;
  return std::exp(log_binomial_pmf(k, n, p));
}

double binomial_cdf(int64_t k, int64_t n, double p) {
  if (k < 0) return 0;
  if (k >= n) return 1;
  double sum = 0;
  for (int64_t i = 0; i <= k; ++i) sum += binomial_pmf(i, n, p);
  return std::min(1.0, sum);
}

Result<McNemarResult> mcnemar_exact(int64_t b, int64_t c) {
  if (b < 0 || c < 0)
    return invalid_argument("discordant counts must be non-negative, got b=" + std::to_string(b) +
                            " c=" + std::to_string(c));
  McNemarResult r;
  r.b = b;
  r.c = c;
  const int64_t n = b + c;
  if (n == 0 || b == c) return r;  // p = 1: the data sit at the centre of a symmetric distribution
  const int64_t k = std::min(b, c);
  const double lower = binomial_cdf(k, n, 0.5);
  r.p_exact = std::min(1.0, 2 * lower);
  r.p_mid = std::min(1.0, 2 * lower - binomial_pmf(k, n, 0.5));
  return r;
}

Result<BootstrapDifference> bootstrap_paired_difference(const std::vector<uint8_t>& before,
                                                        const std::vector<uint8_t>& after, int samples,
                                                        double confidence, uint64_t seed) {
  if (before.size() != after.size())
    return invalid_argument("paired bootstrap: before has " + std::to_string(before.size()) + " items, after has " +
                            std::to_string(after.size()));
  if (samples < 1) return invalid_argument("bootstrap samples must be >= 1, got " + std::to_string(samples));
  if (!(confidence > 0 && confidence < 1))
    return invalid_argument("confidence must be in (0, 1), got " + std::to_string(confidence));
  BootstrapDifference out;
  out.samples = samples;
  const size_t n = before.size();
  if (n == 0) return out;
  // Each item contributes after - before in {-1, 0, 1}; resampling items resamples these.
  std::vector<int> delta(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    delta[i] = (after[i] ? 1 : 0) - (before[i] ? 1 : 0);
    total += delta[i];
  }
  out.estimate = static_cast<double>(total) / static_cast<double>(n);
  Rng rng(seed);
  std::vector<double> diffs(static_cast<size_t>(samples));
  for (int s = 0; s < samples; ++s) {
    int64_t sum = 0;
    for (size_t i = 0; i < n; ++i) sum += delta[rng.below(n)];
    diffs[static_cast<size_t>(s)] = static_cast<double>(sum) / static_cast<double>(n);
  }
  const double alpha = 1 - confidence;
  std::sort(diffs.begin(), diffs.end());
  out.ci.lo = percentile_of(diffs, 100 * alpha / 2);
  out.ci.hi = percentile_of(diffs, 100 * (1 - alpha / 2));
  return out;
}

double mean_of(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

double percentile_of(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  q = std::clamp(q, 0.0, 100.0);
  const double pos = q / 100 * static_cast<double>(values.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, values.size() - 1);
  const double frac = pos - static_cast<double>(lo);
  return values[lo] + (values[hi] - values[lo]) * frac;
}

}  // namespace ss
