#!/usr/bin/env python3
"""The MAML few-shot table from cogumi-bench-maml eval's JSONL (bench/maml.sh).

Per method and k: exact-match accuracy over every query answer of every episode of every held-out
family, a 95% Wilson interval, and against maml the paired wins/losses on the same query items
with an exact McNemar p. `--select` instead prints the method's mean accuracy over k (the dev rule).
"""
import argparse
import collections
import json
import math


def wilson(c, n, z=1.96):
    if n == 0:
        return (0.0, 0.0)
    p = c / n
    d = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / d
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (100 * (mid - half), 100 * (mid + half))


def mcnemar(b, c):
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * p)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl", nargs="+")
    ap.add_argument("--select", action="store_true", help="print 'method mean_accuracy' lines (dev selection)")
    a = ap.parse_args()
    rows = [json.loads(l) for f in a.jsonl for l in open(f) if l.strip()]
    acc = collections.defaultdict(lambda: [0, 0])
    items = {}  # (task, k, episode, method) -> per-item list
    for r in rows:
        key = (r["method"], r["k"])
        acc[key][0] += r["correct"]
        acc[key][1] += r["total"]
        items[(r["task"], r["k"], r["episode"], r["method"])] = r["items"]
    methods = sorted({m for m, _ in acc}, key=lambda m: ["base-0", "retrieval", "multitask-0", "multitask", "maml-0", "maml"].index(m)
                     if m in ["base-0", "retrieval", "multitask-0", "multitask", "maml-0", "maml"] else 99)
    ks = sorted({k for _, k in acc})
    if a.select:
        for m in methods:
            print(m, sum(acc[(m, k)][0] / max(1, acc[(m, k)][1]) for k in ks) / len(ks))
        return
    tasks = sorted({r["task"] for r in rows})
    print(f"held-out families: {', '.join(tasks)}; {len(rows)} episode lines")
    print()
    print("| method | " + " | ".join(f"{k}-shot [95% CI]" for k in ks) + " |")
    print("|---|" + "---:|" * len(ks))
    for m in methods:
        cells = []
        for k in ks:
            c, n = acc[(m, k)]
            lo, hi = wilson(c, n)
            cells.append(f"{100 * c / max(1, n):.1f}% [{lo:.1f}, {hi:.1f}] (n={n})")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print()
    print("maml against each method on the same query items (W/L = items maml got right and the other wrong / the reverse):")
    print()
    print("| vs | " + " | ".join(f"{k}-shot W/L, McNemar p" for k in ks) + " |")
    print("|---|" + "---|" * len(ks))
    for m in methods:
        if m == "maml":
            continue
        cells = []
        for k in ks:
            w = l = 0
            for (t, kk, e, mm), per in items.items():
                if mm != "maml" or kk != k or (t, kk, e, m) not in items:
                    continue
                for x, y in zip(per, items[(t, kk, e, m)]):
                    w += x and not y
                    l += y and not x
            cells.append(f"{w}/{l}, p={mcnemar(w, l):.3g}")
        print(f"| {m} | " + " | ".join(cells) + " |")
    print()
    print("per family, maml vs multitask vs retrieval (all k):")
    for t in tasks:
        parts = []
        for m in methods:
            c = sum(r["correct"] for r in rows if r["task"] == t and r["method"] == m)
            n = sum(r["total"] for r in rows if r["task"] == t and r["method"] == m)
            parts.append(f"{m} {100 * c / max(1, n):.1f}%")
        print(f"- {t}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
