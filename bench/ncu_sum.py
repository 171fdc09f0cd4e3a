#!/usr/bin/env python3
"""Sums Nsight Compute's per-kernel times (ncu --csv --metrics gpu__time_duration.sum) by kernel and grid.

Usage: python3 bench/ncu_sum.py NCU.csv [TOP]  -> a Markdown table: total us, launches, us per launch, name
A training step's kernels timed one by one (ncu serialises them), so a kernel that is slow only inside
the step shows here with its grid, where COGUMI_TRAIN_PROFILE's per-node times cannot say which kernel ran.
"""
import csv
import sys
from collections import defaultdict


def main():
    path, top = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 40
    with open(path, newline="") as f:
        lines = [l for l in f if l.startswith('"')]  # ncu's own log lines (==PROF==) are not CSV rows
    rows = csv.DictReader(lines)
    agg = defaultdict(lambda: [0.0, 0])
    total = 0.0
    for r in rows:
        if r.get("Metric Name") != "gpu__time_duration.sum":
            continue
        v = float(r["Metric Value"].replace(",", ""))
        us = v / 1000.0 if r.get("Metric Unit") in ("nsecond", "ns") else v * (1000.0 if r.get("Metric Unit") == "msecond" else 1.0)
        key = (r["Kernel Name"][:110], r.get("Grid Size", ""), r.get("Block Size", ""))
        agg[key][0] += us
        agg[key][1] += 1
        total += us
    print(f"ncu: {sum(n for _, n in agg.values())} launches, {total / 1000.0:.1f} ms of kernel time")
    print("| total us | % | launches | us each | grid | block | kernel |")
    print("|---:|---:|---:|---:|---|---|---|")
    for (name, grid, block), (us, n) in sorted(agg.items(), key=lambda kv: -kv[1][0])[:top]:
        print(f"| {us:.0f} | {100.0 * us / max(total, 1e-9):.1f} | {n} | {us / n:.1f} | {grid} | {block} | `{name}` |")


if __name__ == "__main__":
    main()
