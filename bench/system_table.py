#!/usr/bin/env python3
"""Tables of the routed nano system (bench/system_bench.sh).

  system_table.py select DIR   dev runs of base and each modifier: the routing rule's choice per
                               domain, with the dev evidence. The rule is the main job's routes stage
                               (pipeline_detail::choose_routes): the configuration (the base, or the
                               base with any one modifier) that answers most of the domain's dev items
                               right; a tie keeps the domain's own modifier, and among other equals the
                               base comes first, then modifiers in name order
  system_table.py table DIR    test runs: accuracy per domain of base, each modifier, the system in
                               fast and accurate mode (and accurate without verification); the
                               system against the best single configuration and against the base
                               (W/T/L, exact McNemar p); tokens and seconds
"""
import json
import math
import sys

DOMAINS = {"math": "gsm8k", "code": "humaneval", "reasoning": "mmlu", "automation": "bfcl"}
SINGLES = ["base", "math", "code", "reasoning", "automation"]


def items(run):
    out = {}
    for line in open(f"{run}/items.jsonl"):
        j = json.loads(line)
        out[(j["benchmark"], j["id"])] = j
    return out


def mcnemar(b, c):
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def wtl(runs, a, b, keys):
    """b against a: items b got right and a wrong, ties, the reverse; McNemar p."""
    w = sum(runs[b][k]["correct"] and not runs[a][k]["correct"] for k in keys)
    l = sum(runs[a][k]["correct"] and not runs[b][k]["correct"] for k in keys)
    return f"{w}/{len(keys) - w - l}/{l}", mcnemar(w, l)


def acc(runs, c, keys):
    return sum(runs[c][k]["correct"] for k in keys) / len(keys)


def name(c):
    return "+" + c if c in DOMAINS else c


def select(d):
    runs = {c: items(f"{d}/{c}") for c in SINGLES}
    print("| dev set | " + " | ".join(name(c) for c in SINGLES) + " | choice | choice vs base: W/T/L, p |")
    print("|---|" + "---:|" * len(SINGLES) + "---|---|")
    choice = {}
    for dom, bench in DOMAINS.items():
        keys = [k for k in runs["base"] if k[0] == bench]
        a = {c: acc(runs, c, keys) for c in SINGLES}
        best = dom  # the default: the domain's own modifier
        for c in ["base"] + sorted(DOMAINS):
            if a[c] > a[best]:
                best = c
        choice[dom] = best
        t, p = wtl(runs, "base", best, keys)
        cells = " | ".join(f"{100 * a[c]:.1f}%" for c in SINGLES)
        print(f"| {dom} ({len(keys)}) | {cells} | {name(best)} | {t}, {p:.3f} |")
    print()
    print("choices for the system file (a domain answered by the base has no adapter):")
    for dom, c in choice.items():
        adapter = f"adapter: nano-{c}.gguf, " if c != "base" else ""
        print(f"  {dom}: {{{adapter}ask_as: {DOMAINS[dom]}}}")


def table(d):
    systems = ["fast", "accurate", "accurate-noverify"]
    runs = {c: items(f"{d}/{c}") for c in SINGLES + systems}
    summ = {c: json.load(open(f"{d}/{c}/summary.json")) for c in SINGLES + systems}
    cols = SINGLES + systems
    print("| test set | " + " | ".join(name(c) for c in SINGLES) +
          " | system fast | system accurate | accurate, no verification | best single |"
          " fast vs best: W/T/L, p | accurate vs best: W/T/L, p | accurate vs fast: W/T/L, p |")
    print("|---|" + "---:|" * len(cols) + "---|---|---|---|")
    for dom, bench in DOMAINS.items():
        keys = [k for k in runs["base"] if k[0] == bench]
        a = {c: acc(runs, c, keys) for c in cols}
        best = max(SINGLES, key=lambda c: (a[c], c == "base"))
        cells = " | ".join(f"{100 * a[c]:.1f}%" for c in cols)
        cmp = []
        for x, y in [(best, "fast"), (best, "accurate"), ("fast", "accurate")]:
            t, p = wtl(runs, x, y, keys)
            cmp.append(f"{t}, {p:.2f}")
        print(f"| {dom} ({len(keys)}) | {cells} | {name(best)} | " + " | ".join(cmp) + " |")
    print()
    print("Verification's effect (accurate mode with against without it):")
    print()
    print("| test set | verifier | without | with | W/T/L | McNemar p | answers verified |")
    print("|---|---|---:|---:|---|---:|---:|")
    for dom, bench in DOMAINS.items():
        keys = [k for k in runs["base"] if k[0] == bench]
        t, p = wtl(runs, "accurate-noverify", "accurate", keys)
        ver = {runs["accurate"][k].get("verifier", "") for k in keys}
        share = sum(bool(runs["accurate"][k].get("verified")) for k in keys) / len(keys)
        print(f"| {dom} | {', '.join(sorted(v or '-' for v in ver))} | {100 * acc(runs, 'accurate-noverify', keys):.1f}% "
              f"| {100 * acc(runs, 'accurate', keys):.1f}% | {t} | {p:.2f} | {100 * share:.1f}% |")
    print()
    print("Cost: generated tokens per item (all samples) per test set, and the whole run's wall time:")
    print()
    print("| configuration | " + " | ".join(DOMAINS) + " | seconds (all items) |")
    print("|---|" + "---:|" * len(DOMAINS) + "---:|")
    for c in cols:
        per = []
        for bench in DOMAINS.values():
            keys = [k for k in runs[c] if k[0] == bench]
            per.append(f"{sum(runs[c][k]['n_gen_tokens'] for k in keys) / len(keys):.1f}")
        print(f"| {name(c) if c in SINGLES else 'system ' + c} | " + " | ".join(per) +
              f" | {summ[c]['run']['seconds']:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("select", "table"):
        sys.exit(__doc__)
    (select if sys.argv[1] == "select" else table)(sys.argv[2])
