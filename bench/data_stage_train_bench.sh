#!/usr/bin/env bash
# After bench/data_stage_bench.sh: the math modifier trained with the teacher data (configs/nano-data.yaml)
# against the main job's (configs/nano.yaml, no teacher data, in OUT/work-nano), each up to its math
# modifier's evaluation on the four test sets (same base, curriculum and training settings); then
# `cogumi eval compare` of the two evaluations, item by item. Then the same pairs in the failures' form
# (data.pairs.form: eval), and the three math modifiers on the math dev split.
#   flock /tmp/cogumi-cpu.lock bench/data_stage_train_bench.sh      (~15 minutes on 2 cores)
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
inst_adapter=$(jq -r '.stages["train.math"].dir' "$OUT/work/run.json")/modifier.gguf
none_adapter=$(jq -r '.stages["train.math"].dir' "$OUT/work-nano/run.json")/modifier.gguf
data=$(jq -r '.stages.data.dir' "$OUT/work/run.json")/data/math

# The same teacher pairs in the mined failures' form (data.pairs.form: eval), trained the same way.
sed -e 's#pairs: {reverse: false}#pairs: {reverse: false, form: eval}#' "$OUT/nano-data.yaml" >"$OUT/nano-data-evalform.yaml"
"$COGUMI" run "$OUT/nano-data-evalform.yaml" --until train.math -q | grep -E "stages ran" || true
eval_adapter=$(jq -r '.stages["train.math"].dir' "$OUT/work/run.json")/modifier.gguf
# The three math modifiers on the math dev split (200 items), the eval-form one on math test too.
for k in none inst eval; do
  a="${k}_adapter"
  "$COGUMI" eval -m models/nano-base.gguf --bench gsm8k="$data/dev.jsonl" --lora math="${!a}" --adapter math -n 96 \
    --parallel 64 -o "$OUT/dev-$k" >/dev/null
  jq -r --arg k "$k" '"dev math, \($k): \(.benchmarks.gsm8k.correct)/\(.benchmarks.gsm8k.n)"' "$OUT/dev-$k/summary.json"
done
"$COGUMI" eval compare "$OUT/dev-none" "$OUT/dev-inst" | grep TOTAL
"$COGUMI" eval compare "$OUT/dev-none" "$OUT/dev-eval" | grep TOTAL
"$COGUMI" eval -m models/nano-base.gguf --bench gsm8k="$data/test.jsonl" --lora math="$eval_adapter" --adapter math -n 96 \
  --parallel 64 -o "$OUT/test-eval" >/dev/null
"$COGUMI" eval compare "$without" "$OUT/test-eval" | grep gsm8k
