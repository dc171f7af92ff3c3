#!/usr/bin/python3
"""PyTorch re-statement of one training run of a tiny Llama (AdamW) or a tiny CNN (SGD momentum),
for tests only: same initial weights and batch (from the C++ test), float64, torch.optim.

Usage: autograd_train_step.py DIR [DIR ...]   (one run per folder; one process saves torch start-ups)
DIR/spec.json: {"kind": "llama" | "cnn", "params": [{"name", "shape", "decay"}], "steps", "opt": {...}, ...}
DIR/params.f32: the initial parameters, concatenated in spec order (little-endian float32).
Writes DIR/result.json {"losses": [...]} and DIR/updated.f64 (parameters after the last step).
The Llama forward is written from the HF LlamaForCausalLM structure (RMSNorm, RoPE, GQA causal
attention, SwiGLU MLP), with GGUF parameter names and the adjacent-pair (NORM) or rotate-half (NEOX)
RoPE order the spec names.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, theta, order):
    B, S, H, hd = x.shape
    half = hd // 2
    inv = torch.tensor([np.float32(theta ** (-2.0 * i / hd)) for i in range(half)], dtype=torch.float64)
    ang = torch.arange(S, dtype=torch.float64)[:, None] * inv[None, :]
    c, s = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]
    if order == "NORM":
        a, b = x[..., 0::2], x[..., 1::2]
        return torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(B, S, H, hd)
    a, b = x[..., :half], x[..., half:]
    return torch.cat([a * c - b * s, a * s + b * c], dim=-1)


def llama_loss(P, spec):
    c = spec["config"]
    B, S = spec["batch"], spec["seq"]
    H, KV, hd = c["n_heads"], c["n_kv_heads"], c["head_dim"]
    tokens = torch.tensor(spec["tokens"]).reshape(B, S)
    targets = torch.tensor(spec["targets"])
    x = P["token_embd.weight"][tokens]  # (B, S, d)
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), diagonal=1)
    for l in range(c["n_layers"]):
        p = lambda n: P["blk.%d.%s" % (l, n)]
        h = rms_norm(x, p("attn_norm.weight"), c["rms_eps"])
        q = (h @ p("attn_q.weight").T).reshape(B, S, H, hd)
        k = (h @ p("attn_k.weight").T).reshape(B, S, KV, hd)
        v = (h @ p("attn_v.weight").T).reshape(B, S, KV, hd)
        q, k = rope(q, c["rope_theta"], c["rope_order"]), rope(k, c["rope_theta"], c["rope_order"])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, heads, S, hd)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        att = F.softmax((q @ k.transpose(-1, -2) / math.sqrt(hd)).masked_fill(mask, float("-inf")), -1) @ v
        x = x + att.transpose(1, 2).reshape(B, S, H * hd) @ p("attn_output.weight").T
        h = rms_norm(x, p("ffn_norm.weight"), c["rms_eps"])
        x = x + (F.silu(h @ p("ffn_gate.weight").T) * (h @ p("ffn_up.weight").T)) @ p("ffn_down.weight").T
    out_w = P.get("output.weight", P["token_embd.weight"])
    logits = (rms_norm(x, P["output_norm.weight"], c["rms_eps"]) @ out_w.T).reshape(B * S, -1)
    per = F.cross_entropy(logits, targets, ignore_index=-1, reduction="none")
    w = torch.tensor(spec["sample_weight"], dtype=torch.float64).repeat_interleave(S)
    return (per * w).sum() / (targets != -1).sum()


def cnn_loss(P, spec):
    x = torch.tensor(spec["images"], dtype=torch.float64).reshape(spec["images_shape"])
    y = F.relu(F.conv2d(x, P["conv1.weight"], P["conv1.bias"], stride=1, padding=1))
    y = F.max_pool2d(y, 2, 2)
    y = F.relu(F.conv2d(y, P["conv2.weight"], P["conv2.bias"], stride=1, padding=1))
    y = F.avg_pool2d(y, 2, 2).flatten(1)
    logits = F.linear(y, P["fc.weight"], P["fc.bias"])
    return F.cross_entropy(logits, torch.tensor(spec["labels"]))


def run(d):
    spec = json.load(open(d + "/spec.json"))
    flat = np.fromfile(d + "/params.f32", dtype="<f4").astype(np.float64)
    P, order, off = {}, [], 0
    for p in spec["params"]:
        n = int(np.prod(p["shape"]))
        P[p["name"]] = torch.tensor(flat[off:off + n].reshape(p["shape"])).requires_grad_(True)
        order.append(p)
        off += n
    decay = [P[p["name"]] for p in order if p["decay"]]
    no_decay = [P[p["name"]] for p in order if not p["decay"]]
    o = spec["opt"]
    if spec["kind"] == "llama":
        groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
        loss_fn = llama_loss
    else:
        groups = [{"params": decay, "weight_decay": o["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.SGD(groups, lr=o["lr"], momentum=o["momentum"], nesterov=o["nesterov"])
        loss_fn = cnn_loss
    losses = []
    for _ in range(spec["steps"]):
        opt.zero_grad()
        loss = loss_fn(P, spec)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    json.dump({"losses": losses}, open(d + "/result.json", "w"))
    np.concatenate([P[p["name"]].detach().numpy().reshape(-1) for p in order]).astype("<f8").tofile(d + "/updated.f64")


if __name__ == "__main__":
    for folder in sys.argv[1:]:
        run(folder)
