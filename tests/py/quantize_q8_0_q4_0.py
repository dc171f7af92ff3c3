"""Q8_0 and Q4_0 quantization in numpy, written from the GGUF spec formulas (not from our C++).

An independent reference for tests/unit/test_kernels_ref.cpp. All arithmetic is float32, as the
spec's reference quantizer does it:
  Q8_0 (block of 32): d = amax / 127, id = 1/d (0 when d == 0), q = roundf(x * id) with halves
        away from zero; block = fp16(d) little-endian, then 32 int8.
  Q4_0 (block of 32): max = the element of largest |x| (first on ties, sign kept), d = max / -8,
        id = 1/d (0 when d == 0), q = min(15, trunc(x * id + 8.5)); block = fp16(d), then 16 bytes
        holding element j in the low nibble and element j + 16 in the high nibble of byte j.
fp16 rounding is numpy's astype(float16), round-to-nearest-even.

usage: quantize_q8_0_q4_0.py INPUT.f32 OUT_Q8_0 OUT_Q4_0   (INPUT: raw little-endian float32)
"""
import sys

import numpy as np

QK = 32


def inverse_scale(d):
    inv = np.zeros_like(d)
    nz = d != 0
    inv[nz] = np.float32(1.0) / d[nz]
    return inv


def round_half_away(v):
    """roundf: nearest integer, halves away from zero, exact in float32."""
    a = np.abs(v)
    fl = np.floor(a)
    r = fl + (a - fl >= np.float32(0.5)).astype(np.float32)
    return np.copysign(r, v)


def quantize_q8_0(x):
    blocks = x.reshape(-1, QK)
    amax = np.abs(blocks).max(axis=1)
    d = (amax / np.float32(127)).astype(np.float32)
    q = round_half_away(blocks * inverse_scale(d)[:, None]).astype(np.int8)
    out = np.zeros((blocks.shape[0], 2 + QK), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = q.view(np.uint8)
    return out.tobytes()


def quantize_q4_0(x):
    blocks = x.reshape(-1, QK)
    first_max = np.abs(blocks).argmax(axis=1)  # argmax returns the first of equal values
    signed_max = blocks[np.arange(blocks.shape[0]), first_max]
    d = (signed_max / np.float32(-8)).astype(np.float32)
    scaled = blocks * inverse_scale(d)[:, None] + np.float32(8.5)
    q = np.minimum(np.trunc(scaled), 15).astype(np.uint8)
    packed = q[:, : QK // 2] | (q[:, QK // 2:] << 4)
    out = np.zeros((blocks.shape[0], 2 + QK // 2), dtype=np.uint8)
    out[:, :2] = d.astype("<f2").view(np.uint8).reshape(-1, 2)
    out[:, 2:] = packed
    return out.tobytes()


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    x = np.fromfile(sys.argv[1], dtype="<f4")
    if x.size % QK:
        sys.exit("input length %d is not a multiple of %d" % (x.size, QK))
    with np.errstate(divide="ignore", invalid="ignore"):
        q8 = quantize_q8_0(x)
        q4 = quantize_q4_0(x)
    with open(sys.argv[2], "wb") as f:
        f.write(q8)
    with open(sys.argv[3], "wb") as f:
        f.write(q4)


if __name__ == "__main__":
    main()
