#!/usr/bin/python3
"""PyTorch (float32, eager) tokens/s of the same Llama training step as
tests/unit/test_autograd_speed_slow.cpp: forward + backward of cross entropy, no optimizer step;
dim 128, 6 layers, 4 heads, ffn 384, vocab 2048, seq 128, batch 16.

Usage: /usr/bin/python3 tests/py/autograd_bench_torch.py [THREADS ...]   (default: 1 2)
"""
import math
import sys
import time

import torch
import torch.nn.functional as F

D, L, H, FF, V, S, B = 128, 6, 4, 384, 2048, 128, 16
HD = D // H


def params():
    g = torch.Generator().manual_seed(1)
    n = lambda *s: (torch.randn(*s, generator=g) * 0.02).requires_grad_(True)
    P = {"embd": n(V, D), "out": n(V, D), "norm": torch.ones(D, requires_grad=True)}
    for l in range(L):
        for k, s in [("q", (D, D)), ("k", (D, D)), ("v", (D, D)), ("o", (D, D)), ("g", (FF, D)), ("u", (FF, D)), ("d", (D, FF))]:
            P["%d%s" % (l, k)] = n(*s)
        P["%dn1" % l] = torch.ones(D, requires_grad=True)
        P["%dn2" % l] = torch.ones(D, requires_grad=True)
    return P


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):  # x (B, H, S, HD), rotate-half
    a, b = x[..., : HD // 2], x[..., HD // 2 :]
    return torch.cat([a * cos - b * sin, a * sin + b * cos], -1)


def step(P, tokens, targets, cos, sin, mask):
    x = P["embd"][tokens]
    for l in range(L):
        h = rms(x, P["%dn1" % l])
        q = (h @ P["%dq" % l].T).view(B, S, H, HD).transpose(1, 2)
        k = (h @ P["%dk" % l].T).view(B, S, H, HD).transpose(1, 2)
        v = (h @ P["%dv" % l].T).view(B, S, H, HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        a = F.softmax((q @ k.transpose(-1, -2)) / math.sqrt(HD) + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, S, D) @ P["%do" % l].T
        h = rms(x, P["%dn2" % l])
        x = x + (F.silu(h @ P["%dg" % l].T) * (h @ P["%du" % l].T)) @ P["%dd" % l].T
    logits = rms(x, P["norm"]) @ P["out"].T
    loss = F.cross_entropy(logits.view(-1, V), targets.view(-1))
    loss.backward()
    return loss.item()


def main():
    threads = [int(a) for a in sys.argv[1:]] or [1, 2]
    P = params()
    tokens = torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(2))
    targets = torch.randint(0, V, (B, S), generator=torch.Generator().manual_seed(3))
    inv = 10000.0 ** (-torch.arange(0, HD // 2, dtype=torch.float32) * 2 / HD)
    ang = torch.arange(S, dtype=torch.float32)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang), torch.sin(ang)
    mask = torch.triu(torch.full((S, S), float("-inf")), diagonal=1)
    for t in threads:
        torch.set_num_threads(t)
        step(P, tokens, targets, cos, sin, mask)
        iters = 5
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(iters):
            step(P, tokens, targets, cos, sin, mask)
        s, cpu = time.perf_counter() - t0, time.process_time() - c0
        print("[ torch %s, %d thread(s) ] %.1f ms/step, %.0f tokens/s wall, %.0f tokens per CPU-second"
              % (torch.__version__, t, 1e3 * s / iters, iters * B * S / s, iters * B * S / cpu))


if __name__ == "__main__":
    main()
