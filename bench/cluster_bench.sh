#!/usr/bin/env bash
# Failure clusters of the shipped nano base, scored against the generators' templates (issue 17).
#   bench/cluster_bench.sh data           # the main job's curriculum, with templates.jsonl
#   bench/cluster_bench.sh eval [LIMIT]   # the base on the four test sets (resumable: run it in pieces
#                                         # with a growing LIMIT per benchmark, 300 = all)
#   bench/cluster_bench.sh cluster        # before (today's method) and after, each feature block alone;
#                                         # prints one table row per method from its summary.json
# On 2 shared cores wrap each step in the lock: flock /tmp/cogumi-cpu.lock bench/cluster_bench.sh eval 100
# Paths: COGUMI (binary), DATA (curriculum), RUN (eval run), OUT (cluster outputs).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-build/bin/cogumi}"
DATA="${DATA:-/tmp/nano-data}"
RUN="${RUN:-/tmp/base-test}"
OUT="${OUT:-/tmp/cluster-bench}"
MODEL=models/nano-base.gguf
[ -x "$COGUMI" ] || { echo "error: no cogumi binary at $COGUMI (build it, or set COGUMI)" >&2; exit 1; }
case "${1:-}" in
  data)
    "$COGUMI" nano data -o "$DATA" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1
    ;;
  eval)
    limit="${2:-300}"
    resume=()
    [ -f "$RUN/items.jsonl" ] && resume=(--resume)
    # The command of models/nano-base.json (test_accuracy) and the nano loop's base-test run.
    "$COGUMI" eval -m "$MODEL" --bench gsm8k="$DATA/math/test.jsonl" --bench humaneval="$DATA/code/test.jsonl" \
      --bench mmlu="$DATA/reasoning/reasoning_test.csv" --bench bfcl="$DATA/automation/test.jsonl" \
      -n 96 --parallel 64 --limit "$limit" -o "$RUN" "${resume[@]}"
    ;;
  cluster)
    [ -f "$DATA/templates.jsonl" ] || { echo "error: $DATA/templates.jsonl missing: run '$0 data' first" >&2; exit 1; }
    ref=(--reference "$DATA/templates.jsonl")
    "$COGUMI" failures cluster "$RUN" -m "$MODEL" -o "$OUT/before" --w-text 0 --w-type 0 --no-whiten --across -k 10 --min-size 1 "${ref[@]}" >/dev/null
    "$COGUMI" failures cluster "$RUN" -m "$MODEL" -o "$OUT/embed" --w-text 0 --w-type 0 "${ref[@]}" >/dev/null
    "$COGUMI" failures cluster "$RUN" -o "$OUT/text" --w-embed 0 --w-type 0 "${ref[@]}" >/dev/null
    "$COGUMI" failures cluster "$RUN" -m "$MODEL" -o "$OUT/combined" "${ref[@]}" >/dev/null
    python3 - "$OUT" <<'PY'
import json, sys
print("| method | failures | k | largest cluster | its template purity | ARI | purity (templates) | purity (benchmark) | purity (failure type) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for name, what in [("before", "today: raw embeddings, k=10 across benchmarks"), ("embed", "whitened embeddings alone, within each benchmark"),
                   ("text", "text features alone, within each benchmark"), ("combined", "after: whitened embeddings 0.5 + text 1 + failure type 0.5, within each benchmark (default)")]:
    s = json.load(open(f"{sys.argv[1]}/{name}/summary.json"))
    r = s["reference"]
    print(f"| {what} | {s['n_failures']} | {s['k']} | {100*s['largest_share']:.1f}% | {r['largest_cluster_purity']:.2f} "
          f"| {r['ari']:.3f} | {r['purity']:.3f} | {s['purity_category']:.3f} | {s['purity_failure_type']:.3f} |")
PY
    ;;
  *)
    sed -n 2,9p "$0"
    exit 2
    ;;
esac
