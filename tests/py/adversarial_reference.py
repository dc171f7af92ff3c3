#!/usr/bin/python3
"""PyTorch reference for tests/reference/test_adversarial_torch.cpp.

What it is: reads a vision model written by safeshrink (one .safetensors file, config in
__metadata__["safeshrink.vision.config"]) with a tiny reader of its own (8-byte header length, JSON
header, raw little-endian F32), rebuilds the CNN/MLP in torch (float64) from
torch.nn.functional, and computes for the request's images: the gradient of mean cross entropy
with respect to the input, one FGSM step, one PGD step from the clean image and one PGD step from
a given random start (noise), the L-inf projection and [0, 1] clipping written as in Madry et al.;
plus torch.fake_quantize_per_tensor_affine (float32) forward and its backward (the STE mask).
What it is not: safeshrink's code; nothing here is imported from the project.
Usage: adversarial_reference.py request.json response.json
(request: {"models": [...], "fake_quant": [...]}, one torch start for the whole test file)
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", (name, info["dtype"])
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[base + start:base + end], dtype="<f4").reshape(info["shape"])
        tensors[name] = torch.tensor(arr.astype(np.float64))
    return tensors, meta


def forward(tensors, cfg, x):
    h = x
    if cfg["arch"] == "cnn":
        for i in range(len(cfg["conv_channels"])):
            h = F.conv2d(h, tensors[f"conv.{i}.weight"], tensors[f"conv.{i}.bias"], stride=1, padding=1)
            h = F.max_pool2d(F.relu(h), 2, 2)
    h = h.reshape(h.shape[0], -1)
    n_fc = len(cfg["hidden"]) + 1
    for i in range(n_fc):
        h = F.linear(h, tensors[f"fc.{i}.weight"], tensors[f"fc.{i}.bias"])
        if i + 1 < n_fc:
            h = F.relu(h)
    return h


def input_grad(tensors, cfg, x, labels):
    x = x.clone().requires_grad_(True)
    loss = F.cross_entropy(forward(tensors, cfg, x), labels)
    (g,) = torch.autograd.grad(loss, x)
    return g


def project(x0, x, eps):
    delta = torch.clamp(x - x0, -eps, eps)
    return torch.clamp(x0 + delta, 0.0, 1.0)


def model_case(req):
    tensors, meta = read_safetensors(req["model"])
    cfg = json.loads(meta["safeshrink.vision.config"])
    shape = [req["n"], cfg["channels"], cfg["height"], cfg["width"]]
    x0 = torch.tensor(req["x"], dtype=torch.float64).reshape(shape)
    labels = torch.tensor(req["labels"], dtype=torch.long)
    noise = torch.tensor(req["noise"], dtype=torch.float64).reshape(shape)
    eps, step = req["eps"], req["step"]
    g0 = input_grad(tensors, cfg, x0, labels)
    fgsm = torch.clamp(x0 + eps * torch.sign(g0), 0.0, 1.0)
    pgd_plain = project(x0, x0 + step * torch.sign(g0), eps)
    start = project(x0, x0 + noise, eps)
    g1 = input_grad(tensors, cfg, start, labels)
    pgd_noise = project(x0, start + step * torch.sign(g1), eps)
    return {
        "grad_clean": g0.flatten().tolist(), "grad_start": g1.flatten().tolist(),
        "fgsm": fgsm.flatten().tolist(), "pgd_plain": pgd_plain.flatten().tolist(),
        "pgd_noise": pgd_noise.flatten().tolist(), "start": start.flatten().tolist(),
    }


def fake_quant_case(fq):
    v = torch.tensor(fq["x"], dtype=torch.float32, requires_grad=True)
    y = torch.fake_quantize_per_tensor_affine(v, fq["scale"], fq["zero_point"], fq["qmin"], fq["qmax"])
    r = torch.tensor(fq["r"], dtype=torch.float32)
    (gv,) = torch.autograd.grad((y * r).sum(), v)
    return {"out": y.detach().tolist(), "grad": gv.tolist()}


def main():
    req = json.load(open(sys.argv[1]))
    out = {"models": [model_case(m) for m in req.get("models", [])],
           "fake_quant": [fake_quant_case(f) for f in req.get("fake_quant", [])]}
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
