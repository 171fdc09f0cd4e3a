"""Chooses nano loop settings on the dev splits, never on test (bench/device.sh nanoselect).

Each argument is a loop-dev.json written by `cogumi nano loop --eval-split dev`. The rule, stated before
any run: among the configurations whose modifiers cost no other domain more than 5 points on dev, take the
one with the highest mean own-domain gain on dev; if none qualifies, take the one with the smallest worst
loss. Prints a table of every candidate and, last, the index (0-based) of the chosen one."""
import json, sys


def score(path):
    loop = json.load(open(path))
    doms = loop["domains"]
    gains, worst = {}, 0.0
    for m, dm in doms.items():
        if "with_modifier" not in dm:
            continue
        for d, cell in dm["with_modifier"].items():
            delta = 100 * (cell["accuracy"] - doms[d]["base_accuracy"])
            if d == m:
                gains[m] = delta
            else:
                worst = min(worst, delta)
    mean = sum(gains.values()) / max(1, len(gains))
    return gains, worst, mean


rows = [score(p) for p in sys.argv[1:]]
print("| candidate | " + " | ".join(rows[0][0].keys()) + " | mean own gain | worst other change |")
print("|---|" + "---:|" * (len(rows[0][0]) + 2))
for i, (g, w, m) in enumerate(rows):
    print(f"| {i}: {sys.argv[1 + i]} | " + " | ".join(f"{v:+.1f}" for v in g.values()) + f" | {m:+.2f} | {w:+.1f} |")
ok = [i for i, (_, w, _) in enumerate(rows) if w >= -5.0]
best = max(ok, key=lambda i: rows[i][2]) if ok else max(range(len(rows)), key=lambda i: rows[i][1])
print(best)
