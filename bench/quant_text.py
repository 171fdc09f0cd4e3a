#!/usr/bin/env python3
"""JSONL records -> plain text, the way `cogumi compress imatrix|report` read .jsonl (every string
value, in order, joined by blank lines), so llama-imatrix (text only) reads the same text.
usage: bench/quant_text.py OUT.txt IN.jsonl [IN.jsonl...]"""
import json, sys

def strings(v, out):
    if isinstance(v, str):
        out.append(v)
    elif isinstance(v, list):
        for x in v: strings(x, out)
    elif isinstance(v, dict):
        for x in v.values(): strings(x, out)

out = []
for p in sys.argv[2:]:
    for line in open(p):
        if line.strip(): strings(json.loads(line), out)
open(sys.argv[1], "w").write("\n\n".join(out))
