#!/usr/bin/env python3
"""Turns the GEMM benchmark's markdown output into one table of medians (p50).

Usage: python3 Benchmarks/summarize.py OUTPUT.md
"""
import re
import sys

COLUMNS = [
    ("Tributary GFLOP/s", "Tributary GFLOP/s"),
    ("cblas GFLOP/s", "raw cblas, same library"),
    ("Tributary % of cblas", "Tributary % of cblas"),
    ("cblas Haswell GFLOP/s", "cblas, OPENBLAS_CORETYPE=Haswell"),
    ("Tributary % of cblas Haswell", "Tributary % of Haswell"),
    ("cblas detect GFLOP/s", "cblas, OpenBLAS's detection"),
    ("Tributary % of cblas detect", "Tributary % of detection"),
]


def medians(text):
    """{shape: {metric: p50}} from the '### sgemm SHAPE' sections."""
    result, shape = {}, None
    for line in text.splitlines():
        heading = re.match(r"^### sgemm (.+)$", line)
        if heading:
            shape = heading.group(1).strip()
            result[shape] = {}
            continue
        if shape and line.startswith("| ") and not line.startswith("| Metric"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            name = re.sub(r"\s*\*$", "", cells[0])
            try:
                result[shape][name] = float(cells[3])  # metric, p0, p25, p50, ...
            except (ValueError, IndexError):
                pass
    return result


def main():
    data = medians(open(sys.argv[1]).read())
    print("| shape (m x k x n) | " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|---|" + "---:|" * len(COLUMNS))
    for shape, values in data.items():
        cells = [f"{values[key]:.0f}" if key in values else "n/a" for key, _ in COLUMNS]
        print(f"| {shape} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
