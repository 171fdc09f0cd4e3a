#!/usr/bin/env bash
# Confidence calibration and the escalation threshold of the nano system, fit on dev, reported on
# test. Four eval runs of models/nano-system.yaml on the nano curriculum (the same data as
# bench/system_bench.sh): fast mode on dev and test (one greedy answer per item, the router's
# probabilities and token log-probabilities recorded), and the escalation path on the same items
# (`--mode accurate`: the runtime's own accurate mode, the system's 5 samples, vote and
# verification, one line per item with the vote). Then
# `cogumi router calibrate` fits temperature + Platt on dev, picks the threshold on dev by its
# rule, and reports ECE before/after on test with a reliability diagram.
# Usage: bench/calibration_bench.sh [LIMIT]   (items per domain and split, default 0 = all: 200 dev, 300 test)
# Writes: models/nano-calibration.json (+ .report.json), bench/results/calibration/{report.md,reliability.svg}
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
LIMIT="${1:-0}"
T="${BENCH_DIR:-/tmp/cogumi-calibration-bench}"
R=bench/results/calibration
mkdir -p "$T" "$R"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || "$COGUMI" nano data -o "$N" $(python3 bench/curriculum_args.py) >/dev/null  # the shipped base's curriculum
bench() {  # the four domains' SPLIT files
  echo --bench gsm8k=$N/math/$1.jsonl --bench humaneval=$N/code/$1.jsonl \
    --bench mmlu=$N/reasoning/reasoning_$1.csv --bench bfcl=$N/automation/$1.jsonl
}
run() {  # NAME SPLIT [eval flags]
  [ -f "$T/$1/summary.json" ] || "$COGUMI" eval --system models/nano-system.yaml $(bench "$2") \
    -n 96 --parallel 64 --limit "$LIMIT" -o "$T/$1" "${@:3}" >/dev/null 2>&1 || { echo "eval $1 failed" >&2; exit 1; }
}
for s in dev test; do
  run "$s" "$s"
  run "$s-escalated" "$s" --mode accurate
done
"$COGUMI" router calibrate --system models/nano-system.yaml \
  --dev "$T/dev" --dev-escalated "$T/dev-escalated" --test "$T/test" --test-escalated "$T/test-escalated" \
  -o models/nano-calibration.json --svg "$R/reliability.svg" --markdown "$R/report.md"
