#!/usr/bin/python3
"""PyTorch references for the pruners, for tests only (tests/reference/test_prune_torch.cpp).

Usage: prune_reference.py DIR [DIR ...]   (one torch import for many cases)
DIR/spec.json: {"mode": ..., params..., "tensors": [{"name", "rows", "cols", "file"}, ...]}
with each tensor as raw little-endian float32 (rows x cols, row-major) in DIR/<file>; calibration
inputs as float64 raw files named in the spec. Writes DIR/<name>.mask (uint8, 1 = kept) and, for
sparsegpt, DIR/<name>.out (float64 weights after the update).

Modes:
  global     torch.nn.utils.prune.global_unstructured(params, L1Unstructured, amount)
  magnitude  torch.nn.utils.prune.l1_unstructured(module, "weight", amount) per tensor
  nm         keep the n largest |w| of every m consecutive inputs (torch.topk per group)
  wanda      Sun et al. 2023: |W| * sqrt(sum x^2), stable sort per row, prune int(cols * s)
             (or n:m groups), re-stated from the paper's description
  sparsegpt  Frantar & Alistarh 2023, Algorithm 1 re-stated in float64: dampened H, upper
             Cholesky of H^-1, blocks of B columns, adaptive mask per block (the
             int(rows*B*s) smallest w^2/[H^-1]_jj^2), OBS error spread over later columns
"""
import json
import os
import sys

import torch
import torch.nn.utils.prune as prune


def load(d, t):
    raw = open(os.path.join(d, t["file"]), "rb").read()
    w = torch.frombuffer(bytearray(raw), dtype=torch.float32).clone()
    return w.reshape(t["rows"], t["cols"])


def load_f64(d, file, shape):
    raw = open(os.path.join(d, file), "rb").read()
    return torch.frombuffer(bytearray(raw), dtype=torch.float64).clone().reshape(shape)


def save_mask(d, name, keep):
    open(os.path.join(d, name + ".mask"), "wb").write(keep.to(torch.uint8).contiguous().numpy().tobytes())


def linear_of(w):
    m = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        m.weight.copy_(w)
    return m


def nm_keep(score, n, m):
    rows, cols = score.shape
    keep = torch.ones(rows, cols, dtype=torch.bool)
    for g in range(0, cols, m):
        drop = torch.topk(score[:, g:g + m], m - n, dim=1, largest=False)[1]
        keep[:, g:g + m].scatter_(1, drop, False)
    return keep


def sparsegpt(W, H, sparsity, n, m, blocksize, percdamp):
    W = W.clone().double()
    H = H.clone().double()
    rows, cols = W.shape
    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    H += percdamp * torch.mean(torch.diag(H)) * torch.eye(cols, dtype=torch.float64)
    Hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(H)), upper=True)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d1 = torch.diag(Hinv1)
        if m == 0:
            tmp = (W1 ** 2 / d1.reshape(1, -1) ** 2).flatten()
            k = int(tmp.numel() * sparsity)
            order = torch.sort(tmp, stable=True)[1]
            keep = torch.ones(tmp.numel(), dtype=torch.bool)
            keep[order[:k]] = False
            keep = keep.reshape(rows, count)
        else:
            keep = torch.ones(rows, count, dtype=torch.bool)
        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if m > 0 and i % m == 0:
                tmp = W1[:, i:i + m] ** 2 / d1[i:i + m].reshape(1, -1) ** 2
                drop = torch.topk(tmp, m - n, dim=1, largest=False)[1]
                keep[:, i:i + m].scatter_(1, drop, False)
            q = w.clone()
            q[~keep[:, i]] = 0
            Q1[:, i] = q
            err = (w - q) / d
            W1[:, i:] -= err.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err
        W[:, i1:i2] = Q1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W


def run_case(d):
    spec = json.load(open(os.path.join(d, "spec.json")))
    mode = spec["mode"]
    ts = spec["tensors"]
    ws = [load(d, t) for t in ts]
    if mode == "global":
        mods = [linear_of(w) for w in ws]
        prune.global_unstructured([(m, "weight") for m in mods], pruning_method=prune.L1Unstructured,
                                  amount=spec["amount"])
        for t, m in zip(ts, mods):
            save_mask(d, t["name"], m.weight_mask != 0)
    elif mode == "magnitude":
        for t, w in zip(ts, ws):
            m = linear_of(w)
            prune.l1_unstructured(m, "weight", amount=spec["amount"])
            save_mask(d, t["name"], m.weight_mask != 0)
    elif mode == "nm":
        for t, w in zip(ts, ws):
            save_mask(d, t["name"], nm_keep(w.abs(), spec["n"], spec["m"]))
    elif mode == "wanda":
        for t, w in zip(ts, ws):
            sum_sq = load_f64(d, t["sum_sq"], (t["cols"],))
            metric = w.double().abs() * torch.sqrt(sum_sq).reshape(1, -1)
            if spec["m"] > 0:
                keep = nm_keep(metric, spec["n"], spec["m"])
            else:
                keep = torch.ones_like(metric, dtype=torch.bool)
                idx = torch.sort(metric, dim=-1, stable=True)[1][:, :int(metric.shape[1] * spec["sparsity"])]
                keep.scatter_(1, idx, False)
            save_mask(d, t["name"], keep)
    elif mode == "sparsegpt":
        for t, w in zip(ts, ws):
            H = load_f64(d, t["xtx"], (t["cols"], t["cols"]))
            out = sparsegpt(w, H, spec["sparsity"], spec["n"], spec["m"], spec["block_size"], spec["damp"])
            save_mask(d, t["name"], out != 0)
            open(os.path.join(d, t["name"] + ".out"), "wb").write(out.contiguous().numpy().tobytes())
    else:
        sys.exit("unknown mode " + mode)
    print("ok", mode, len(ts))


if __name__ == "__main__":
    for case_dir in sys.argv[1:]:
        run_case(case_dir)
