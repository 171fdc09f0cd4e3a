#!/usr/bin/env bash
# Few-shot retrieval on the nano system (issue 11, plan 7B).
#  1. latency: exact search vs hnswlib at 1K/10K/100K examples, recall@3 (cogumi-bench-fewshot)
#  2. neighbours: the share of the 3 nearest from the query's own curriculum template, hashed
#     n-gram embeddings vs the nano base's embeddings (dev queries, train bank)
#  3. accuracy: the shipped nano system with k retrieved demonstrations (bank: each domain's
#     training split, asked as eval asks) against the same system without, per domain. k is chosen
#     per domain on the dev split; the test split is run once, with the chosen k and with k=0.
# Usage: bench/fewshot_bench.sh [LIMIT] [KS]   (items per domain and split, default 100; k values
# tried on dev, default "1 2 3"). Markdown on stdout. Run under the CPU lock on shared machines.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="${BIN:-build/bin}"
LIMIT="${1:-100}"
KS="${2:-1 2 3}"
T="${BENCH_DIR:-/tmp/cogumi-fewshot-bench}"
mkdir -p "$T"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || "$BIN/cogumi" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
# The bank: every domain's training split (the modifiers' own data), asked as eval asks.
B="$T/bank/train.jsonl"
[ -f "$B" ] || "$BIN/cogumi" fewshot build -o "$B" --data math=$N/mix/math.jsonl --data code=$N/mix/code.jsonl \
  --data reasoning=$N/mix/reasoning.jsonl --data automation=$N/mix/automation.jsonl >&2

echo "## latency (hashed embeddings, dim 256)"
echo
if [ ! -f "$T/big/manifest.json" ]; then  # 100K examples: a larger curriculum, train splits only are used
  "$BIN/cogumi" nano data -o "$T/big" --seed 2 --n-train 25000 --n-dev 200 --n-test 10 --difficulty 2,math=1 >/dev/null
  cat "$T/big/mix/math.jsonl" "$T/big/mix/code.jsonl" "$T/big/mix/reasoning.jsonl" "$T/big/mix/automation.jsonl" |
    python3 -c "import json,sys,random; L=sys.stdin.readlines(); random.Random(1).shuffle(L); sys.stdout.writelines(L)" >"$T/big/all.jsonl"
fi
"$BIN/cogumi-bench-fewshot" --bank "$T/big/all.jsonl" --queries $N/mix/dev/{math,code,reasoning,automation}.jsonl \
  --n-queries 125 --sizes 1000,10000,100000
echo
echo "## neighbours: hashed vs model embeddings"
echo
python3 - "$N" "$T/bank3k.jsonl" <<'PY'
import json, sys
n, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    for d in ["math", "code", "reasoning", "automation"]:
        for i, l in enumerate(open(f"{n}/mix/{d}.jsonl")):
            if i >= 3000: break
            j = json.loads(l); f.write(json.dumps({"domain": d, "id": j["source_id"], "prompt": j["prompt"]}) + "\n")
PY
"$BIN/cogumi-bench-fewshot" --bank "$T/bank3k.jsonl" --queries $N/mix/dev/{math,code,reasoning,automation}.jsonl \
  --n-queries 200 --templates "$N/templates.jsonl" --model models/nano-base.gguf
echo

# A copy of the shipped system (paths made absolute) with a fewshot key.
system() {  # system NAME K
  sed -e "s#: nano-#: $REPO/models/nano-#g" -e "s#memory: ../#memory: $REPO/#" models/nano-system.yaml >"$T/$1.yaml"
  [ "$2" = 0 ] || echo "fewshot: {bank: $B, k: $2}" >>"$T/$1.yaml"
}
evalrun() {  # evalrun NAME SPLIT
  local s="$2" r="$T/runs/$1-$2"
  [ -f "$r/summary.json" ] && return
  local mm=$N/reasoning/reasoning_$s.csv
  "$BIN/cogumi" eval --system "$T/$1.yaml" --bench gsm8k=$N/math/$s.jsonl --bench humaneval=$N/code/$s.jsonl \
    --bench mmlu=$mm --bench bfcl=$N/automation/$s.jsonl -n 96 --parallel 32 --limit "$LIMIT" -o "$r" >/dev/null 2>&1 ||
    { echo "eval $1 $2 failed" >&2; exit 1; }
}
system k0 0
evalrun k0 dev
for k in $KS; do system "k$k" "$k"; evalrun "k$k" dev; done
python3 - "$T" "$KS" >"$T/chosen.json" <<'PY'
import json, sys
T, ks = sys.argv[1], [0] + [int(k) for k in sys.argv[2].split()]
acc = {}
for k in ks:
    s = json.load(open(f"{T}/runs/k{k}-dev/summary.json"))
    acc[k] = {b: v["accuracy"] for b, v in s["benchmarks"].items()}
# per benchmark, the k with the best dev accuracy (ties: the smaller k, so no gain -> off)
best = {b: max(ks, key=lambda k: (acc[k][b], -k)) for b in acc[0]}
print(json.dumps({"dev": {str(k): acc[k] for k in ks}, "chosen": best}))
PY
# Test: every k the dev split chose for some domain, and k=0.
for k in $(python3 -c "import json;print(' '.join(sorted({str(v) for v in json.load(open('$T/chosen.json'))['chosen'].values()} | {'0'})))"); do
  system "k$k" "$k"; evalrun "k$k" test
done
python3 - "$T" <<'PY'
import json, sys, math
T = sys.argv[1]
c = json.load(open(f"{T}/chosen.json"))
dom = {"gsm8k": "math", "humaneval": "code", "mmlu": "reasoning", "bfcl": "automation"}
ks = sorted(c["dev"], key=int)
print("| domain (dev) | " + " | ".join(f"k={k}" for k in ks) + " | chosen k |")
print("|---|" + "---:|" * len(ks) + "---:|")
for b, d in dom.items():
    print(f"| {d} | " + " | ".join(f"{100*c['dev'][k][b]:.1f}%" for k in ks) + f" | {c['chosen'][b]} |")
def items(k):
    out = {}
    for l in open(f"{T}/runs/k{k}-test/items.jsonl"):
        j = json.loads(l); out[(j["benchmark"], j["id"])] = (j["correct"], j["n_prompt_tokens"])
    return out
def mcnemar(b, c):
    n = b + c
    if n == 0: return 1.0
    p = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2 ** n
    return min(1.0, 2 * p)
base = items(0)
print()
print("| domain (test) | no few-shot | chosen k | with few-shot | W/T/L | McNemar p | prompt tokens (mean, without -> with) |")
print("|---|---:|---:|---:|---|---:|---|")
for b, d in dom.items():
    k = c["chosen"][b]; fs = items(k)
    keys = [x for x in base if x[0] == b]
    a0 = sum(base[x][0] for x in keys) / len(keys); a1 = sum(fs[x][0] for x in keys) / len(keys)
    w = sum(fs[x][0] and not base[x][0] for x in keys); l = sum(base[x][0] and not fs[x][0] for x in keys)
    t0 = sum(base[x][1] for x in keys) / len(keys); t1 = sum(fs[x][1] for x in keys) / len(keys)
    print(f"| {d} ({len(keys)}) | {100*a0:.1f}% | {k} | {100*a1:.1f}% | {w}/{len(keys)-w-l}/{l} | {mcnemar(w, l):.2f} | {t0:.0f} -> {t1:.0f} |")
PY
