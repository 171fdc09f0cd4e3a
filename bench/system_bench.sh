#!/usr/bin/env bash
# The routed nano system (issue 11) on the CPU, against the base and each modifier alone on the
# same items (cogumi eval --system SYSTEM --mode fast|accurate vs cogumi eval -m base [--lora X]):
#   bench/system_bench.sh select [LIMIT]   dev splits: base and each modifier; prints the routing
#       rule's choice per domain (bench/system_table.py: the main job's rule, the configuration that
#       answers most of the domain's dev items right) and the choices lines of models/nano-system.yaml
#   bench/system_bench.sh [test] [LIMIT]   test splits: base, each modifier, the system in fast mode,
#       in accurate mode, and in accurate mode without verification; markdown tables on stdout
#   bench/system_bench.sh dev [LIMIT]      the same tables on the dev splits
# LIMIT: items per domain (default 0 = all: 200 dev, 300 test). SYSTEM=FILE picks another system;
# BENCH_DIR=DIR keeps the runs (default /tmp/cogumi-system-bench); COGUMI=BIN skips the build.
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
WHAT="${1:-test}"
LIMIT="${2:-0}"
SYSTEM="${SYSTEM:-models/nano-system.yaml}"
case "$WHAT" in select | dev) SPLIT=dev ;; test) SPLIT=test ;; *) echo "usage: $0 [select|dev|test] [LIMIT]" >&2; exit 2 ;; esac
T="${BENCH_DIR:-/tmp/cogumi-system-bench}"
mkdir -p "$T"
N="$T/nano-data"
[ -f "$N/manifest.json" ] || "$COGUMI" nano data -o "$N" $(python3 bench/curriculum_args.py) >/dev/null  # the shipped base's curriculum
BENCH=(--bench gsm8k=$N/math/$SPLIT.jsonl --bench humaneval=$N/code/$SPLIT.jsonl
  --bench mmlu=$N/reasoning/reasoning_$SPLIT.csv --bench bfcl=$N/automation/$SPLIT.jsonl -n 96 --parallel 64 --limit "$LIMIT")
R="$T/$SPLIT-$LIMIT"
# Single configurations are reused when already run; the system's runs are always redone (the
# system file may have changed).
# COGUMI_LOCK=FILE: each eval takes this lock (flock), so runs on a shared machine interleave.
run() { ${COGUMI_LOCK:+flock "$COGUMI_LOCK"} "$COGUMI" eval "${@:2}" "${BENCH[@]}" -o "$R/$1" >"$R/$1.log" 2>&1 || { echo "eval $1 failed: $R/$1.log" >&2; exit 1; }; }
mkdir -p "$R"
[ -f "$R/base/summary.json" ] || run base -m models/nano-base.gguf
for d in math code reasoning automation; do
  [ -f "$R/$d/summary.json" ] || run "$d" -m models/nano-base.gguf --lora $d=models/nano-$d.gguf --adapter $d
done
if [ "$WHAT" = select ]; then
  python3 bench/system_table.py select "$R"
  exit 0
fi
run fast --system "$SYSTEM" --mode fast
run accurate --system "$SYSTEM" --mode accurate
run accurate-noverify --system "$SYSTEM" --mode accurate --no-verify
python3 bench/system_table.py table "$R"
