#!/usr/bin/python3
"""Reference values for tests/reference/test_stats_scipy.cpp, computed with scipy and numpy.

Usage: stats_scipy.py CASE...   where CASE is one of
  wilson:K:N:CONF        Wilson score interval from its formula with scipy.stats.norm.ppf,
                         and scipy's binomtest(K, N).proportion_ci(CONF, method="wilson")
  exact:K:N:CONF         Clopper-Pearson: binomtest(K, N).proportion_ci(CONF, method="exact")
  mcnemar:B:C            binomtest(B, B+C, 0.5).pvalue and the mid-p 2 P(X<=min) - P(X=min)
  ppf:P                  scipy.stats.norm.ppf(P)
  pct:Q:V1,V2,...        numpy.percentile(values, Q) (linear)
Prints one JSON object: {"CASE": [numbers...], ...}.
"""
import json
import math
import sys

import numpy as np
from scipy import stats


def wilson_formula(k, n, conf):
    z = stats.norm.ppf(1 - (1 - conf) / 2)
    p = k / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, center - half), min(1.0, center + half)]


def main():
    out = {}
    for case in sys.argv[1:]:
        kind, *args = case.split(":")
        if kind == "wilson":
            k, n, conf = int(args[0]), int(args[1]), float(args[2])
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="wilson")
            out[case] = wilson_formula(k, n, conf) + [float(ci.low), float(ci.high)]
        elif kind == "exact":
            k, n, conf = int(args[0]), int(args[1]), float(args[2])
            ci = stats.binomtest(k, n).proportion_ci(confidence_level=conf, method="exact")
            out[case] = [float(ci.low), float(ci.high)]
        elif kind == "mcnemar":
            b, c = int(args[0]), int(args[1])
            n, k = b + c, min(b, c)
            p = stats.binomtest(b, n, 0.5).pvalue
            mid = min(1.0, 2 * stats.binom.cdf(k, n, 0.5) - stats.binom.pmf(k, n, 0.5))
            out[case] = [float(p), float(mid)]
        elif kind == "ppf":
            out[case] = [float(stats.norm.ppf(float(args[0])))]
        elif kind == "pct":
            values = [float(v) for v in args[1].split(",")]
            out[case] = [float(np.percentile(values, float(args[0])))]
        else:
            raise SystemExit("unknown case " + case)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
