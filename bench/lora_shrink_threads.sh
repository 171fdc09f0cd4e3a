#!/usr/bin/env bash
# cogumi lora shrink's threads (session 33): a rank-128 adapter on all seven modules of an 8B-shaped model cut
# to rank 64, with 1 thread and with more, same run; the outputs must be byte-identical.
#   bench/lora_shrink_threads.sh [LAYERS] [THREADS...]     (default: 4 layers; threads 1 and nproc)
# COGUMI=BIN skips the build; COGUMI_LOCK=FILE takes that lock around the runs; BENCH_DIR=DIR keeps the files
# (default /tmp/cogumi-shrink-threads). The 8B shape's tensors (4096 x 4096 ... 4096 x 14336) with fewer layers:
# the time per tensor is what matters, and the full 32 layers' F16 model is 16 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
LAYERS="${1:-4}"; shift || true
THREADS=("${@:-1}"); [ $# -eq 0 ] && THREADS=(1 "$(nproc)")
T="${BENCH_DIR:-/tmp/cogumi-shrink-threads}"
L=(); [ -n "${COGUMI_LOCK:-}" ] && L=(flock "$COGUMI_LOCK")
mkdir -p "$T"
[ -f "$T/m.gguf" ] || "${L[@]}" "$COGUMI" model init "$T/m.gguf" --shape 8b --n-layer "$LAYERS" --type f16 \
  --vocab models/nano-base.gguf --seed 1 >/dev/null
[ -f "$T/a128.gguf" ] || "$COGUMI" lora init "$T/m.gguf" "$T/a128.gguf" --rank 128 --targets q,k,v,o,gate,up,down \
  --seed 1 --std-b 0.01 >/dev/null
echo "| threads | seconds (best of 2) | output sha256 |"
echo "|---:|---:|---|"
for t in "${THREADS[@]}"; do
  best=""
  for rep in 1 2; do
    s=$( { "${L[@]}" /usr/bin/time -f %e "$COGUMI" lora shrink "$T/a128.gguf" -o "$T/s$t.gguf" --rank 64 --threads "$t" >/dev/null; } 2>&1 | tail -1)
    best=$(python3 -c "import sys; a=[float(x) for x in sys.argv[1:] if x]; print(min(a))" "$s" $best)
  done
  echo "| $t | $best | $(sha256sum "$T/s$t.gguf" | cut -c1-16) |"
done
