#!/usr/bin/env bash
# cogumi serve: does batching concurrent requests pay? The same nano system served twice in one
# run: with the scheduler batching every waiting request (the default) and with --max-batch 1 (one
# request per engine call, the peer). Each server gets the same N chat requests from C concurrent
# curl clients, spread over the four modifiers, ignore_eos so every answer has the same length.
# Prints requests/s, generated tokens/s and mean latency per server.
# Usage: bench/serve_bench.sh [BIN] [N=32] [C=8] [TOKENS=64]
set -euo pipefail
BIN="${1:-build/bin/cogumi}"; N="${2:-32}"; C="${3:-8}"; TOK="${4:-64}"
TMP="$(mktemp -d)"; trap 'kill $PID 2>/dev/null || true; rm -rf "$TMP"' EXIT
QS=("Sam has 30 cards. He gives 11 away. How many cards does Sam have now?"
    "Write a function that adds two numbers."
    "Which is larger?\nA. 3\nB. 9"
    "Send an email to Pete about the meeting.")
for i in $(seq 0 $((N - 1))); do
  printf '{"model":"nano","max_tokens":%d,"ignore_eos":true,"messages":[{"role":"user","content":"%s"}]}\n' \
    "$TOK" "${QS[$((i % 4))]}" > "$TMP/req$i.json"
done
run() {  # $1 label, rest: extra serve flags
  local label="$1"; shift
  "$BIN" serve --port 0 "$@" > "$TMP/serve.log" 2>&1 & PID=$!
  for _ in $(seq 100); do grep -q listening "$TMP/serve.log" && break; sleep 0.1; done
  local url; url="$(grep -o 'http://[0-9.:]*' "$TMP/serve.log")"
  local t0; t0=$(date +%s.%N)
  seq 0 $((N - 1)) | xargs -P "$C" -I{} sh -c \
    "curl -s -o $TMP/out{}.json -w '%{time_total}\n' -H 'Content-Type: application/json' -d @$TMP/req{}.json $url/v1/chat/completions" \
    > "$TMP/times.txt"
  local t1; t1=$(date +%s.%N)
  local batches; batches="$(curl -s "$url/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["batches"])')"
  kill -TERM $PID; wait $PID || true
  python3 - "$label" "$t0" "$t1" "$batches" "$TMP" "$N" <<'PY'
import json, sys, glob
label, t0, t1, batches, tmp, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
toks = 0
for f in glob.glob(f"{tmp}/out*.json"):
    toks += json.load(open(f))["usage"]["completion_tokens"]
lat = [float(x) for x in open(f"{tmp}/times.txt")]
wall = t1 - t0
print(f"| {label} | {n} | {batches} | {n / wall:.2f} | {toks / wall:.1f} | {sum(lat) / len(lat):.2f} |")
PY
  rm -f "$TMP"/out*.json
}
echo "| server | requests | engine batches | requests/s | generated tokens/s | mean latency (s) |"
echo "|---|---:|---:|---:|---:|---:|"
run "batched (default)"
run "one at a time (--max-batch 1)" --max-batch 1
