#!/usr/bin/env bash
# The main job on the built-in default. Until the nano pipeline lands, it builds Cogumi,
# makes a nano-shaped random model and runs a batch of prompts through the engine,
# reporting throughput. Output goes to out/ (override with OUT_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI=$(scripts/build.sh "$@" | tail -n 1)
OUT="${OUT_DIR:-out}"
mkdir -p "$OUT"
[ -f "$OUT/nano-random.gguf" ] || "$COGUMI" model init "$OUT/nano-random.gguf" --shape nano --seed 1
"$COGUMI" info "$OUT/nano-random.gguf"
python3 - "$OUT/prompts.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        f.write(json.dumps({"id": i, "prompt": f"Question {i}: Tom has {i} apples and buys {i % 7} more. How many apples?"}) + "\n")
PY
"$COGUMI" generate -m "$OUT/nano-random.gguf" --prompts "$OUT/prompts.jsonl" -n 64 --ignore-eos \
  --parallel 16 -o "$OUT/generations.jsonl"
echo "wrote $OUT/generations.jsonl"
