"""Independent structure check of an SVG/HTML file written by src/report/svg_chart.cpp.

Parses the file with Python's own XML parser (so malformed markup or an unescaped label fails here)
and prints one line of counts: circles, rects, paths, lines, texts, and every <title> text joined by '|'.
Usage: svg_structure.py FILE
"""
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
counts = {k: 0 for k in ("circle", "rect", "path", "line", "text")}
titles = []
for el in root.iter():
    tag = el.tag.replace(NS, "")
    if tag in counts:
        counts[tag] += 1
    if tag == "title":
        titles.append(el.text or "")
print(" ".join(f"{k}={v}" for k, v in counts.items()))
print("titles=" + "|".join(titles))
