#!/usr/bin/python3
"""PyTorch side of bench/vision.cpp: images/s of the same classifiers (default CNN: Conv2d 1->16,
16->32 3x3 pad 1 with ReLU and MaxPool2d 2, Linear 1568->128->10; MLP: Linear 784->128->10) in
eager float32 on random 28x28 images — a training step of batch 64 (forward, cross entropy,
backward, AdamW) and inference in chunks of 128 — with 1 and 2 threads. For benchmarks only.

Usage: vision_bench_torch.py [SECONDS_PER_ROW]   (default 2)
"""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def cnn():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(1568, 128), nn.ReLU(), nn.Linear(128, 10))


def mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


def rate(fn, images_per_call, seconds):
    fn()
    done, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        done += images_per_call
    return done / (time.perf_counter() - t0)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
    torch.manual_seed(0)
    x = torch.rand(2048, 1, 28, 28)
    y = torch.randint(0, 10, (2048,))
    print("%-6s %-34s %8s %12s" % ("model", "work", "threads", "images/s"))
    for name, make in (("cnn", cnn), ("mlp", mlp)):
        model = make()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for threads in (1, 2):
            torch.set_num_threads(threads)
            state = {"i": 0}

            def step():
                i = state["i"]
                state["i"] = (i + 64) % 2048
                opt.zero_grad()
                F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
                opt.step()

            def infer():
                with torch.no_grad():
                    for b in range(0, 2048, 128):
                        model(x[b:b + 128])

            print("%-6s %-34s %8d %12.0f" % (name, "train step (batch 64)", threads, rate(step, 64, seconds)))
            print("%-6s %-34s %8d %12.0f" % (name, "inference FP32", threads, rate(infer, 2048, seconds)))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
