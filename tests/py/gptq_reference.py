"""GPTQ re-stated in PyTorch from the paper (Frantar et al. 2023, Algorithm 1), for
tests/reference/test_gptq.cpp. Deliberately the plain column-by-column form (no lazy batches):
the C++ lazy-batch version must equal it. float64 throughout.

usage: gptq_reference.py DIR rows cols n damp CONFIG...   CONFIG = bits:group_size:sym:desc_act:static
reads DIR/w.f32 (rows, cols) and DIR/x.f32 (n, cols); for config number i writes DIR/ref<i>_codes.i32,
_scales.f32, _zeros.i32, _gidx.i32, _deq.f32 and _rtn.f32 (round-to-nearest on the same grid).
"""
import sys
import numpy as np
import torch


def grid(w, maxq, sym):
    """Min-max grid per row of w (rows, m); range includes 0; scale rounded to f16."""
    lo = torch.clamp(w.min(dim=1).values, max=0.0)
    hi = torch.clamp(w.max(dim=1).values, min=0.0)
    if sym:
        hi = torch.maximum(lo.abs(), hi)
        lo = torch.where(lo < 0, -hi, lo)
    both0 = (lo == 0) & (hi == 0)
    lo = torch.where(both0, torch.full_like(lo, -1.0), lo)
    hi = torch.where(both0, torch.full_like(hi, 1.0), hi)
    scale = ((hi - lo) / maxq).to(torch.float32).to(torch.float16).to(torch.float64)
    scale = torch.where(scale > 0, scale, torch.full_like(scale, 2.0 ** -14))
    if sym:
        zero = torch.full_like(scale, (maxq + 1) // 2)
    else:
        zero = torch.clamp(torch.round(-lo / scale), 0, maxq)
    return scale, zero


def quant(w, scale, zero, maxq):
    q = torch.clamp(torch.round(w / scale) + zero, 0, maxq)
    return q, (q - zero) * scale


def main():
    d = sys.argv[1]
    rows, cols, n = (int(v) for v in sys.argv[2:5])
    damp = float(sys.argv[5])
    W = torch.from_numpy(np.fromfile(f"{d}/w.f32", dtype=np.float32).reshape(rows, cols)).double()
    X = torch.from_numpy(np.fromfile(f"{d}/x.f32", dtype=np.float32).reshape(n, cols)).double()
    for i, config in enumerate(sys.argv[6:]):
        f = config.split(":")
        run(f"{d}/ref{i}", W.clone(), X, int(f[0]), int(f[1]), f[2] == "1", f[3] == "1", f[4] == "1", damp)
    print("ok")


def run(prefix, W, X, bits, gs, sym, desc_act, static, damp):
    rows, cols = W.shape
    n = X.shape[0]
    maxq = 2 ** bits - 1
    if gs <= 0 or gs > cols:
        gs = cols
    W0 = W.clone()

    H = 2.0 * X.T @ X / n
    dead = torch.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    ngroups = (cols + gs - 1) // gs
    static_grids = []
    if static:
        for g in range(ngroups):
            static_grids.append(grid(W[:, g * gs:(g + 1) * gs], maxq, sym))
    perm = torch.arange(cols)
    if desc_act:
        perm = torch.argsort(torch.diag(H), descending=True, stable=True)
        W = W[:, perm]
        H = H[perm][:, perm]
    H = H + damp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    # Algorithm 1: U = Cholesky(H^-1)^T (upper); its rows give the OBS update.
    L = torch.linalg.cholesky(H)
    Hinv = torch.cholesky_inverse(L)
    U = torch.linalg.cholesky(Hinv, upper=True)

    codes = torch.zeros(rows, cols, dtype=torch.int64)
    scales = torch.zeros(ngroups, rows, dtype=torch.float64)
    zeros = torch.zeros(ngroups, rows, dtype=torch.int64)
    gidx = torch.zeros(cols, dtype=torch.int64)
    cur = None
    for j in range(cols):
        col = int(perm[j])
        if static:
            g = col // gs
            cur = static_grids[g]
        else:
            g = j // gs
            if j % gs == 0:
                cur = grid(W[:, j:j + gs], maxq, sym)
        scales[g] = cur[0]
        zeros[g] = cur[1].long()
        gidx[col] = g
        w = W[:, j]
        q, deq = quant(w, cur[0], cur[1], maxq)
        codes[:, col] = q.long()
        err = (w - deq) / U[j, j]
        W[:, j:] -= err[:, None] * U[j, j:][None, :]

    deq_w = torch.zeros(rows, cols, dtype=torch.float64)
    for c in range(cols):
        g = gidx[c]
        deq_w[:, c] = (codes[:, c] - zeros[g]).double() * scales[g]

    rtn = torch.zeros(rows, cols, dtype=torch.float64)
    for g in range(ngroups):
        s, z = grid(W0[:, g * gs:(g + 1) * gs], maxq, sym)
        _, rtn[:, g * gs:(g + 1) * gs] = quant(W0[:, g * gs:(g + 1) * gs], s[:, None], z[:, None], maxq)

    codes.numpy().astype(np.int32).tofile(f"{prefix}_codes.i32")
    scales.numpy().astype(np.float32).tofile(f"{prefix}_scales.f32")
    zeros.numpy().astype(np.int32).tofile(f"{prefix}_zeros.i32")
    gidx.numpy().astype(np.int32).tofile(f"{prefix}_gidx.i32")
    deq_w.numpy().astype(np.float32).tofile(f"{prefix}_deq.f32")
    rtn.numpy().astype(np.float32).tofile(f"{prefix}_rtn.f32")


if __name__ == "__main__":
    main()
