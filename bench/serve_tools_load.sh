#!/usr/bin/env bash
# Long streams decoding while chat requests with tools arrive (bench/serve_tools_load.py), on `cogumi serve -m` with
# a random-weight model carrying Llama 3.1 Instruct's own template and Llama 3's tokenizer (each tool request is
# rendered by the Jinja engine: milliseconds). Four servers, one after the other: requests prepared on the engine's
# thread (`--prepare off`) and on their HTTP threads (`--prepare on`), each with the streams alone and then with the
# tool traffic. The engine gets THREADS threads: 1 of 2 cores leaves one to the HTTP threads, as on a GPU machine
# where decoding leaves the CPU idle; 2 (all) shows the other side.
#   bench/serve_tools_load.sh [BIN (build/bin/cogumi)]
# Environment: STREAMS (4), TOKENS (512), RATE (10 tool requests/s), TURNS (8), PARALLEL (8), THREADS (1; 0: the
#   server's default), LLAMA_SRC (the pinned llama.cpp source; default: scripts/deps.sh's), SHAPE (`model init --shape`: tiny; 1b on a GPU), WORK (/tmp/cogumi-serve-tools: the model,
#   made once per shape)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin/cogumi}
STREAMS=${STREAMS:-4} TOKENS=${TOKENS:-512} RATE=${RATE:-10} TURNS=${TURNS:-8} PARALLEL=${PARALLEL:-8}
THREADS=${THREADS:-1} WORK=${WORK:-/tmp/cogumi-serve-tools} SHAPE=${SHAPE:-tiny}
for v in STREAMS TOKENS PARALLEL THREADS TURNS; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "serve_tools_load: $v must be a whole number, got '${!v}'" >&2; exit 2; }
done
[[ "$RATE" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "serve_tools_load: RATE must be a number, got '$RATE'" >&2; exit 2; }
[ -x "$BIN" ] || { echo "serve_tools_load: no cogumi binary at $BIN" >&2; exit 2; }
SRC="${LLAMA_SRC:-$(scripts/deps.sh | tail -n 1)/src}"  # the pinned source: its Llama 3 vocabulary and template
mkdir -p "$WORK"
M="$WORK/llama31-template-$SHAPE.gguf"
[ -f "$M" ] || "$BIN" model init "$M" --shape "$SHAPE" --type f16 --vocab "$SRC/models/ggml-vocab-llama-bpe.gguf" \
  --chat-template "$SRC/models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja" >/dev/null
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
echo "| server ($SHAPE, --threads $THREADS) | streams | streams' tokens/s | tool requests | tool latency p50 (ms) | p90 (ms) | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|"
port=18391
for prepare in off on; do
  for rate in 0 "$RATE"; do
    "$BIN" serve -m "$M" --port $port --parallel "$PARALLEL" --threads "$THREADS" --prepare $prepare \
      >"$WORK/server.log" 2>&1 & PID=$!
    python3 bench/serve_tools_load.py --label "--prepare $prepare, tools at $rate/s" --url "http://127.0.0.1:$port" \
      --streams "$STREAMS" --tokens "$TOKENS" --rate "$rate" --turns "$TURNS" || { tail -20 "$WORK/server.log" >&2; exit 1; }
    kill -TERM $PID; wait $PID 2>/dev/null || true; PID=""
    port=$((port + 1))
  done
done
