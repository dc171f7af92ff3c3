"""numpy restatement of safeshrink's INTn round-to-nearest grid (IntRtnParams in compress.h),
written from the formulas, not from the C++ code:

  per row, per group of g consecutive columns (g = cols: per channel)
  sym:  s = f16(max|w| / (2^(b-1) - 1)); q = clip(rint(w / s), -2^(b-1), 2^(b-1) - 1); w' = q * s
  asym: lo = min(min w, 0); hi = max(max w, 0); s = f16((hi - lo) / (2^b - 1));
        z = clip(rint(-lo / s), 0, 2^b - 1); q = clip(rint(w / s) + z, 0, 2^b - 1); w' = (q - z) * s
  rint: round half to even (numpy's rint); float32 arithmetic; s == 0 gives zeros; zero is +0.

usage: int_rtn_reference.py IN.f32 ROWS COLS OUT.f32 CASE...
CASE is BITS,GROUP,SYM(0/1),STORAGE(f32/f16); OUT holds w' of every case in order, as float32
(rounded through float16 for f16 storage).
"""
import sys

import numpy as np


def quantize(w, bits, group, sym):
    rows, cols = w.shape
    g = cols if group <= 0 else group
    out = np.zeros_like(w, dtype=np.float32)
    for c0 in range(0, cols, g):
        x = w[:, c0:c0 + g].astype(np.float32)
        if sym:
            qmax = np.float32(2 ** (bits - 1) - 1)
            s = (np.max(np.abs(x), axis=1) / qmax).astype(np.float16).astype(np.float32)
            safe = np.where(s == 0, np.float32(1), s)
            q = np.clip(np.rint(x / safe[:, None]), -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
            y = (q.astype(np.float32) * s[:, None]).astype(np.float32)
        else:
            levels = np.float32(2 ** bits - 1)
            lo = np.minimum(np.min(x, axis=1), np.float32(0))
            hi = np.maximum(np.max(x, axis=1), np.float32(0))
            s = ((hi - lo) / levels).astype(np.float16).astype(np.float32)
            safe = np.where(s == 0, np.float32(1), s)
            z = np.clip(np.rint(-lo / safe), 0, levels)
            q = np.clip(np.rint(x / safe[:, None]) + z[:, None], 0, levels)
            y = ((q - z[:, None]).astype(np.float32) * s[:, None]).astype(np.float32)
        y[s == 0, :] = 0
        out[:, c0:c0 + g] = y + np.float32(0.0)  # a zero code is +0 (rint gives -0 for small negatives)
    return out


def main():
    src, rows, cols, dst = sys.argv[1:5]
    w = np.fromfile(src, dtype="<f4").reshape(int(rows), int(cols))
    outs = []
    for case in sys.argv[5:]:
        bits, group, sym, storage = case.split(",")
        y = quantize(w, int(bits), int(group), sym == "1")
        if storage == "f16":
            y = y.astype(np.float16).astype(np.float32)
        outs.append(y.astype("<f4").ravel())
    np.concatenate(outs).tofile(dst)


if __name__ == "__main__":
    main()
