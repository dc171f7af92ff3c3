"""AWQ scale search re-stated in PyTorch from the paper (Lin et al. 2024, Sec. 3.2-3.3) for
tests/reference/test_awq.cpp: s = mean|x|^alpha (clamped >= 1e-4, normalised by sqrt(max*min)),
alpha on the grid {0, 1/n, ..., (n-1)/n}, loss = ||X W^T - X (Q(W diag s) diag(1/s))^T||^2 with the
actual X (not X^T X), Q = asymmetric min-max round-to-nearest per group with f16 scales. float64.

usage: awq_reference.py DIR rows k n bits group grid
reads DIR/w.f32 (rows, k), DIR/x.f32 (n, k); prints JSON {alpha, error, error_alpha0, scales}.
"""
import json
import sys
import numpy as np
import torch


def pseudo_quantize(w, bits, gs):
    rows, k = w.shape
    maxq = 2 ** bits - 1
    g = w.reshape(rows, k // gs, gs)
    lo = torch.clamp(g.amin(dim=2, keepdim=True), max=0.0)
    hi = torch.clamp(g.amax(dim=2, keepdim=True), min=0.0)
    both0 = (lo == 0) & (hi == 0)
    lo = torch.where(both0, torch.full_like(lo, -1.0), lo)
    hi = torch.where(both0, torch.full_like(hi, 1.0), hi)
    scale = ((hi - lo) / maxq).to(torch.float32).to(torch.float16).to(torch.float64)
    scale = torch.where(scale > 0, scale, torch.full_like(scale, 2.0 ** -14))
    zero = torch.clamp(torch.round(-lo / scale), 0, maxq)
    q = torch.clamp(torch.round(g / scale) + zero, 0, maxq)
    return ((q - zero) * scale).reshape(rows, k)


def main():
    d = sys.argv[1]
    rows, k, n, bits, gs, grid = (int(v) for v in sys.argv[2:8])
    W = torch.from_numpy(np.fromfile(f"{d}/w.f32", dtype=np.float32).reshape(rows, k)).double()
    X = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype=np.float32).reshape(n, k)).double()
    x_mean = X.abs().mean(dim=0)
    y = X @ W.T
    best = None
    err0 = None
    for step in range(grid):
        alpha = step / grid
        s = torch.clamp(x_mean.pow(alpha), min=1e-4)
        s = s / torch.sqrt(s.max() * s.min())
        s = s.to(torch.float32).double()  # the scales are stored as f32
        wq = pseudo_quantize(W * s[None, :], bits, gs) / s[None, :]
        err = float(((y - X @ wq.T) ** 2).sum())
        if step == 0:
            err0 = err
        if best is None or err < best[1]:
            best = (alpha, err, s)
    print(json.dumps({"alpha": best[0], "error": best[1], "error_alpha0": err0, "scales": best[2].tolist()}))


if __name__ == "__main__":
    main()
