#!/usr/bin/python3
"""Independent safetensors writer and reader, written from the format description alone (u64
little-endian header length, JSON header {name: {dtype, shape, data_offsets}, "__metadata__"},
then the data buffer) without the `safetensors` package. Used by
tests/reference/test_safetensors_python.cpp as the second opinion on our C++ reader and writer.
Not a library: it trusts its own files and stops at the first disagreement. To cover one more
dtype, add it to DTYPES (torch dtype, safetensors name) and to `random_tensor`.

usage:
  safetensors_interop.py write OUTDIR SEED   writes OUTDIR/py.safetensors and, per tensor, the
                                             values as float64 or int64 (OUTDIR/ref_<i>.bin) with
                                             OUTDIR/manifest.json naming them
  safetensors_interop.py check FILE REFDIR   parses FILE and compares every tensor named in
                                             REFDIR/manifest.json with its reference values
"""
import json
import os
import random
import struct
import sys

import numpy as np
import torch

# safetensors name -> (torch dtype, bytes per element)
DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2),
    "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4),
    "I16": (torch.int16, 2), "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
FLOATS = {"F64", "F32", "F16", "BF16"}


def raw_bytes(t):
    """Little-endian bytes of a tensor, element by element (bf16 through its int16 view)."""
    assert sys.byteorder == "little"
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def values_of(kind, t):
    """The reference values: float64 for float dtypes, int64 otherwise."""
    if kind in FLOATS:
        return t.to(torch.float64).numpy().astype("<f8").tobytes()
    return t.to(torch.int64).numpy().astype("<i8").tobytes()


def random_tensor(gen, kind, shape):
    if kind in FLOATS:
        return (torch.randn(shape, generator=gen, dtype=torch.float64) * 3).to(DTYPES[kind][0])
    if kind == "BOOL":
        return torch.rand(shape, generator=gen) > 0.5
    lo, hi = {"I64": (-2**62, 2**62), "I32": (-2**31, 2**31), "I16": (-2**15, 2**15),
              "I8": (-128, 128), "U8": (0, 256)}[kind]
    return torch.randint(lo, hi, shape, generator=gen, dtype=torch.int64).to(DTYPES[kind][0])


def write(outdir, seed):
    gen = torch.Generator().manual_seed(seed)
    order = random.Random(seed)
    specs = [("w.f32", "F32", (4, 8)), ("w.f16", "F16", (3, 5)), ("w.bf16", "BF16", (2, 3, 4)),
             ("w.f64", "F64", (6,)), ("w.i64", "I64", (5,)), ("w.i8", "I8", (7,)),
             ("w.bool", "BOOL", (9,)), ("w.i32", "I32", (2, 2)), ("w.i16", "I16", (3,)),
             ("w.u8", "U8", (1, 4)), ("scalar", "F32", ()), ("empty", "F16", (0, 3)),
             ("caf\u00e9 \u2615", "F32", (2,))]
    tensors = [(name, kind, random_tensor(gen, kind, shape)) for name, kind, shape in specs]
    # Data in one shuffled order, header keys in another: readers must use data_offsets.
    data_order = list(range(len(tensors)))
    order.shuffle(data_order)
    offsets, data, pos = {}, bytearray(), 0
    for i in data_order:
        b = raw_bytes(tensors[i][2])
        offsets[i] = (pos, pos + len(b))
        data += b
        pos += len(b)
    header_order = list(range(len(tensors)))
    order.shuffle(header_order)
    header = {"__metadata__": {"format": "pt", "producer": "safetensors_interop.py", "note": "\u00e9\u2615"}}
    for i in header_order:
        name, kind, t = tensors[i]
        header[name] = {"dtype": kind, "shape": list(t.shape), "data_offsets": list(offsets[i])}
    text = json.dumps(header, ensure_ascii=True).encode("utf-8")  # \\u escapes on purpose
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(os.path.join(outdir, "py.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + bytes(data))
    manifest = []
    for i, (name, kind, t) in enumerate(tensors):
        ref = "ref_%d.bin" % i
        with open(os.path.join(outdir, ref), "wb") as f:
            f.write(values_of(kind, t))
        manifest.append({"name": name, "dtype": kind, "shape": list(t.shape), "ref": ref,
                         "ref_kind": "f64" if kind in FLOATS else "i64"})
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump({"tensors": manifest, "metadata": header["__metadata__"]}, f)
    print("wrote %d tensors" % len(tensors))


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise SystemExit("duplicate JSON key")
    return dict(pairs)


def check(path, refdir):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    if (8 + n) % 8 != 0:
        raise SystemExit("header of %d bytes: data does not start at a multiple of 8" % n)
    if blob[8:9] != b"{":
        raise SystemExit("header does not start with '{'")
    header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    spans = sorted((v["data_offsets"][0], v["data_offsets"][1], k) for k, v in header.items())
    cursor = 0
    for begin, end, name in spans:
        if begin != cursor:
            raise SystemExit("tensor %r starts at %d, expected %d" % (name, begin, cursor))
        cursor = end
    if cursor != len(data):
        raise SystemExit("data buffer of %d bytes, tensors cover %d" % (len(data), cursor))
    with open(os.path.join(refdir, "manifest.json")) as f:
        manifest = json.load(f)
    for key, value in manifest.get("metadata", {}).items():
        if meta.get(key) != value:
            raise SystemExit("__metadata__[%r] = %r, expected %r" % (key, meta.get(key), value))
    for entry in manifest["tensors"]:
        name = entry["name"]
        info = header[name]
        begin, end = info["data_offsets"]
        raw = data[begin:end]
        with open(os.path.join(refdir, entry["ref"]), "rb") as f:
            ref = f.read()
        if entry["ref_kind"] == "bytes":  # a block-quantized tensor stored as U8 + our metadata keys
            if info["dtype"] != "U8" or meta.get("safeshrink.dtype." + name) != entry["dtype"] or \
                    json.loads(meta.get("safeshrink.shape." + name, "null")) != entry["shape"]:
                raise SystemExit("%r: dtype %s, metadata %r / %r" % (name, info["dtype"],
                                 meta.get("safeshrink.dtype." + name), meta.get("safeshrink.shape." + name)))
            if raw != ref:
                raise SystemExit("%r: stored bytes differ" % name)
            continue
        if info["dtype"] != entry["dtype"] or info["shape"] != entry["shape"]:
            raise SystemExit("%r: %s %r, expected %s %r" % (name, info["dtype"], info["shape"],
                                                           entry["dtype"], entry["shape"]))
        torch_dtype, size = DTYPES[info["dtype"]]
        count = int(np.prod(info["shape"], dtype=np.int64))
        if len(raw) != count * size:
            raise SystemExit("%r: %d bytes for %d elements" % (name, len(raw), count))
        t = torch.frombuffer(bytearray(raw), dtype=torch_dtype) if raw else torch.zeros(0, dtype=torch_dtype)
        got = values_of(info["dtype"], t)
        if got != ref:
            want = np.frombuffer(ref, dtype="<f8" if entry["ref_kind"] == "f64" else "<i8")
            have = np.frombuffer(got, dtype="<f8" if entry["ref_kind"] == "f64" else "<i8")
            bad = int(np.argmax(want != have))
            raise SystemExit("%r: element %d is %r, expected %r" % (name, bad, have[bad], want[bad]))
    print("checked %d tensors" % len(manifest["tensors"]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "write":
        write(sys.argv[2], int(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3])
    else:
        raise SystemExit(__doc__)
