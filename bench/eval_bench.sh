#!/usr/bin/env bash
# GSM8K generation throughput: the eval harness (all items in flight, continuous batching)
# against the same questions sent one at a time (--parallel 1), same model, max tokens fixed
# by ignoring EOS. Usage: bench/eval_bench.sh COGUMI MODEL N_HARNESS N_SEQUENTIAL PARALLEL [extra eval flags]
# One-at-a-time is strictly sequential, so its items/s from a subset holds for the whole set.
set -euo pipefail
COGUMI="$1" MODEL="$2" NH="$3" NS="$4" PAR="$5"
shift 5
EXTRA=("$@")
DATA="${DATA:-datasets}/gsm8k/test.jsonl"
T=$(mktemp -d)
run() {  # run NAME LIMIT PARALLEL
  "$COGUMI" eval -m "$MODEL" --bench gsm8k="$DATA" --limit "$2" --parallel "$3" -n "${MAXTOK:-256}" --ignore-eos \
    -o "$T/$1" --json "${EXTRA[@]+"${EXTRA[@]}"}" >"$T/$1.json" 2>/dev/null
  python3 - "$T/$1.json" "$1" "$3" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["run"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {s['items_this_run']} | {s['seconds']:.1f} | {s['items_per_s']:.2f} | {s['gen_tokens_per_s']:.0f} |")
PY
}
echo "| mode | parallel | items | seconds | items/s | generated tokens/s |"
echo "|---|---:|---:|---:|---:|---:|"
run harness "$NH" "$PAR"
run one-at-a-time "$NS" 1
rm -rf "$T"
