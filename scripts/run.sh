#!/usr/bin/env bash
# The main job on the built-in default: the nano system's first improvement loop.
# Builds Cogumi, checks the shipped base model (models/nano-base.gguf, sha256 in
# models/nano-base.json), writes the curriculum it was trained on, then runs `cogumi nano loop`:
# base on the four test sets, failures mined on the training splits, one LoRA modifier per
# domain, base + each modifier on every test set, the comparison table. Work goes to
# runs/nano (override with OUT_DIR); finished stages are reused when run again.
# About 70 minutes on 2 CPU cores (four modifiers of 1,000 steps), a few minutes with a GPU.
# Extra arguments go to `cogumi nano loop`.
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI=$(scripts/build.sh | tail -n 1)
OUT="${OUT_DIR:-runs/nano}"
BASE=models/nano-base.gguf
want=$(python3 -c 'import json; print(json.load(open("models/nano-base.json"))["sha256"])')
have=$(sha256sum "$BASE" | cut -d' ' -f1)
if [ "$want" != "$have" ]; then
  echo "error: $BASE has sha256 $have, models/nano-base.json says $want" >&2
  exit 1
fi
mkdir -p "$OUT"
# The curriculum the base was trained on (models/nano-base.json). Written every time: it is
# deterministic, so unchanged files keep the loop's finished stages valid, and a curriculum left by
# an older version is replaced rather than silently used.
"$COGUMI" nano data -o "$OUT/data" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1
"$COGUMI" nano loop --dir "$OUT" --base "$BASE" "$@"
