#!/usr/bin/python3
"""PyTorch reference for the Llama-family forward pass (HF conventions), for tests only.

Writes a random tiny model as an HF folder (config.json + model.safetensors, written by the small
independent safetensors writer below) and the float64 logits of a few prompts, so that the C++
engine can be checked against a computation we did not write in C++.

Usage: llama_reference.py OUT_DIR CASE   (CASE: gqa | qwen2 | tied | llama3 | mistral)
Outputs in OUT_DIR: config.json, model.safetensors, prompts.json ([[ids...], ...]),
logits_<i>.f64 (raw little-endian float64, shape [len(prompt_i), vocab]).
"""
import json
import math
import os
import struct
import sys

import torch

CASES = {
    # GQA 8/2 heads, untied, plain rope
    "gqa": dict(model_type="llama", hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                num_attention_heads=8, num_key_value_heads=2, vocab_size=97, rope_theta=10000.0,
                rms_norm_eps=1e-5, tie_word_embeddings=False),
    # Qwen2: q/k/v bias, tied embeddings, rope theta 1e6
    "qwen2": dict(model_type="qwen2", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, vocab_size=101, rope_theta=1000000.0,
                  rms_norm_eps=1e-6, tie_word_embeddings=True),
    # MQA and tied embeddings on llama
    "tied": dict(model_type="llama", hidden_size=48, intermediate_size=96, num_hidden_layers=3,
                 num_attention_heads=6, num_key_value_heads=1, vocab_size=64, rope_theta=10000.0,
                 rms_norm_eps=1e-5, tie_word_embeddings=True),
    # llama3 rope scaling
    "llama3": dict(model_type="llama", hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                   num_attention_heads=4, num_key_value_heads=2, vocab_size=128, rope_theta=500000.0,
                   rms_norm_eps=1e-5, tie_word_embeddings=False, max_position_embeddings=131072,
                   rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=8192)),
    # mistral: plain GQA with its own model_type
    "mistral": dict(model_type="mistral", hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                    num_attention_heads=4, num_key_value_heads=1, vocab_size=80, rope_theta=1000000.0,
                    rms_norm_eps=1e-5, tie_word_embeddings=False),
}


def write_safetensors(path, tensors):
    """Independent writer from the safetensors spec: u64 header size, JSON header, raw bytes."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": {torch.float32: "F32"}[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def inv_freq(cfg, head_dim):
    base = cfg["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    rs = cfg.get("rope_scaling")
    if rs and rs.get("rope_type", rs.get("type")) == "llama3":
        factor, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / lo, old / hi
        out = []
        for f in inv.tolist():
            wl = 2 * math.pi / f
            if wl < high_wl:
                out.append(f)
            elif wl > low_wl:
                out.append(f / factor)
            else:
                s = (old / wl - lo) / (hi - lo)
                out.append((1 - s) * f / factor + s * f)
        inv = torch.tensor(out, dtype=torch.float64)
    elif rs and rs.get("rope_type", rs.get("type")) == "linear":
        inv = inv / rs["factor"]
    return inv


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def forward(cfg, w, ids, head_mask=None):
    """Logits (len(ids), vocab) in float64. head_mask: optional (layers, heads) tensor multiplying
    each query head's attention output before o_proj (0 = head ablated)."""
    d, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // nh
    L = cfg["num_hidden_layers"]
    eps = cfg["rms_norm_eps"]
    W = {k: v.double() for k, v in w.items()}
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    n = len(ids)
    pos = torch.arange(n, dtype=torch.float64)
    ang = pos[:, None] * inv_freq(cfg, hd)[None, :]
    emb = torch.cat((ang, ang), dim=-1)
    cos, sin = emb.cos(), emb.sin()

    def norm(v, g):
        return v * torch.rsqrt(v.pow(2).mean(-1, keepdim=True) + eps) * g

    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(L):
        p = f"model.layers.{l}."
        h = norm(x, W[p + "input_layernorm.weight"])
        q = h @ W[p + "self_attn.q_proj.weight"].T
        k = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if p + "self_attn.q_proj.bias" in W:
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        q = q.view(n, nh, hd).transpose(0, 1)
        k = k.view(n, nkv, hd).transpose(0, 1)
        v = v.view(n, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = nh // nkv
        k = k.repeat_interleave(rep, dim=0)
        v = v.repeat_interleave(rep, dim=0)
        att = (q @ k.transpose(1, 2)) / math.sqrt(hd) + mask
        att = torch.softmax(att, dim=-1)
        o = att @ v  # (heads, n, hd)
        if head_mask is not None:
            o = o * head_mask[l].to(torch.float64)[:, None, None]
        o = o.transpose(0, 1).reshape(n, nh * hd)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = norm(x, W[p + "post_attention_layernorm.weight"])
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ W[p + "mlp.down_proj.weight"].T
    x = norm(x, W["model.norm.weight"])
    out = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ out.T


def write_case(out_dir, case):
    """Writes the random model of CASE and its reference logits into OUT_DIR; returns (cfg, w, prompts)."""
    cfg = dict(CASES[case])
    cfg.setdefault("max_position_embeddings", 2048)
    if cfg["model_type"] == "qwen2":
        cfg["attention_bias"] = True
    torch.manual_seed(1234 + sorted(CASES).index(case))
    d, ff, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    nh, nkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = d // nh
    w = {"model.embed_tokens.weight": torch.randn(V, d) * 0.5, "model.norm.weight": 1 + 0.1 * torch.randn(d)}
    if not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = torch.randn(V, d) * 0.1
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(d)
        w[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(d)
        w[p + "self_attn.q_proj.weight"] = torch.randn(nh * hd, d) * 0.15
        w[p + "self_attn.k_proj.weight"] = torch.randn(nkv * hd, d) * 0.15
        w[p + "self_attn.v_proj.weight"] = torch.randn(nkv * hd, d) * 0.15
        w[p + "self_attn.o_proj.weight"] = torch.randn(d, nh * hd) * 0.15
        if cfg.get("attention_bias"):
            w[p + "self_attn.q_proj.bias"] = torch.randn(nh * hd) * 0.1
            w[p + "self_attn.k_proj.bias"] = torch.randn(nkv * hd) * 0.1
            w[p + "self_attn.v_proj.bias"] = torch.randn(nkv * hd) * 0.1
        w[p + "mlp.gate_proj.weight"] = torch.randn(ff, d) * 0.15
        w[p + "mlp.up_proj.weight"] = torch.randn(ff, d) * 0.15
        w[p + "mlp.down_proj.weight"] = torch.randn(d, ff) * 0.15
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "config.json"), "w") as f:
        json.dump(dict(cfg, architectures=["X"], torch_dtype="float32", bos_token_id=1, eos_token_id=2), f, indent=1)
    write_safetensors(os.path.join(out_dir, "model.safetensors"), w)
    g = torch.Generator().manual_seed(99)
    # Prompts of different lengths; the longest exceeds some llama3 low-frequency wavelengths' scale.
    prompts = [torch.randint(0, V, (n,), generator=g).tolist() for n in (1, 5, 17, 40)]
    with open(os.path.join(out_dir, "prompts.json"), "w") as f:
        json.dump(prompts, f)
    with torch.no_grad():
        for i, ids in enumerate(prompts):
            forward(cfg, w, ids).numpy().astype("<f8").tofile(os.path.join(out_dir, f"logits_{i}.f64"))
    return cfg, w, prompts


def main():
    write_case(sys.argv[1], sys.argv[2])
    print("ok", sys.argv[2])


if __name__ == "__main__":
    main()
