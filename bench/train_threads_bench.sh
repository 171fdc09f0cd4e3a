#!/usr/bin/env bash
# Why `cogumi run` runs stages side by side (configs/nano.yaml `jobs: 2`): one nano training on both
# cores against one on one core, and two one-core trainings at once, each on the main job's math
# trainset (a finished `cogumi run configs/nano.yaml` work directory). Prints wall seconds,
# tokens/s and the adapters' sha256 (the same at any thread count).
# Usage: bench/train_threads_bench.sh RUN_DIR [STEPS]   (run it with nothing else on the CPU)
set -euo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
RUN=${1:?usage: train_threads_bench.sh RUN_DIR [STEPS]} STEPS=${2:-50}
COGUMI=${COGUMI:-$R/build/bin/cogumi}
W=$(mktemp -d /tmp/train-threads.XXXXXX)
set -- "$RUN"/stages/trainset.math-*/trainset.json
[ -f "$1" ] || { echo "train_threads_bench.sh: no trainset.math in $RUN/stages" >&2; exit 2; }
args=$(python3 - "$1" "$RUN" "$STEPS" <<'PY'
import glob, json, sys
t = json.load(open(sys.argv[1]))
model = json.load(open(glob.glob(sys.argv[2] + "/stages/base-*/done.json")[0]))["result"]["model"]
a = ["-m", model] + [x for s in t["sources"] for x in ("-d", f"{s['path']}:{s['weight']}")]
a += [x for v in t["val"] for x in ("--val-data", v)]
a += ["--eval-steps", "25", "--max-steps", sys.argv[3], "--warmup", "10", "--batch", "16", "--seq-len", "128",
      "--lr", "2e-3", "--pack"]
print(" ".join(a))
PY
)
run() {  # run NAME THREADS
  local t0; t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$COGUMI" train $args --threads "$2" -o "$W/$1.gguf" >"$W/$1.log" 2>&1 || { tail -5 "$W/$1.log" >&2; exit 1; }
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f\n", b - a }' >"$W/$1.s"
}
run two-threads 2
run one-thread 1
run side-a 1 & run side-b 1; wait
echo "| setup | wall s | tokens/s | adapter sha256 |"
echo "|---|---:|---:|---|"
for n in two-threads one-thread side-a side-b; do
  tps=$(python3 -c 'import json,sys; print(round(json.load(open(sys.argv[1]))["tokens_per_s"]))' "$W/$n.gguf.summary.json")
  echo "| $n | $(cat "$W/$n.s") | $tps | $(sha256sum "$W/$n.gguf" | cut -c1-16) |"
done
