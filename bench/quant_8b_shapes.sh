#!/usr/bin/env bash
# Ours vs llama.cpp's imatrix + quantize (bench/quant_bench.sh) on a model with Llama-3.1-8B's tensor
# shapes and vocabulary but LAYERS of its 32 blocks (random F16), on the nano curriculum's text.
#   bench/quant_8b_shapes.sh [WORK]     env: LAYERS (2), TYPES ("q4_k_m iq4_xs"), CHUNKS (8), EVAL_CHUNKS (8),
#                                        THREADS (2), BIN (build/bin), LLAMA_BIN (the bundle's tools: see quant_bench.sh)
# 17 min on 2 cores with the defaults (bench/RESULTS.md, "Llama-3.1-8B tensor shapes on the CPU").
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/q8b}
B=${BIN:-build/bin}
V=$(ls -d ~/.cache/cogumi/llama.cpp-*-src | head -1)/models/ggml-vocab-llama-bpe.gguf
M=$W/m8b-${LAYERS:-2}l-f16.gguf
mkdir -p "$W"
[ -f "$M" ] || /usr/bin/time -f "model init: %e s" "$B/cogumi" model init "$M" --shape 8b --n-layer "${LAYERS:-2}" \
  --type f16 --vocab "$V" --seed 1 >/dev/null
"$B/cogumi" info "$M" | head -8
Q=$W/data
[ -f "$Q/mix/train.jsonl" ] || "$B/cogumi" nano data -o "$Q" --n-train 400 --n-dev 10 --n-test 150 --n-mix 0 >/dev/null
python3 bench/quant_text.py "$W/calib.txt" "$Q/mix/train.jsonl"
python3 bench/quant_text.py "$W/eval.txt" "$Q/math/test.jsonl" "$Q/code/test.jsonl" "$Q/automation/test.jsonl"
CTX=512 CHUNKS=${CHUNKS:-8} EVAL_CHUNKS=${EVAL_CHUNKS:-8} TYPES="${TYPES:-q4_k_m iq4_xs}" THREADS=${THREADS:-2} \
  COGUMI="$B/cogumi" LLAMA_BIN="${LLAMA_BIN:-$(ls -d ~/.cache/cogumi/llama-*-cpu-*-patched.build/bin | head -1)}" \
  bench/quant_bench.sh "$M" "$W/calib.txt" "$W/eval.txt" "$W/out"
