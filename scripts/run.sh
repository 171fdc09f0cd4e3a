#!/usr/bin/env bash
# The main job on the built-in default: the nano system's first improvement loop as a pipeline,
# `cogumi run configs/nano.yaml`. Builds Cogumi, checks the shipped base model
# (models/nano-base.gguf, sha256 in models/nano-base.json), then runs every stage of configs/nano.yaml:
# the curriculum the base was trained on, the base on the four test sets, its failures mined on the
# training splits (past the items the base trained on) and clustered, math, reasoning and automation
# modifiers trained on their failures first (code stays with the base: 97.5% on dev), every configuration on every test set and on dev, each domain's route
# chosen on dev, the router, its calibration, the routed system, its compressed version, the gates and
# the report (the per-domain table with 95% intervals is printed at the end; report.html in the work
# directory).
# Work goes to runs/nano (override with OUT_DIR); finished stages are reused when run again.
#
#   scripts/run.sh                  # the short loop, ~13 minutes on 2 AVX2 CPU cores after the build (two stages at a time)
#   scripts/run.sh --full           # configs/nano-full.yaml: the GPU's 4,000-step modifiers (minutes on a GPU, ~2 hours on 2 CPU cores)
#   scripts/run.sh --dry-run        # the plan and what a rerun would reuse
#
# Other arguments go to `cogumi run` (--until STAGE, --only STAGE, --dry-run, -q).
set -euo pipefail
cd "$(dirname "$0")/.."
CONFIG=configs/nano.yaml
args=()
for a in "$@"; do
  if [ "$a" = --full ]; then CONFIG=configs/nano-full.yaml; else args+=("$a"); fi
done
COGUMI=$(scripts/build.sh | tail -n 1)
OUT="${OUT_DIR:-runs/nano}"
BASE=models/nano-base.gguf
want=$(python3 -c 'import json; print(json.load(open("models/nano-base.json"))["sha256"])')
have=$(sha256sum "$BASE" | cut -d' ' -f1)
if [ "$want" != "$have" ]; then
  echo "error: $BASE has sha256 $have, models/nano-base.json says $want" >&2
  exit 1
fi
"$COGUMI" run "$CONFIG" --dir "$OUT" ${args[@]+"${args[@]}"}
