#!/usr/bin/python3
"""PyTorch reference for the autograd ops of include/safeshrink/autograd.h, for tests only.

Usage: autograd_ops.py CASES.json RESULTS.json
CASES.json: [{"name", "op", "attrs": {...}, "inputs": [{"shape": [...], "data": [...]}], "r": [...]}]
For each case, in float64: out = op(*inputs, **attrs); loss = sum(out * r); backward.
RESULTS.json: [{"name", "out": [...], "grads": [[...] per input]}] (flat, row-major).
The ops are written from the PyTorch functional API (torch.nn.functional), not from our C++.
"""
import json
import math
import sys

import torch
import torch.nn.functional as F


def rope(x, inv_freq, order):
    # x (B, S, H, hd); position of x[b, s] is s; angle = s * inv_freq[i]
    B, S, H, hd = x.shape
    half = hd // 2
    pos = torch.arange(S, dtype=torch.float64)
    ang = pos[:, None] * torch.tensor(inv_freq, dtype=torch.float64)[None, :]  # (S, half)
    c = torch.cos(ang)[None, :, None, :]
    s = torch.sin(ang)[None, :, None, :]
    if order == "NORM":
        a, b = x[..., 0::2], x[..., 1::2]
        ya, yb = a * c - b * s, a * s + b * c
        return torch.stack([ya, yb], dim=-1).reshape(B, S, H, hd)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def attention(q, k, v):
    H, KV = q.shape[2], k.shape[2]
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    kh = kh.repeat_interleave(H // KV, dim=1)
    vh = vh.repeat_interleave(H // KV, dim=1)
    S, hd = q.shape[1], q.shape[3]
    scores = qh @ kh.transpose(-1, -2) / math.sqrt(hd)
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
    probs = F.softmax(scores.masked_fill(mask, float("-inf")), -1)
    return (probs @ vh).transpose(1, 2)


def row_weights(a, n):
    w = a.get("weights") or [1.0] * n
    return torch.tensor(w, dtype=torch.float64)


def cross_entropy(z, a):
    t = torch.tensor(a["targets"])
    per = F.cross_entropy(z, t, ignore_index=-1, reduction="none")
    count = (t != -1).sum()
    return ((per * row_weights(a, len(t))).sum() / count).reshape(1)


def kd_loss(z, a):
    t = torch.tensor(a["targets"])
    T, alpha = a["temperature"], a["alpha"]
    teacher = torch.tensor(a["teacher"], dtype=torch.float64).reshape(z.shape)
    keep = t != -1
    w = row_weights(a, len(t))
    if bool(keep.all()) and "weights" not in a:
        # The definition: batchmean KL (divides by the number of rows) times T^2.
        kl = F.kl_div(F.log_softmax(z / T, -1), F.softmax(teacher / T, -1), reduction="batchmean") * T * T
        ce = F.cross_entropy(z, t)
        return (alpha * kl + (1 - alpha) * ce).reshape(1)
    kl_rows = F.kl_div(F.log_softmax(z / T, -1), F.softmax(teacher / T, -1), reduction="none").sum(-1)
    ce_rows = F.cross_entropy(z, t, ignore_index=-1, reduction="none")
    per = (alpha * T * T * kl_rows + (1 - alpha) * ce_rows) * w * keep
    return (per.sum() / keep.sum()).reshape(1)


def run(op, x, a):
    if op == "embedding":
        return F.embedding(torch.tensor(a["ids"]), x[0])
    if op == "linear":
        return F.linear(x[0], x[1], x[2] if len(x) > 2 else None)
    if op == "matmul":
        return x[0] @ x[1]
    if op == "add":
        return x[0] + x[1]
    if op == "mul":
        return x[0] * x[1]
    if op == "scale":
        return x[0] * a["s"]
    if op == "rms_norm":
        return x[0] * torch.rsqrt(x[0].pow(2).mean(-1, keepdim=True) + a["eps"]) * x[1]
    if op == "rope":
        return rope(x[0], a["inv_freq"], a["order"])
    if op == "attention":
        return attention(x[0], x[1], x[2])
    if op == "softmax":
        return F.softmax(x[0], -1)
    if op == "log_softmax":
        return F.log_softmax(x[0], -1)
    if op == "silu":
        return F.silu(x[0])
    if op == "swiglu":
        return F.silu(x[0]) * x[1]
    if op == "relu":
        return F.relu(x[0])
    if op == "gelu":
        return F.gelu(x[0], approximate=a["approximate"])
    if op == "conv2d":
        return F.conv2d(x[0], x[1], x[2] if len(x) > 2 else None, stride=a["stride"], padding=a["pad"])
    if op == "max_pool2d":
        return F.max_pool2d(x[0], a["k"], a["stride"])
    if op == "avg_pool2d":
        return F.avg_pool2d(x[0], a["k"], a["stride"])
    if op == "reshape":
        return x[0].reshape(a["shape"])
    if op == "mse":
        return F.mse_loss(x[0], x[1]).reshape(1)
    if op == "cross_entropy":
        return cross_entropy(x[0], a)
    if op == "kd_loss":
        return kd_loss(x[0], a)
    raise SystemExit("unknown op " + op)


def main():
    cases = json.load(open(sys.argv[1]))
    results = []
    for c in cases:
        xs = [torch.tensor(i["data"], dtype=torch.float64).reshape(i["shape"]).requires_grad_(True) for i in c["inputs"]]
        out = run(c["op"], xs, c.get("attrs") or {})
        r = torch.tensor(c["r"][: out.numel()], dtype=torch.float64).reshape(out.shape)
        (out * r).sum().backward()
        results.append({"name": c["name"], "out": out.detach().reshape(-1).tolist(),
                        "grads": [x.grad.reshape(-1).tolist() if x.grad is not None else [0.0] * x.numel() for x in xs]})
    json.dump(results, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
