#!/usr/bin/env bash
# The pipeline's `data:` stages on the nano (issue 16): configs/nano-data.yaml run up to curation
# (`cogumi run --until curate`) against a `cogumi serve` of the nano system on a loopback port:
# the base mined on 600 math training problems, its failures clustered, the first 200 through the
# three-tier cascade (base sampled -> math modifier -> routed system sampled, each answer checked
# against the reference), the kept ones through the judge, dedup + decontamination against the four
# test sets, forward pairs. Prints the cascade's per-tier table, the judge and curation lines.
# Then judge/verifier agreement on every teacher reply (passed and failed alike, so agreement is not
# measured on passing answers only): candidate judges (endpoint, API, rubric) are compared on the
# even-numbered replies (dev) and the best by agreement among those whose scores parse on at least
# half of the replies is reported on the odd-numbered ones (test).
#   flock /tmp/cogumi-cpu.lock bench/data_stage_bench.sh
# Paths: COGUMI (binary), OUT (work directory; finished stages are reused on a rerun, delete OUT for a fresh draw),
# PORT (the server's loopback port, fixed: the teachers' URL is part of the teacher stage's key).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-build/bin/cogumi}"
OUT="${OUT:-/tmp/data-stage-bench}"
PORT="${PORT:-18093}"
[ -x "$COGUMI" ] || { echo "error: no cogumi binary at $COGUMI (build it, or set COGUMI)" >&2; exit 1; }
command -v jq >/dev/null || { echo "error: jq is not installed (apt-get install jq)" >&2; exit 1; }
mkdir -p "$OUT"

sed -e "s#\(nano-[a-z]*\.\(gguf\|json\)\)#$PWD/models/\1#g" -e "s#^memory:.*#memory: $OUT/sessions.db#" \
  models/nano-system.yaml >"$OUT/system.yaml"
"$COGUMI" serve --system "$OUT/system.yaml" --host 127.0.0.1 --port "$PORT" >"$OUT/serve.out" 2>"$OUT/serve.err" &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null' EXIT
for _ in $(seq 600); do grep -qs "listening on" "$OUT/serve.out" && break; sleep 0.1; done
grep -q "listening on http://127.0.0.1:$PORT" "$OUT/serve.out" ||
  { echo "error: the server did not start on port $PORT (busy? set PORT)" >&2; cat "$OUT/serve.err" >&2; exit 1; }
URL="http://127.0.0.1:$PORT/v1"

sed -e "s#127.0.0.1:8080#127.0.0.1:$PORT#g" -e "s#template: prompts/#template: $PWD/configs/prompts/#" \
  -e "s#\.\./models/#$PWD/models/#" -e "s#^work_dir:.*#work_dir: $OUT/work#" configs/nano-data.yaml >"$OUT/nano-data.yaml"
start=$(date +%s.%N)
"$COGUMI" run "$OUT/nano-data.yaml" --until curate -q | grep -E "stages ran|reused" || true
echo "pipeline up to curate: $(echo "$(date +%s.%N) - $start" | bc) s (stages reused on a rerun take none)"
stage() { jq -r --arg s "$1" '.stages[$s].dir' "$OUT/work/run.json"; }
TEACH=$(stage teach.math) JUDGE=$(stage judge.math) CURATE=$(stage curate.math) MINE=$(stage mine)
echo
jq -r '.result.table' "$TEACH/done.json"
jq -r '.result | "judge (pipeline, kept examples only): \(.examples) examples, \(.kept) kept, \(.judged) scored, \(.unparsed) unparsed, \(.checked) decided by the reference check, agreement \(.agree) of \(.judged_and_checked)"' "$JUDGE/done.json"
jq -r '.result | "curation: \(.in) in, \(.kept) kept, exact \(.exact), near \(.near), contaminated \(.contaminated), \(.pairs) training pairs"' "$CURATE/done.json"

# Every reply of every tier with its question and reference (from the mining run), check result kept.
jq -c 'select(.kind != null) | {key: .id, value: {question, reference, kind}}' "$MINE/run/items.jsonl" | jq -s 'from_entries' >"$OUT/items.json"
jq -c --slurpfile it "$OUT/items.json" 'select(.reply != null and .passed != null) |
  ($it[0][.item]) as $q | {instruction: $q.question, output: .reply, kind: $q.kind, reference: $q.reference, item, tier, passed}' \
  "$TEACH/teacher.jsonl" >"$OUT/replies.jsonl"
jq -c 'select(input_line_number % 2 == 1)' "$OUT/replies.jsonl" >"$OUT/dev.jsonl"
jq -c 'select(input_line_number % 2 == 0)' "$OUT/replies.jsonl" >"$OUT/test.jsonl"
echo
echo "replies: $(wc -l <"$OUT/replies.jsonl") ($(jq -s 'map(select(.passed)) | length' "$OUT/replies.jsonl") pass the reference check); dev $(wc -l <"$OUT/dev.jsonl"), test $(wc -l <"$OUT/test.jsonl")"
judge() {  # judge NAME SPLIT ARGS...: one judge over a split; prints its report line
  local name="$1" split="$2"; shift 2
  "$COGUMI" data judge "$OUT/$split.jsonl" -o "$OUT/judge-$name-$split.jsonl" --endpoint "$URL" --threshold 7 \
    --max-tokens 16 --concurrency 8 --quiet "$@" >/dev/null
  jq -r --arg n "$name" --arg s "$split" '"\($s) \($n): \(.examples) replies, \(.judged) scored, \(.unparsed) unparsed, agreement \(.agree) of \(.judged_and_checked)"' \
    "$OUT/judge-$name-$split.report.json"
}
P="$PWD/configs/prompts"
declare -A ARGS=(
  [rubric-chat-reasoning]="--model reasoning --api chat"
  [rubric-chat-routed]="--model nano --api chat"
  [score-completion-base]="--model base --api completions --template $P/judge_score_completion.txt"
)
best="" best_agree=-1
for name in rubric-chat-reasoning rubric-chat-routed score-completion-base; do
  # shellcheck disable=SC2086
  judge "$name" dev ${ARGS[$name]}
  r="$OUT/judge-$name-dev.report.json"
  a=$(jq -r 'if .judged * 2 >= .examples and .judged_and_checked > 0 then .agree / .judged_and_checked else -1 end' "$r")
  if (( $(echo "$a > $best_agree" | bc) )); then best="$name" best_agree="$a"; fi
done
if [ "$best_agree" = "-1" ]; then
  echo "no candidate judge's scores parse on half of the dev replies: none is reported on test"
else
  echo "chosen on dev: $best (agreement $best_agree)"
  # shellcheck disable=SC2086
  judge "$best" test ${ARGS[$best]}
  jq -s '{n: length, judge_pass: map(select(.judge.score != null and .judge.score >= 7)) | length,
          check_pass: map(select(.verifier.passed)) | length,
          both_pass: map(select(.verifier.passed and .judge.score != null and .judge.score >= 7)) | length,
          both_fail: map(select((.verifier.passed | not) and .judge.score != null and .judge.score < 7)) | length}' \
    "$OUT/judge-$best-test.judged.jsonl"
fi
