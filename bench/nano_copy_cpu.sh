#!/usr/bin/env bash
# Issue 13's copying curriculum on the CPU (no GPU at hand): a nano base candidate trained with copying and
# lookup items in its mix, against the shipped base, on the dev splits only (the test splits are for the base
# that gets shipped, once chosen).
#   1. the candidate: `cogumi nano base --n-copy N --cpu` with the shipped recipe (seed 1; ~80 minutes on 2 cores)
#   2. both bases on the four dev splits (200 items each) and on a held-out copying probe (a different seed's
#      copying items whose prompts the candidate never trained on; raw prompts, greedy, exact first line)
#   3. the main job's modifier settings on dev for both bases (`cogumi nano loop --eval-split dev`): own-domain
#      gain of each modifier and what it costs the other domains
# Since session 19 the shipped base IS session 18's candidate: to compare against the base before it, set
# SHIP_BASE to it (git show 9047348:models/nano-base.gguf > /tmp/nano-base-s18.gguf).
# Usage: bench/nano_copy_cpu.sh [OUT_DIR] (env: SHIP_BASE models/nano-base.gguf, N_COPY 6000, MODIFIERS_CAND "reasoning,automation,math",
#        MODIFIERS_SHIP "reasoning,automation", STEPS 400). Every step is skipped when its output exists, so a
#        rerun resumes; nothing else should run on the cores meanwhile (ggml's thread pools).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/nano-copy}
N_COPY=${N_COPY:-6000} STEPS=${STEPS:-400}
MOD_C=${MODIFIERS_CAND:-reasoning,automation,math} MOD_S=${MODIFIERS_SHIP:-reasoning,automation}
C=build/bin/cogumi
SHIP_BASE=${SHIP_BASE:-models/nano-base.gguf}
mkdir -p "$OUT"
# the shipped base's curriculum (models/nano-base.json) and the candidate
[ -f "$OUT/ship/data/manifest.json" ] ||
  $C nano data -o "$OUT/ship/data" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
[ -f "$OUT/cand/base.gguf" ] || $C nano base --dir "$OUT/cand" --n-copy "$N_COPY" --cpu >"$OUT/cand.txt" 2>&1
# the probe: seed 7's copying items minus any prompt the candidate trained on
if [ ! -f "$OUT/probe.jsonl" ]; then
  $C nano data -o "$OUT/probe" --seed 7 --n-train 20 --n-dev 5 --n-test 5 --n-mix 5 --n-copy 400 >/dev/null
  python3 - "$OUT" <<'EOF'
import json, sys
out = sys.argv[1]
train = {json.loads(l)["prompt"] for l in open(f"{out}/cand/data/mix/copy.jsonl")}
rows = [json.loads(l) for l in open(f"{out}/probe/mix/copy.jsonl")]
with open(f"{out}/probe.jsonl", "w") as f:
    for i, r in enumerate(x for x in rows if x["prompt"] not in train):
        f.write(json.dumps({"id": str(i), "prompt": r["prompt"], "reference": r["completion"], "template": r["template"]}) + "\n")
EOF
fi
D="$OUT/ship/data"
for b in ship cand; do
  M=$SHIP_BASE; [ $b = cand ] && M="$OUT/cand/base.gguf"
  [ -f "$OUT/dev-$b/summary.json" ] || $C eval -m "$M" --bench gsm8k=$D/math/dev.jsonl --bench humaneval=$D/code/dev.jsonl \
    --bench mmlu=$D/reasoning/reasoning_dev.csv --bench bfcl=$D/automation/dev.jsonl -n 96 --parallel 64 -o "$OUT/dev-$b" >/dev/null 2>&1
  [ -f "$OUT/probe-$b.jsonl" ] || $C generate -m "$M" --prompts "$OUT/probe.jsonl" -n 24 -o "$OUT/probe-$b.jsonl" >/dev/null 2>&1
done
for b in ship cand; do
  python3 - "$OUT" $b <<'EOF'
import collections, json, sys
out, b = sys.argv[1:]
acc = {k: round(100 * v["accuracy"], 1) for k, v in json.load(open(f"{out}/dev-{b}/summary.json"))["benchmarks"].items()}
ref = {r["id"]: r for r in map(json.loads, open(f"{out}/probe.jsonl"))}
ok, n = collections.Counter(), collections.Counter()
for o in map(json.loads, open(f"{out}/probe-{b}.jsonl")):
    r = ref[o["id"]]
    n[r["template"]] += 1
    ok[r["template"]] += o["output"].split("\n")[0].strip() == r["reference"].strip()
print(f"{b}: dev {acc}; copy probe {100 * sum(ok.values()) / sum(n.values()):.1f}% exact",
      {k: f"{ok[k]}/{n[k]}" for k in sorted(n)})
EOF
done
# the main job's modifier settings, on dev
S="--eval-split dev --steps $STEPS --patience 4 --failure-weight 2 --domain-share 0.1 --replay 0.1"
[ -f "$OUT/loop-cand/table-dev.md" ] ||
  $C nano loop --dir "$OUT/loop-cand" --base "$OUT/cand/base.gguf" --data "$OUT/cand/data" $S --modifiers "$MOD_C" >"$OUT/loop-cand.txt" 2>&1
[ -f "$OUT/loop-ship/table-dev.md" ] ||
  $C nano loop --dir "$OUT/loop-ship" --base "$SHIP_BASE" --data "$D" $S --modifiers "$MOD_S" >"$OUT/loop-ship.txt" 2>&1
echo "## candidate (--n-copy $N_COPY), dev"; cat "$OUT/loop-cand/table-dev.md"
echo "## shipped base, dev"; cat "$OUT/loop-ship/table-dev.md"
