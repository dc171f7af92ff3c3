#!/usr/bin/python3
"""numpy reference for tensor_deltas (safety circuits), for tests only.

Writes two small safetensors files, base.safetensors and aligned.safetensors (an independent writer
from the spec: u64 header length, JSON header, raw little-endian bytes), with F32 and F16 tensors,
one tensor only in the base, one whose shape differs, one all-zero tensor left unchanged, and
expected.json: {name: ||aligned - base||_F / ||base||_F} computed in float64 by numpy over the
tensors present in both with the same shape (the all-zero unchanged tensor: 0).

Usage: tensor_delta_reference.py OUT_DIR
"""
import json
import os
import struct
import sys

import numpy as np


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, a in tensors.items():
        data = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}[a.dtype],
                        "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    base = {
        "blk.0.attn_q.weight": rng.standard_normal((16, 24)).astype(np.float32),
        "blk.1.ffn_down.weight": rng.standard_normal((24, 40)).astype(np.float16),
        "token_embd.weight": rng.standard_normal((50, 24)).astype(np.float32),
        "blk.0.attn_norm.weight": np.zeros(24, dtype=np.float32),
        "blk.0.attn_k.weight": rng.standard_normal((8, 24)).astype(np.float32),    # only in base
        "blk.0.attn_v.weight": rng.standard_normal((8, 24)).astype(np.float32),    # shape differs
    }
    aligned = {
        "blk.0.attn_q.weight": base["blk.0.attn_q.weight"] + 0.05 * rng.standard_normal((16, 24)).astype(np.float32),
        "blk.1.ffn_down.weight": (base["blk.1.ffn_down.weight"].astype(np.float32)
                                  + 0.3 * rng.standard_normal((24, 40)).astype(np.float32)).astype(np.float16),
        "token_embd.weight": base["token_embd.weight"].copy(),
        "blk.0.attn_norm.weight": np.zeros(24, dtype=np.float32),
        "blk.0.attn_v.weight": rng.standard_normal((12, 24)).astype(np.float32),
    }
    write_safetensors(os.path.join(out, "base.safetensors"), base)
    write_safetensors(os.path.join(out, "aligned.safetensors"), aligned)
    expected = {}
    for name, b in base.items():
        a = aligned.get(name)
        if a is None or a.shape != b.shape:
            continue
        b64, a64 = b.astype(np.float64), a.astype(np.float64)
        nb = np.linalg.norm(b64)
        expected[name] = float(np.linalg.norm(a64 - b64) / nb) if nb > 0 else 0.0
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print("ok", len(expected))


if __name__ == "__main__":
    main()
