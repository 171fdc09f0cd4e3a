#!/usr/bin/env bash
# The teacher cascade on the nano (issue 16): the nano base's math failures on training problems,
# clustered, answered by three tiers served by one `cogumi serve` of the nano system
# (configs/teachers-nano.yaml: 1 = the base asked raw and sampled, 2 = the math modifier, greedy,
# 3 = the routed system, sampled), each answer checked against the reference; prints the per-tier table.
#   flock /tmp/cogumi-cpu.lock bench/teacher_bench.sh [N_FAILURES=100]
# Paths: COGUMI (binary), OUT (work directory; the reply log there makes a rerun a resume).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-build/bin/cogumi}"
OUT="${OUT:-/tmp/teacher-bench}"
N="${1:-100}"
[ -x "$COGUMI" ] || { echo "error: no cogumi binary at $COGUMI (build it, or set COGUMI)" >&2; exit 1; }
mkdir -p "$OUT"
# The main job's curriculum recipe (seed 1, math at difficulty 1), 600 training problems per domain.
[ -f "$OUT/data/math/train.jsonl" ] || "$COGUMI" nano data -o "$OUT/data" --seed 1 --n-train 600 --difficulty 2,math=1 >/dev/null
[ -f "$OUT/run/summary.json" ] || "$COGUMI" eval -m models/nano-base.gguf --bench gsm8k="$OUT/data/math/train.jsonl" \
  --max-tokens 96 -o "$OUT/run" | tail -4
[ -f "$OUT/clusters/clusters.jsonl" ] || "$COGUMI" failures cluster "$OUT/run" --w-embed 0 -o "$OUT/clusters" | tail -8

sed -e "s#\(nano-[a-z]*\.\(gguf\|json\)\)#$PWD/models/\1#g" -e "s#^memory:.*#memory: $OUT/sessions.db#" \
  models/nano-system.yaml >"$OUT/system.yaml"
"$COGUMI" serve --system "$OUT/system.yaml" --port 0 >"$OUT/serve.out" 2>&1 &
SERVE=$!
trap 'kill $SERVE 2>/dev/null; wait $SERVE 2>/dev/null' EXIT
for _ in $(seq 600); do grep -q "listening on" "$OUT/serve.out" && break; sleep 0.1; done
PORT=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$OUT/serve.out")
[ -n "$PORT" ] || { echo "error: the server did not start" >&2; cat "$OUT/serve.out" >&2; exit 1; }
sed -e "s#127.0.0.1:8080#127.0.0.1:$PORT#g" -e "s#template: prompts/#template: $PWD/configs/prompts/#" \
  configs/teachers-nano.yaml >"$OUT/teachers.yaml"
start=$(date +%s.%N)
"$COGUMI" data generate --config "$OUT/teachers.yaml" --failures "$OUT/clusters" --run "$OUT/run" --domain math \
  --limit "$N" -o "$OUT/gen.jsonl" --quiet
echo "cascade wall time: $(echo "$(date +%s.%N) - $start" | bc) s"
# The judge (the config's judge: section) over the kept examples; their reference check decides.
"$COGUMI" data judge "$OUT/gen.kept.jsonl" -o "$OUT/judged.jsonl" --config "$OUT/teachers.yaml" --quiet
