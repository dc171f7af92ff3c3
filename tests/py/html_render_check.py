#!/usr/bin/python3
"""Looks at a screenshot of report.html taken by headless Chromium (PIL) and prints JSON: image size,
the fraction of non-white pixels, and how many pixels carry each chart colour given as #rrggbb
arguments (exact match; the charts use flat fills). Used by tests/cli/test_cli_report.cpp to check
that the inline SVG charts were actually painted, not just present in the DOM."""
import json
import sys

from PIL import Image


def main():
    img = Image.open(sys.argv[1]).convert("RGB")
    wanted = {c: tuple(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in sys.argv[2:]}
    counts = {c: 0 for c in wanted}
    non_white = 0
    for n, rgb in img.getcolors(maxcolors=1 << 24):
        if rgb != (255, 255, 255):
            non_white += n
        for c, want in wanted.items():
            if rgb == want:
                counts[c] += n
    w, h = img.size
    print(json.dumps({"width": w, "height": h, "non_white": non_white / float(w * h), "colors": counts}))


if __name__ == "__main__":
    main()
