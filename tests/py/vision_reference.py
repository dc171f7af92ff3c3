#!/usr/bin/python3
"""PyTorch re-statement of the safeshrink vision classifiers (include/safeshrink/vision.h), for
tests only: the model is built as torch.nn.Sequential (Conv2d 3x3 pad 1 -> ReLU -> MaxPool2d 2 per
conv layer, Flatten, Linear -> ReLU per hidden layer, Linear classifier), its weights are read from
the safetensors file our C++ wrote (a small reader below, no safetensors package needed), and
everything runs in float64.

Usage: vision_reference.py DIR [DIR ...]   (one case per folder; one process saves torch start-ups)
DIR/model.safetensors  our model file (F32; config JSON in __metadata__["safeshrink.vision.config"])
DIR/images.f32, DIR/labels.i32  the batch (n, C, H, W) little-endian float32 / int32
DIR/spec.json  {"params": [names in our order], "optimizer": "adamw"|"sgd", "steps": S, "lr": ..,
                "weight_decay": .., "momentum": ..}
Writes DIR/result.json {"loss": l, "losses": [loss before each step]} and float64 files:
logits.f64 (n, classes), input_grad.f64 (d mean CE / d images), param_grads.f64 (all parameters'
gradients concatenated in our order), updated.f64 (parameters after S optimizer steps on the same
full batch; weight decay only on weights, as a torch param group with weight_decay 0 for biases).
"""
import json
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_safetensors(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", (name, t["dtype"])
        b, e = t["data_offsets"]
        tensors[name] = np.frombuffer(data[base + b:base + e], dtype="<f4").reshape(t["shape"]).astype(np.float64)
    return meta, tensors


def build(cfg):
    layers, names = [], []
    ch = cfg["channels"]
    h, w = cfg["height"], cfg["width"]
    if cfg["arch"] == "cnn":
        for i, oc in enumerate(cfg["conv_channels"]):
            layers += [nn.Conv2d(ch, oc, 3, stride=1, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)]
            names.append((len(layers) - 3, "conv.%d" % i))
            ch, h, w = oc, h // 2, w // 2
    layers.append(nn.Flatten())
    features = ch * h * w
    outs = list(cfg["hidden"]) + [cfg["n_classes"]]
    for i, o in enumerate(outs):
        layers.append(nn.Linear(features, o))
        names.append((len(layers) - 1, "fc.%d" % i))
        if i + 1 < len(outs):
            layers.append(nn.ReLU())
        features = o
    return nn.Sequential(*layers).double(), names


def run(d):
    spec = json.load(open(d + "/spec.json"))
    meta, tensors = read_safetensors(d + "/model.safetensors")
    cfg = json.loads(meta["safeshrink.vision.config"])
    model, names = build(cfg)
    by_name = {}
    with torch.no_grad():
        for idx, prefix in names:
            layer = model[idx]
            layer.weight.copy_(torch.from_numpy(tensors[prefix + ".weight"]))
            layer.bias.copy_(torch.from_numpy(tensors[prefix + ".bias"]))
            by_name[prefix + ".weight"] = layer.weight
            by_name[prefix + ".bias"] = layer.bias
    order = [by_name[n] for n in spec["params"]]
    assert len(order) == len(list(model.parameters()))

    x = np.fromfile(d + "/images.f32", dtype="<f4").astype(np.float64)
    y = torch.from_numpy(np.fromfile(d + "/labels.i32", dtype="<i4").astype(np.int64))
    x = torch.from_numpy(x.reshape(len(y), cfg["channels"], cfg["height"], cfg["width"])).requires_grad_(True)

    logits = model(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    logits.detach().numpy().astype("<f8").tofile(d + "/logits.f64")
    x.grad.numpy().astype("<f8").tofile(d + "/input_grad.f64")
    np.concatenate([p.grad.numpy().ravel() for p in order]).astype("<f8").tofile(d + "/param_grads.f64")

    decay = [p for n, p in zip(spec["params"], order) if n.endswith(".weight")]
    no_decay = [p for n, p in zip(spec["params"], order) if not n.endswith(".weight")]
    groups = [{"params": decay, "weight_decay": spec["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
    if spec["optimizer"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=spec["lr"], betas=(0.9, 0.999), eps=1e-8)
    else:
        opt = torch.optim.SGD(groups, lr=spec["lr"], momentum=spec["momentum"])
    losses = []
    xs = x.detach()
    for _ in range(spec["steps"]):
        opt.zero_grad()
        l = F.cross_entropy(model(xs), y)
        losses.append(l.item())
        l.backward()
        opt.step()
    np.concatenate([p.detach().numpy().ravel() for p in order]).astype("<f8").tofile(d + "/updated.f64")
    json.dump({"loss": loss.item(), "losses": losses}, open(d + "/result.json", "w"))


if __name__ == "__main__":
    torch.set_num_threads(1)
    for folder in sys.argv[1:]:
        run(folder)
