#!/usr/bin/env bash
# Trainer throughput on this machine: nano-shaped model (random init, built-in vocabulary) on the
# nano curriculum's general mix, full-parameter and LoRA r=16 on all seven linear modules.
# Usage: bench/train_bench.sh [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI=$(scripts/build.sh | tail -n 1)
STEPS="${1:-20}"
T="${BENCH_DIR:-/tmp/cogumi-train-bench}"
mkdir -p "$T"
[ -d "$T/nano" ] || "$COGUMI" nano data -o "$T/nano" --n-train 500 --n-dev 20 --n-test 20 >/dev/null
[ -f "$T/nano.gguf" ] || "$COGUMI" model init "$T/nano.gguf" --shape nano --seed 1 >/dev/null
echo "| mode | seq len | batch | steps | loss first -> last | tokens/s |"
echo "|---|---:|---:|---:|---|---:|"
for mode in full lora; do
  extra=(--full); [ $mode = lora ] && extra=(--lora-rank 16 --lora-alpha 32)
  out=$("$COGUMI" train -m "$T/nano.gguf" -d "$T/nano/mix/train.jsonl" -o "$T/$mode.gguf" --seq-len 256 --batch 8 \
    --max-steps "$STEPS" --lr 1e-3 "${extra[@]}" 2>/dev/null | head -1)
  python3 - "$mode" "$out" "$STEPS" <<'PY'
import re, sys
m = re.search(r"loss ([\d.]+) -> ([\d.]+), (\d+) tokens/s", sys.argv[2])
print(f"| {sys.argv[1]} | 256 | 8 | {sys.argv[3]} | {m.group(1)} -> {m.group(2)} | {m.group(3)} |")
PY
done
