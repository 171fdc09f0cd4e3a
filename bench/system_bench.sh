#!/usr/bin/env bash
# The routed nano system against the base and each modifier alone, on the same test items
# (cogumi eval --system models/nano-system.yaml vs cogumi eval -m base [--lora X]): accuracy per
# domain, and the system's wins/ties/losses with McNemar p against the best single configuration.
# Usage: bench/system_bench.sh [LIMIT]   (items per domain, default all 300; markdown on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
LIMIT="${1:-0}"
T="${BENCH_DIR:-/tmp/cogumi-system-bench}"
mkdir -p "$T"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || "$COGUMI" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
BENCH=(--bench gsm8k=$N/math/test.jsonl --bench humaneval=$N/code/test.jsonl
  --bench mmlu=$N/reasoning/reasoning_test.csv --bench bfcl=$N/automation/test.jsonl -n 96 --parallel 64 --limit "$LIMIT")
run() { [ -f "$T/$1/summary.json" ] || "$COGUMI" eval "${@:2}" "${BENCH[@]}" -o "$T/$1" >/dev/null 2>&1 || { echo "eval $1 failed" >&2; exit 1; }; }
run base -m models/nano-base.gguf
for d in math code reasoning automation; do run "$d" -m models/nano-base.gguf --lora $d=models/nano-$d.gguf --adapter $d; done
run system --system models/nano-system.yaml
python3 - "$T" <<'PY'
import json, sys, math
T = sys.argv[1]
configs = ["base", "math", "code", "reasoning", "automation", "system"]
bench = {"math": "gsm8k", "code": "humaneval", "reasoning": "mmlu", "automation": "bfcl"}
def items(c):
    out = {}
    for l in open(f"{T}/{c}/items.jsonl"):
        j = json.loads(l)
        out[(j["benchmark"], j["id"])] = (j["correct"], j.get("route"))
    return out
runs = {c: items(c) for c in configs}
def mcnemar(b, c):
    n = b + c
    if n == 0: return 1.0
    k = min(b, c)
    p = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * p)
print("| test set | " + " | ".join(("+" + c if c in bench else c) for c in configs) + " | best single | system vs best: W/T/L | McNemar p | routed to own modifier |")
print("|---|" + "---:|" * len(configs) + "---|---|---:|---:|")
for dom, b in bench.items():
    keys = [k for k in runs["base"] if k[0] == b]
    acc = {c: sum(runs[c][k][0] for k in keys) / len(keys) for c in configs}
    best = max((c for c in configs if c != "system"), key=lambda c: acc[c])
    w = sum(runs["system"][k][0] and not runs[best][k][0] for k in keys)
    l = sum(runs[best][k][0] and not runs["system"][k][0] for k in keys)
    own = sum(runs["system"][k][1] == dom for k in keys) / len(keys)
    cells = " | ".join(f"{100*acc[c]:.1f}%" for c in configs)
    print(f"| {dom} ({len(keys)}) | {cells} | {best} | {w}/{len(keys)-w-l}/{l} | {mcnemar(w, l):.2f} | {100*own:.1f}% |")
PY
