#!/usr/bin/env python3
"""Reference for the prompt-set CSV loaders: reads a CSV with Python's csv module (utf-8-sig, so a
BOM is dropped) and prints {"header": [...], "rows": [[...], ...]} as JSON on stdout."""
import csv
import json
import sys

with open(sys.argv[1], newline="", encoding="utf-8-sig") as f:
    rows = list(csv.reader(f))
print(json.dumps({"header": rows[0], "rows": rows[1:]}))
