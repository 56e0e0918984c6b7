#!/usr/bin/env python3
"""Turns the benchmark's markdown output into one ratio table (median GFLOP/s).

Usage: python3 Benchmarks/summarize.py OUTPUT.md
"""
import re
import sys

PEERS = ["tributary", "cblas", "cblas Haswell", "cblas detect"]


def medians(text):
    """{(shape, implementation): median GFLOP/s} from '### sgemm SHAPE IMPL' sections."""
    result, current = {}, None
    for line in text.splitlines():
        heading = re.match(r"^### sgemm (.+?) (tributary|cblas Haswell|cblas detect|cblas)$", line)
        if heading:
            current = (heading.group(1), heading.group(2))
            continue
        if current and line.startswith("| GFLOP/s"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            header_p50 = 3  # columns: metric, p0, p25, p50, ...
            result[current] = float(cells[header_p50])
            current = None
    return result


def main():
    text = open(sys.argv[1]).read()
    data = medians(text)
    shapes = list(dict.fromkeys(shape for shape, _ in data))
    print("| shape | Tributary GFLOP/s | raw cblas (same library) | Tributary / cblas | "
          "cblas, OPENBLAS_CORETYPE=Haswell | Tributary / Haswell | cblas, OpenBLAS detection |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape in shapes:
        row = {peer: data.get((shape, peer)) for peer in PEERS}
        ratio = lambda a, b: f"{row[a] / row[b]:.3f}" if row[a] and row[b] else "n/a"
        cell = lambda peer: f"{row[peer]:.0f}" if row[peer] else "n/a"
        print(f"| {shape} | {cell('tributary')} | {cell('cblas')} | {ratio('tributary', 'cblas')} | "
              f"{cell('cblas Haswell')} | {ratio('tributary', 'cblas Haswell')} | {cell('cblas detect')} |")


if __name__ == "__main__":
    main()
