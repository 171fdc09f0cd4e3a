#!/usr/bin/env bash
# Requests arriving over time (a Poisson process), each for one of the nano system's four LoRA
# modifiers, against three servers in one run:
#   cogumi serve                   continuous admission (a request joins the running decode batch
#                                  at the next step; requests for different adapters share steps)
#   cogumi serve --static-batches  the scheduler before it (a request arriving during a batch waits
#                                  for the whole batch to end)
#   llama-server                   the same llama.cpp bundle, the same base and four adapters
#                                  (per-request "lora"; it batches only requests with equal adapters)
# Every server gets the same requests at the same offsets: /v1/completions, streamed, greedy, a
# raw prompt (the same tokens on both servers), ignore_eos with a seeded length per request.
# Prints per server: time to first token p50/p90 (from the request's send), end-to-end latency
# p50/p90, and generated tokens/s over the run (first send to last byte).
#
# Usage: bench/serve_arrivals.sh [BIN=build/bin/cogumi]
# Environment: N (64 requests), RATE (6 requests/s), TOKENS (32..512, a range), PARALLEL (16 slots
#   on every server), SEED (7), LLAMA_SERVER (default: the one scripts/deps.sh --tools built; "" skips it)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${1:-build/bin/cogumi}"
N="${N:-64}"; RATE="${RATE:-6}"; TOKENS="${TOKENS:-32..512}"; PARALLEL="${PARALLEL:-16}"; SEED="${SEED:-7}"
if [ -z "${LLAMA_SERVER+x}" ]; then
  LLAMA_SERVER="$(scripts/deps.sh --tools 2>/dev/null | tail -1)/bin/llama-server"
fi
for v in N RATE PARALLEL SEED; do
  [[ "${!v}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "serve_arrivals: $v must be a positive number, got '${!v}'" >&2; exit 2; }
done
[[ "$TOKENS" =~ ^[0-9]+\.\.[0-9]+$ ]] || { echo "serve_arrivals: TOKENS must be MIN..MAX, got '$TOKENS'" >&2; exit 2; }
[ -x "$BIN" ] || { echo "serve_arrivals: no cogumi binary at $BIN" >&2; exit 2; }
TMP="$(mktemp -d)"
PID=""
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT
ADAPTERS=(math code reasoning automation)  # models/nano-<name>.gguf; cogumi names the last two *-modifier

# $1 label, $2 kind (cogumi|llama), $3 port, rest: the server command.
run() {
  local label="$1" kind="$2" port="$3"; shift 3
  "$@" > "$TMP/server.log" 2>&1 & PID=$!
  python3 bench/serve_arrivals.py --label "$label" --kind "$kind" --url "http://127.0.0.1:$port" \
    --n "$N" --rate "$RATE" --tokens "$TOKENS" --seed "$SEED" || { tail -20 "$TMP/server.log" >&2; exit 1; }
  kill -TERM $PID; wait $PID 2>/dev/null || true; PID=""
}

echo "| server | requests | TTFT p50 (s) | TTFT p90 (s) | latency p50 (s) | latency p90 (s) | generated tokens/s |"
echo "|---|---:|---:|---:|---:|---:|---:|"
run "cogumi serve (continuous)" cogumi 18291 "$BIN" serve --port 18291 --parallel "$PARALLEL"
run "cogumi serve --static-batches (before)" cogumi 18292 "$BIN" serve --port 18292 --parallel "$PARALLEL" --static-batches
if [ -n "$LLAMA_SERVER" ] && [ -x "$LLAMA_SERVER" ]; then
  lora=(); for a in "${ADAPTERS[@]}"; do lora+=(--lora "models/nano-$a.gguf"); done
  run "llama-server (same bundle)" llama 18293 "$LLAMA_SERVER" -m models/nano-base.gguf "${lora[@]}" \
    --lora-init-without-apply -np "$PARALLEL" -c $((PARALLEL * 1024)) -b 2048 --host 127.0.0.1 --port 18293 --no-webui
else
  echo "(llama-server skipped: none at '$LLAMA_SERVER'; scripts/deps.sh --tools builds it)" >&2
fi
