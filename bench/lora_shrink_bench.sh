#!/usr/bin/env bash
# cogumi lora shrink on the shipped nano modifiers (issue 15): each modifier cut to a few ranks (and
# to 90% energy), its size, and its accuracy on its own domain's test split against the original and
# the base, same items, same run (cogumi eval, greedy, LIMIT items per domain).
#   bench/lora_shrink_bench.sh [LIMIT]     (default 100)
# DOMAINS="math code" picks the modifiers; COGUMI=BIN skips the build; COGUMI_LOCK=FILE takes that
# lock (flock) around each CPU-heavy command; BENCH_DIR=DIR keeps the files (default /tmp/cogumi-shrink-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
LIMIT="${1:-100}"
DOMAINS="${DOMAINS:-math code}"
T="${BENCH_DIR:-/tmp/cogumi-shrink-bench}"
L=(); [ -n "${COGUMI_LOCK:-}" ] && L=(flock "$COGUMI_LOCK")
mkdir -p "$T"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || "${L[@]}" "$COGUMI" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
declare -A KIND=([math]=gsm8k [code]=humaneval [reasoning]=mmlu [automation]=bfcl)
declare -A FILE=([math]=math/test.jsonl [code]=code/test.jsonl [reasoning]=reasoning/reasoning_test.csv [automation]=automation/test.jsonl)
acc() { python3 -c 'import json,sys; r=[json.loads(l)["correct"] for l in open(sys.argv[1]+"/items.jsonl")]; print(f"{100*sum(r)/len(r):.1f}% ({sum(r)}/{len(r)})")' "$1"; }
ev() {  # NAME DOMAIN [ADAPTER]
  local out="$T/runs/$1" bench="${KIND[$2]}=$N/${FILE[$2]}"
  [ -f "$out/summary.json" ] || "${L[@]}" "$COGUMI" eval -m models/nano-base.gguf --bench "$bench" -n 96 --parallel 64 \
    --limit "$LIMIT" -o "$out" ${3:+--lora a="$3" --adapter a} >"$out.log" 2>&1 || { echo "eval $1 failed: $out.log" >&2; exit 1; }
  acc "$out"
}
mkdir -p "$T/runs"
echo "| modifier | rank | energy kept (min) | adapter file | accuracy on its domain (test, $LIMIT items) |"
echo "| --- | --- | --- | --- | --- |"
for d in $DOMAINS; do
  echo "| $d | base (no modifier) | | | $(ev base-$d $d) |"
  echo "| $d | 16 (original) | 1.0000 | $(stat -c %s models/nano-$d.gguf) B | $(ev $d-orig $d models/nano-$d.gguf) |"
  for t in "--rank 8" "--rank 4" "--rank 2" "--rank 1" "--energy 0.9" "--energy 0.5"; do
    tag="${t// /}"; out="$T/nano-$d$tag.gguf"
    line=$("${L[@]}" "$COGUMI" lora shrink models/nano-$d.gguf -o "$out" $t)
    ranks=$(sed -E 's/.*rank ([0-9]+\.\.[0-9]+).*/\1/' <<<"$line"); kept=$(sed -E 's/.*energy kept >= ([0-9.]+).*/\1/' <<<"$line")
    echo "| $d | $t ($ranks) | $kept | $(stat -c %s "$out") B | $(ev $d$tag $d "$out") |"
  done
done
