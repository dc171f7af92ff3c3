#!/usr/bin/env python3
"""Independent recount of a backdoor run log (safeshrink backdoor survival / fine-prune).

Reads DIR/run.jsonl with the json module and the Fashion-MNIST test labels straight from the
dataset's t10k-labels-idx1-ubyte.gz with gzip + struct (no safeshrink code), and recounts, for the
LAST record of every variant and of every (fraction, stage) of fine-pruning: clean correct / n over
all test images, and attack hits / n over the test images whose label != target; plus the Wilson
95% interval from its textbook formula. Prints one JSON object:
  {"n_test": N, "target": T, "variants": {name: {...}}, "fine_prune": {"<fraction>/<stage>": {...}}}
Not a reader of safeshrink's summary: the C++ test compares this output with summary.json.
Usage: backdoor_recount.py RUN_DIR [DATASET_DIR]   (DATASET_DIR default: the log's data_dir)
"""
import gzip
import json
import math
import os
import struct
import sys

Z95 = 1.959963984540054  # scipy.stats.norm.ppf(0.975)


def wilson(k, n, z=Z95):
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def read_labels(path, limit):
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic, n = struct.unpack(">II", data[:8])
    if magic != 0x00000801:
        raise SystemExit(f"{path}: magic {magic:#x}, expected 0x801")
    if len(data) != 8 + n:
        raise SystemExit(f"{path}: {len(data) - 8} label bytes, header says {n}")
    labels = list(data[8:8 + n])
    return labels[:limit] if limit else labels


def recount(record, labels, target):
    clean = record["clean_predictions"]
    trig = record["triggered_predictions"]
    if len(clean) != len(labels) or len(trig) != len(labels):
        raise SystemExit(f"{len(clean)}/{len(trig)} predictions for {len(labels)} labels")
    clean_correct = sum(1 for p, y in zip(clean, labels) if p == y)
    asr_n = sum(1 for y in labels if y != target)
    asr_hits = sum(1 for p, y in zip(trig, labels) if y != target and p == target)
    n = len(labels)
    return {"clean_correct": clean_correct, "clean_n": n, "clean_accuracy": clean_correct / n,
            "clean_ci": wilson(clean_correct, n), "asr_hits": asr_hits, "asr_n": asr_n,
            "asr": asr_hits / asr_n if asr_n else 0.0, "asr_ci": wilson(asr_hits, asr_n)}


def main():
    run_dir = sys.argv[1]
    with open(os.path.join(run_dir, "run.jsonl"), "rb") as f:
        text = f.read().decode("utf-8")
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # a torn last line is not a record
    start, variants, fine = None, {}, {}
    for line in lines:
        if not line.strip():
            continue
        e = json.loads(line)
        t = e.get("entry_type")
        if t == "start_run":
            start = e["config"]
        elif t == "backdoor_variant":
            variants[e["variant"]] = e
        elif t == "fine_prune":
            fine["%.6f/%s" % (e["fraction"], e["stage"])] = e
    if start is None:
        raise SystemExit("no start_run in the log")
    data_dir = sys.argv[2] if len(sys.argv) > 2 else start["data_dir"]
    target = int(start["target"])
    labels = read_labels(os.path.join(data_dir, "t10k-labels-idx1-ubyte.gz"), int(start["n_test"]))
    out = {"n_test": len(labels), "target": target,
           "variants": {k: recount(v, labels, target) for k, v in variants.items()},
           "fine_prune": {k: recount(v, labels, target) for k, v in fine.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
