#!/usr/bin/env bash
# Few-shot retrieval on the nano system (issue 11, plan 7B).
#  1. latency: exact search vs hnswlib at 1K/10K/100K examples, recall@3 (cogumi-bench-fewshot)
#  2. neighbours: the share of the 3 nearest from the query's own curriculum template, hashed
#     n-gram embeddings vs the nano base's embeddings (dev queries, train bank)
#  3. accuracy: the shipped nano system with k retrieved demonstrations (bank: each domain's
#     training split, asked as eval asks) against the same system without, per domain. k is chosen
#     per domain on the dev split (0 = off when no k beats it); the test split is run with k=0 and
#     with each domain's best k > 0 on dev, so the table shows what few-shot does either way.
# Usage: bench/fewshot_bench.sh [LIMIT] [KS]   (items per domain and split, default 0 = all: 200 dev,
# 300 test; k values tried on dev, default "1 2 3 5"). Markdown on stdout. Each heavy step runs under
# $LOCK (default: flock /tmp/cogumi-cpu.lock; LOCK= to run without).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN="${BIN:-build/bin}"
LIMIT="${1:-0}"
KS="${2:-1 2 3 5}"
LOCK="${LOCK:-flock /tmp/cogumi-cpu.lock}"  # shared 2-core machines: one heavy job at a time
T="${BENCH_DIR:-/tmp/cogumi-fewshot-bench}"
mkdir -p "$T"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || $LOCK "$BIN/cogumi" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
# The bank: every domain's training split (the modifiers' own data), asked as eval asks.
B="$T/bank/train.jsonl"
[ -f "$B" ] || $LOCK "$BIN/cogumi" fewshot build -o "$B" --data math=$N/mix/math.jsonl --data code=$N/mix/code.jsonl \
  --data reasoning=$N/mix/reasoning.jsonl --data automation=$N/mix/automation.jsonl >&2

echo "## latency (hashed embeddings, dim 256)"
echo
if [ ! -f "$T/all.jsonl" ]; then  # 100K distinct training prompts: seed 1's splits plus five more seeds
  for s in 2 3 4 5 6; do
    [ -f "$T/big$s/manifest.json" ] || $LOCK "$BIN/cogumi" nano data -o "$T/big$s" --seed $s --n-train 5000 --n-dev 10 --n-test 10 --difficulty 2,math=1 >/dev/null
  done
  cat $N/mix/{math,code,reasoning,automation}.jsonl $T/big*/mix/{math,code,reasoning,automation}.jsonl | python3 -c '
import json, sys, random
seen, out = set(), []
for l in sys.stdin:
    p = json.loads(l)["prompt"]
    if p not in seen: seen.add(p); out.append(l)
random.Random(1).shuffle(out); sys.stdout.writelines(out[:100000])' >"$T/all.jsonl"
fi
[ -f "$T/latency.md" ] || $LOCK "$BIN/cogumi-bench-fewshot" --bank "$T/all.jsonl" --queries $N/mix/dev/{math,code,reasoning,automation}.jsonl \
  --n-queries 125 --sizes 1000,10000,100000 >"$T/latency.md"
cat "$T/latency.md"
echo
echo "## neighbours: hashed vs model embeddings (bank: 2,000 training prompts per domain; 200 dev queries per domain)"
echo
python3 - "$N" "$T/bank2k.jsonl" <<'PY'
import json, sys
n, out = sys.argv[1], sys.argv[2]
with open(out, "w") as f:
    for d in ["math", "code", "reasoning", "automation"]:
        for i, l in enumerate(open(f"{n}/mix/{d}.jsonl")):
            if i >= 2000: break
            j = json.loads(l); f.write(json.dumps({"domain": d, "id": j["source_id"], "prompt": j["prompt"]}) + "\n")
PY
[ -f "$T/neighbours.md" ] || $LOCK "$BIN/cogumi-bench-fewshot" --bank "$T/bank2k.jsonl" --queries $N/mix/dev/{math,code,reasoning,automation}.jsonl \
  --n-queries 200 --templates "$N/templates.jsonl" --model models/nano-base.gguf 2>/dev/null >"$T/neighbours.md"
cat "$T/neighbours.md"
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
  $LOCK "$BIN/cogumi" eval --system "$T/$1.yaml" --bench gsm8k=$N/math/$s.jsonl --bench humaneval=$N/code/$s.jsonl \
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
best_on = {b: max(ks[1:], key=lambda k: (acc[k][b], -k)) for b in acc[0]}
print(json.dumps({"dev": {str(k): acc[k] for k in ks}, "chosen": best, "best_nonzero": best_on}))
PY
# Test: k=0 and each domain's best k > 0 on dev.
for k in $(python3 -c "import json;print(' '.join(sorted({str(v) for v in json.load(open('$T/chosen.json'))['best_nonzero'].values()} | {'0'})))"); do
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
print("| domain (test) | no few-shot | best k > 0 on dev | with few-shot | W/T/L | McNemar p | prompt tokens (mean, without -> with) |")
print("|---|---:|---:|---:|---|---:|---|")
for b, d in dom.items():
    k = c["best_nonzero"][b]; fs = items(k)
    keys = [x for x in base if x[0] == b]
    a0 = sum(base[x][0] for x in keys) / len(keys); a1 = sum(fs[x][0] for x in keys) / len(keys)
    w = sum(fs[x][0] and not base[x][0] for x in keys); l = sum(base[x][0] and not fs[x][0] for x in keys)
    t0 = sum(base[x][1] for x in keys) / len(keys); t1 = sum(fs[x][1] for x in keys) / len(keys)
    print(f"| {d} ({len(keys)}) | {100*a0:.1f}% | {k} | {100*a1:.1f}% | {w}/{len(keys)-w-l}/{l} | {mcnemar(w, l):.2f} | {t0:.0f} -> {t1:.0f} |")
PY
