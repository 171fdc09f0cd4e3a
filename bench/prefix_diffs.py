#!/usr/bin/env python3
"""The first differing outputs between eval runs of the same items (bench/prefix_cache_bench.sh's run folders).

Usage: bench/prefix_diffs.py ON OFF OFF_P [ON OFF OFF_P ...]: for each triple, OFF against ON (what the prefix
cache changes) and OFF_P against OFF (what the batch composition alone changes): the count, how many of those
differ from the first token on, and the first five pairs. A folder that is missing is named and skipped.
"""
import json
import os
import sys


def items(run):
    with open(os.path.join(run, "items.jsonl")) as f:
        return {(i["benchmark"], i["id"], i.get("sample", 0)): i for i in map(json.loads, f)}


def compare(a_dir, b_dir):
    if not (os.path.isdir(a_dir) and os.path.isdir(b_dir)):
        print(f"## {b_dir} vs {a_dir}: missing")
        return
    a, b = items(a_dir), items(b_dir)
    diff = [k for k in a if k in b and a[k]["output"] != b[k]["output"]]
    first = sum(1 for k in diff if a[k]["output"][:1] != b[k]["output"][:1] or
                not os.path.commonprefix([a[k]["output"], b[k]["output"]]).strip())
    corr = sum(1 for k in diff if a[k].get("correct") != b[k].get("correct"))
    print(f"## {b_dir} vs {a_dir}: {len(diff)} of {len(a)} outputs differ, {first} from their start, "
          f"{corr} change correctness")
    for k in diff[:5]:
        print(f"- {k[1]}: {a[k]['output'][:80]!r} | {b[k]['output'][:80]!r}")


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit("usage: prefix_diffs.py ON OFF OFF_P [ON OFF OFF_P ...]")
    for i in range(0, len(args), 3):
        on, off, off_p = args[i:i + 3]
        compare(on, off)
        compare(off, off_p)


if __name__ == "__main__":
    main()
