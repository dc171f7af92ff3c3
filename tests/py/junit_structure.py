#!/usr/bin/python3
"""Parses a junit.xml with xml.etree (an XML parser we did not write) and prints its structure as
JSON for tests/cli/test_cli_report.cpp: root tag, suites with their counts, and each test case's
name, classname, time and whether it holds a failure/skipped element. Exits 1 when the file is
not well-formed XML or a testcase lacks name/classname/time."""
import json
import sys
import xml.etree.ElementTree as ET


def main():
    root = ET.parse(sys.argv[1]).getroot()
    out = {"root": root.tag, "tests": root.get("tests"), "failures": root.get("failures"), "suites": []}
    for suite in root.findall("testsuite"):
        s = {"name": suite.get("name"), "tests": int(suite.get("tests")), "failures": int(suite.get("failures")),
             "cases": []}
        for case in suite.findall("testcase"):
            for attr in ("name", "classname", "time"):
                if case.get(attr) is None:
                    print("testcase without " + attr)
                    return 1
            float(case.get("time"))
            s["cases"].append({"name": case.get("name"), "classname": case.get("classname"),
                               "failure": case.find("failure") is not None,
                               "skipped": case.find("skipped") is not None})
        out["suites"].append(s)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
