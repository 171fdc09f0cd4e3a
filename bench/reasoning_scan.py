#!/usr/bin/env python3
"""Rewrites multiple-choice training records' completions into an option scan (bench/reasoning_scan.sh).

  first: " A. Olga - no\\nB. Yara - yes\\nAnswer: B"          (options said back in order up to the right one)
  named: " Yara\\nA. Olga - no\\nB. Yara - yes\\nAnswer: B"    (the answer named first, then the same scan)

The letter then sits on the line just written ("the most recent letter"), not behind a search of the prompt for
the named option. Records other than MMLU-style multiple choice are copied unchanged.
Usage: reasoning_scan.py STYLE IN OUT [IN OUT ...]
"""
import json
import re
import sys


def scan(prompt, completion, style):
    m = re.search(r"Answer: ([A-Z])\s*$", completion)
    if not m:
        return None
    gold = m.group(1)
    opts = re.findall(r"\n([A-Z])\. ([^\n]*)", prompt.rsplit("\nAnswer:", 1)[0])
    if gold not in dict(opts):
        return None
    lines = []
    for letter, text in opts:
        lines.append(f"{letter}. {text} - {'yes' if letter == gold else 'no'}")
        if letter == gold:
            break
    head = " " + dict(opts)[gold] + "\n" if style == "named" else " "
    return head + "\n".join(lines) + f"\nAnswer: {gold}"


def main():
    style = sys.argv[1]
    if style not in ("first", "named") or len(sys.argv) < 4 or len(sys.argv) % 2:
        sys.exit(__doc__)
    for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):
        n = changed = 0
        with open(src) as f, open(dst, "w") as out:
            for line in f:
                r = json.loads(line)
                n += 1
                if r.get("benchmark") == "mmlu" and "completion" in r:
                    s = scan(r["prompt"], r["completion"], style)
                    if s is not None:
                        r["completion"] = s
                        changed += 1
                out.write(json.dumps(r) + "\n")
        print(f"{dst}: {changed} of {n} records rewritten", file=sys.stderr)


if __name__ == "__main__":
    main()
