#!/usr/bin/env bash
# The memory `cogumi train` plans for a LoRA (r=16, seven modules) on a random model of Llama-3.1-8B's
# shape and vocabulary, F16 and Q4_K_M bases, with and without --checkpoint-activations and --flash-attn, on a device
# (default the CPU: its plan is exact there). Needs ~22 GiB of disk in WORK.
#   bench/train_memory_8b.sh [WORK]    env: BIN (build/bin), DEVICE (cpu), SHAPE (8b; 1b for the 1B rows), FA (off on)
set -uo pipefail
cd "$(dirname "$0")/.."
W=${1:-/tmp/m8}
B=${BIN:-build/bin}
V=$(ls -d ~/.cache/cogumi/llama.cpp-*-src | head -1)/models/ggml-vocab-llama-bpe.gguf
mkdir -p "$W"
[ -f "$W/m${SHAPE:-8b}-f16.gguf" ] || /usr/bin/time -f "init %e s" "$B/cogumi" model init "$W/m${SHAPE:-8b}-f16.gguf" --shape "${SHAPE:-8b}" --type f16 --vocab "$V" --seed 1 >/dev/null
[ -f "$W/m${SHAPE:-8b}-q4_k_m.gguf" ] || /usr/bin/time -f "quantize %e s" "$B/cogumi" model quantize "$W/m${SHAPE:-8b}-f16.gguf" "$W/m${SHAPE:-8b}-q4_k_m.gguf" --type q4_k_m >/dev/null
echo '{"prompt":"x","completion":"y"}' >"$W/d.jsonl"
for m in f16 q4_k_m; do for cfg in "1 2048" "1 1024" "4 1024"; do set -- $cfg; for ck in "" "--checkpoint-activations"; do
for fa in ${FA:-off on}; do
  echo "== $m batch $1 seq $2 $ck --flash-attn $fa"
  "$B/cogumi" train -m "$W/m${SHAPE:-8b}-$m.gguf" -d "$W/d.jsonl" -o "$W/a.gguf" --lora-rank 16 --targets q,k,v,o,gate,up,down \
    --seq-len "$2" --batch "$1" --device "${DEVICE:-cpu}" --dry-run --flash-attn $fa $ck 2>&1 | grep '^memory on'
done; done; done; done
