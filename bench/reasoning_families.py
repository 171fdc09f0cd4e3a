#!/usr/bin/env python3
"""Where the reasoning items are lost, family by family (bench/RESULTS.md, "The main job in minutes", session 33).

For each multiple-choice reasoning item of an eval run's items.jsonl (e.g. a pipeline's mine or dev stage), the
family read off the question's wording (the nano curriculum's templates: src/data/synth_reasoning.cpp), and
counts of: items, right (as eval scored), the answer's first line naming the right option's text, the letter
right although the named text is wrong, answers whose first line is some option's text, and among those the
letter being that named option's own.
Usage: reasoning_families.py ITEMS.jsonl
"""
import collections
import json
import re
import sys


def family(q):
    if q.startswith("If "):
        return "conditional"
    if q.startswith("All ") or q.startswith("No "):
        return "syllogism"
    if "each have" in q:
        return "assignment"
    if " than " in q:
        return "comparison"
    if " before " in q or " after " in q:
        return "ordering"
    return "other"


def main(path):
    counts = collections.defaultdict(collections.Counter)
    for line in open(path):
        r = json.loads(line)
        if r.get("benchmark") != "mmlu":
            continue
        c = counts[family(r["question"])]
        opts = dict(re.findall(r"\n([A-D])\. (.*)", r["prompt"]))
        by_text = {v: k for k, v in opts.items()}
        first = r["output"].strip().split("\n")[0].strip()
        named_right = first == opts.get(r["reference"])
        c["items"] += 1
        c["right"] += bool(r["correct"])
        c["names the right option"] += named_right
        c["right letter, wrong text"] += (not named_right) and bool(r["correct"])
        if first in by_text:
            c["names an option"] += 1
            c["letter is the named option's"] += r.get("extracted") == by_text[first]
    cols = ["items", "right", "names the right option", "right letter, wrong text", "names an option",
            "letter is the named option's"]
    print("| family | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    total = collections.Counter()
    for f in sorted(counts):
        total.update(counts[f])
        print(f"| {f} | " + " | ".join(str(counts[f][k]) for k in cols) + " |")
    print("| all | " + " | ".join(str(total[k]) for k in cols) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
