#!/usr/bin/env bash
# CPU benchmarks on this machine: the engine against llama.cpp's llama-batched-bench (same
# bundle, same model, same threads), and GSM8K harness throughput against one at a time.
# Usage: bench/cpu_bench.sh   (builds what it needs; results on stdout, markdown)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=$(scripts/deps.sh --tools | tail -n 1)
COGUMI=$(scripts/build.sh | tail -n 1)
B=$(dirname "$COGUMI")
T="${BENCH_DIR:-/tmp/cogumi-bench}"
mkdir -p "$T"
M="$T/nano-llama3vocab-f16.gguf"
[ -f "$M" ] || "$COGUMI" model init "$M" --shape nano --type f16 --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" >/dev/null
THREADS="${THREADS:-$(nproc)}"
echo "## Engine vs llama-batched-bench: $("$COGUMI" info "$M" | sed -n 2p | sed 's/ *arch *//'), pp 64, tg 128, $THREADS threads"
echo '```'
"$PREFIX/bin/llama-batched-bench" -m "$M" -c 16384 -b 2048 -ub 512 -npp 64 -ntg 128 -npl 1,8,16 -t "$THREADS" 2>/dev/null | grep '^|'
echo '```'
"$B/cogumi-bench-engine" -m "$M" --pp 64 --tg 128 --npl 1,8,16 --threads "$THREADS" --reps 2
echo
echo "## GSM8K harness vs one at a time (same model, max tokens 64, EOS ignored)"
MAXTOK=64 bench/eval_bench.sh "$COGUMI" "$M" 128 16 16 --ctx 512 --threads "$THREADS"
