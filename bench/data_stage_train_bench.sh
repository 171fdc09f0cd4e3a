#!/usr/bin/env bash
# After bench/data_stage_bench.sh: the math modifier trained with the teacher data (configs/nano-data.yaml)
# against the main job's (configs/nano.yaml, no teacher data, in OUT/work-nano), each up to its math
# modifier's evaluation on the four test sets (same base, curriculum and training settings); then
# `cogumi eval compare` of the two evaluations, item by item.
#   flock /tmp/cogumi-cpu.lock bench/data_stage_train_bench.sh      (~10 minutes on 2 cores)
# OUT: data_stage_bench.sh's work directory (its teacher stages are reused; no server is needed).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-build/bin/cogumi}"
OUT="${OUT:-/tmp/data-stage-bench}"
[ -f "$OUT/nano-data.yaml" ] || { echo "error: run bench/data_stage_bench.sh first (no $OUT/nano-data.yaml)" >&2; exit 1; }
"$COGUMI" run "$OUT/nano-data.yaml" --until eval.math -q | grep -E "stages ran" || true
"$COGUMI" run configs/nano.yaml --dir "$OUT/work-nano" --until eval.math -q | grep -E "stages ran" || true
with=$(jq -r '.stages["eval.math"].dir' "$OUT/work/run.json")/run
without=$(jq -r '.stages["eval.math"].dir' "$OUT/work-nano/run.json")/run
for r in "$without" "$with"; do
  jq -r --arg r "$r" '"\(if ($r | test("work-nano")) then "without teacher data" else "with teacher data   " end): " +
    (.benchmarks | to_entries | map("\(.key) \(.value.correct)/\(.value.n)") | join(", "))' "$r/summary.json"
done
"$COGUMI" eval compare "$without" "$with" | tail -8
jq -r '.result.sources[] | "trainset.math source: \(.what) x\(.weight) \(.path)"' \
  "$(jq -r '.stages["trainset.math"].dir' "$OUT/work/run.json")/done.json"
