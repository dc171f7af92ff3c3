#!/usr/bin/env python3
"""Independent references for our gzip/DEFLATE decoder and IDX loader (src/formats/gzip.cpp,
src/model/vision/idx.cpp), made by Python's own zlib, gzip and struct.

  gzip_reference.py cases OUTDIR
      Writes test inputs to OUTDIR and prints a JSON manifest on stdout: a list of
      {"input": file, "expect": file, "kind": "raw"|"gzip", "consumed": n (raw only), "what": ...}.
      Raw DEFLATE streams are followed by 8 junk bytes, so "consumed" (the stream's own length)
      is checked too. Data: empty, one byte, random, text-like (and 5000 bytes of it), runs and short periods (overlapping
      matches), a 32 KiB chunk repeated (the farthest distance), all byte values; zlib levels 0, 1,
      6, 9 and the strategies FIXED, HUFFMAN_ONLY and RLE; gzip with FNAME, with hand-written
      FEXTRA+FNAME+FCOMMENT+FHCRC headers, and multi-member files.

  gzip_reference.py idx IMAGES LABELS I,J,...
      Reads an IDX image/label pair (gzipped or not) with gzip+struct and prints JSON: n, rows,
      cols, label_counts, pixel_sum (sum of every pixel byte), weighted_sum (sum of (k+1)*byte over
      the flat pixel bytes, mod 2^64), and for each index I its label and its pixel bytes.

Not here: anything our C++ produced (this script never reads our output).
To add a case: one more entry in DATASETS or in the gzip variants below.
"""
import gzip
import json
import os
import random
import struct
import sys
import zlib


def datasets():
    rng = random.Random(20261126)
    words = ["the", "model", "quantized", "weights", "safety", "refusal", "a", "of", "to", "backdoor",
             "trigger", "image", "pixel", "compressed", "INT4", "\n", "  ", "0.125", "layer", "prune"]
    text = " ".join(rng.choice(words) for _ in range(60000)).encode()
    runs = bytearray()
    for _ in range(400):
        kind = rng.randrange(3)
        if kind == 0:
            runs += bytes([rng.randrange(256)]) * rng.randrange(1, 700)        # distance 1
        elif kind == 1:
            period = bytes(rng.randrange(256) for _ in range(rng.randrange(2, 8)))
            runs += period * rng.randrange(1, 120)                                # distances 2..7
        else:
            runs += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
    chunk = rng.randbytes(32768)
    far = chunk + chunk + chunk[:1000]                                            # distance 32768
    return {
        "empty": b"",
        "one": b"a",
        "random": rng.randbytes(100_000),
        "text": text,
        "small": text[:5000],
        "runs": bytes(runs),
        "far": far,
        "bytes": bytes(range(256)) * 300,
    }


def raw_deflate(data, level, strategy=zlib.Z_DEFAULT_STRATEGY):
    c = zlib.compressobj(level, zlib.DEFLATED, -15, 9, strategy)
    return c.compress(data) + c.flush()


def gzip_all_flags(data):
    """A member with FEXTRA, FNAME, FCOMMENT and FHCRC, built with struct (Python's gzip writes
    only FNAME)."""
    flags = 0x02 | 0x04 | 0x08 | 0x10
    head = struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, flags, 1700000000, 2, 3)
    extra = b"SS" + struct.pack("<H", 5) + b"hello"
    head += struct.pack("<H", len(extra)) + extra
    head += b"images.idx\x00" + b"a comment, with bytes \xe9\x00"
    head += struct.pack("<H", zlib.crc32(head) & 0xFFFF)
    tail = struct.pack("<II", zlib.crc32(data) & 0xFFFFFFFF, len(data) & 0xFFFFFFFF)
    return head + raw_deflate(data, 6) + tail


def gzip_with_name(data, level):
    import io
    buf = io.BytesIO()
    with gzip.GzipFile(filename="data.bin", mode="wb", compresslevel=level, fileobj=buf, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def cases(outdir):
    os.makedirs(outdir, exist_ok=True)
    manifest = []

    def put(name, content):
        path = os.path.join(outdir, name)
        with open(path, "wb") as f:
            f.write(content)
        return path

    junk = b"JUNK\x00\xff\x1f\x8b"
    for name, data in datasets().items():
        expect = put(name + ".bin", data)
        variants = [("L%d" % lv, raw_deflate(data, lv)) for lv in (0, 1, 6, 9)]
        variants += [("fixed", raw_deflate(data, 6, zlib.Z_FIXED)),
                     ("huffman_only", raw_deflate(data, 6, zlib.Z_HUFFMAN_ONLY)),
                     ("rle", raw_deflate(data, 9, zlib.Z_RLE))]
        for tag, stream in variants:
            manifest.append({"input": put("%s.%s.deflate" % (name, tag), stream + junk), "expect": expect,
                             "kind": "raw", "consumed": len(stream), "what": "%s %s" % (name, tag)})
        gz_variants = [("gz9", gzip.compress(data, 9, mtime=0)),
                       ("gz1", gzip.compress(data, 1, mtime=0)),
                       ("fname", gzip_with_name(data, 6)),
                       ("allflags", gzip_all_flags(data))]
        thirds = [data[: len(data) // 3], data[len(data) // 3: 2 * len(data) // 3], data[2 * len(data) // 3:]]
        gz_variants.append(("multi", b"".join(gzip.compress(t, lv, mtime=0) for t, lv in zip(thirds, (0, 6, 9)))))
        gz_variants.append(("padded", gzip.compress(data, 6, mtime=0) + b"\x00" * 7))
        for tag, content in gz_variants:
            # Python's own decoder must agree before the file becomes a reference.
            assert gzip.decompress(content) == data
            manifest.append({"input": put("%s.%s.gz" % (name, tag), content), "expect": expect, "kind": "gzip",
                             "what": "%s %s" % (name, tag)})
    json.dump(manifest, sys.stdout)


def idx(images, labels, indices):
    import numpy as np
    def read(path):
        with open(path, "rb") as f:
            raw = f.read()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    ib, lb = read(images), read(labels)
    zero, typ, ndim = struct.unpack(">HBB", ib[:4])
    assert zero == 0 and typ == 8 and ndim == 3
    n, rows, cols = struct.unpack(">III", ib[4:16])
    zero, typ, ndim = struct.unpack(">HBB", lb[:4])
    assert zero == 0 and typ == 8 and ndim == 1
    (nl,) = struct.unpack(">I", lb[4:8])
    assert nl == n and len(ib) == 16 + n * rows * cols and len(lb) == 8 + n
    pix = np.frombuffer(ib, dtype=np.uint8, offset=16)
    lab = np.frombuffer(lb, dtype=np.uint8, offset=8)
    weights = np.arange(1, pix.size + 1, dtype=np.uint64)
    out = {
        "n": n, "rows": rows, "cols": cols,
        "label_counts": np.bincount(lab, minlength=10).tolist(),
        "pixel_sum": int(pix.sum(dtype=np.uint64)),
        "weighted_sum": int((weights * pix.astype(np.uint64)).sum(dtype=np.uint64)),
        "images": {},
    }
    size = rows * cols
    for i in indices:
        out["images"][str(i)] = {"label": int(lab[i]), "pixels": pix[i * size:(i + 1) * size].tolist()}
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "cases":
        cases(sys.argv[2])
    elif len(sys.argv) == 5 and sys.argv[1] == "idx":
        idx(sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4].split(",") if x])
    else:
        sys.exit(__doc__)
