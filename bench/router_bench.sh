#!/usr/bin/env bash
# The router on the nano domains and on real benchmark text: held-out accuracy, confusion
# matrix, latency (features + classifier, one query at a time, one thread).
# Usage: bench/router_bench.sh   (builds what it needs; markdown on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI=$(scripts/build.sh | tail -n 1)
T="${BENCH_DIR:-/tmp/cogumi-router-bench}"
mkdir -p "$T"
N="$T/nano-data"
# The main job's curriculum (scripts/run.sh).
[ -f "$N/manifest.json" ] || "$COGUMI" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
nano() {  # nano SPLIT: the four nano domains' files of a split
  local csv=reasoning_$1.csv
  echo --data math=gsm8k:$N/math/$1.jsonl --data code=humaneval:$N/code/$1.jsonl \
    --data reasoning=mmlu:$N/reasoning/$csv --data automation=bfcl:$N/automation/$1.jsonl
}
echo "## Nano domains: trained on 3,000 training queries per domain, tested on the 300 test queries per domain"
"$COGUMI" router train -o "$T/nano-router.json" --holdout 0 --limit 3000 $(nano train) | head -1
"$COGUMI" router eval "$T/nano-router.json" --holdout 0 $(nano test)
echo
echo "## Real benchmark text: GSM8K train, HumanEval, MMLU dev, nano BFCL; 20% of queries held out by text hash"
REAL="--data math=gsm8k:datasets/gsm8k/train.jsonl --data code=humaneval:datasets/humaneval/HumanEval.jsonl.gz
  --data reasoning=mmlu:datasets/mmlu/dev --data automation=bfcl:$N/automation/train.jsonl"
"$COGUMI" router train -o "$T/real-router.json" --holdout 0.2 --limit 3000 $REAL
echo
echo "## The same router on MMLU test (14,042 questions, all 57 subjects; never seen in training) beside GSM8K test"
"$COGUMI" router eval "$T/real-router.json" --holdout 0 --data math=gsm8k:datasets/gsm8k/test.jsonl \
  --data reasoning=mmlu:datasets/mmlu/test
