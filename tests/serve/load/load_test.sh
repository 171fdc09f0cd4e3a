#!/usr/bin/env bash
# Bounded load test: a real `cogumi serve` (nano system, loopback, any free port) and, from a
# second process, CLIENTS concurrent streaming clients for SECONDS (load_client.mjs, node).
# Passes when every request answered in full (zero errors), the server is alive and healthy
# afterwards, its /metrics counted exactly the requests the clients made, its resident memory
# (VmRSS) is back near the level before the load, and SIGTERM still drains and exits 0.
# Usage: load_test.sh COGUMI_BINARY [CLIENTS=16] [SECONDS=10]
set -uo pipefail
COGUMI="$1"
CLIENTS="${2:-16}"
DURATION="${3:-10}"
HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../../.." && pwd)"
. "$HERE/../../lib.sh"
need node nodejs
need curl curl
need jq jq
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SERVER/status"; }

# The shipped nano system with absolute model paths and its session memory in this run's dir.
nano_system "$T/system.yaml"
start_serve main --system "$T/system.yaml"
SERVER=$PID_main
URL="http://127.0.0.1:$PORT_main"

# Warm-up at the same concurrency: the engine's batch buffers, httplib's threads and malloc's
# arenas reach their working size; what is measured is growth after that.
node "$HERE/load_client.mjs" "$URL" "$CLIENTS" 3 >"$T/warm.json" ||
  { echo "FAIL warm-up had errors: $(cat "$T/warm.json")"; cat "$T/main.err"; exit 1; }
sleep 1
before=$(rss_kb)
# Scrapes while the load runs, as Prometheus would: the KV cache is in use mid-batch.
(
  end=$((SECONDS + DURATION))
  while ((SECONDS < end)); do
    curl -sf "$URL/metrics" | awk '/^cogumi_kv_cache_used_cells / {print $2}'
    sleep 0.2
  done
) >"$T/kv.txt" &
SCRAPER=$!
node "$HERE/load_client.mjs" "$URL" "$CLIENTS" "$DURATION" >"$T/load.json"
rc=$?
wait "$SCRAPER"
echo "load: $(cat "$T/load.json")"
check "$CLIENTS streaming clients for $DURATION s: zero errors" [ $rc -eq 0 ]
kv_max=$(sort -n "$T/kv.txt" | tail -n 1)
check "scrapes during the load saw the KV cache in use (max ${kv_max:-none} cells)" [ "${kv_max:-0}" -gt 0 ]
check "the load ran requests at all" [ "$(jq .ok "$T/load.json")" -gt "$CLIENTS" ]
# The server finishes its bookkeeping after the client's last byte: wait (up to 20 s) until idle.
for _ in $(seq 100); do
  curl -sf "$URL/health" | jq -e '.in_flight == 0' >/dev/null 2>&1 && break
  sleep 0.2
done
check "the server is alive after the load" kill -0 "$SERVER"
check "GET /health answers ok" bash -c "curl -sf '$URL/health' | jq -e '.status == \"ok\" and .in_flight == 0' >/dev/null"
after=$(rss_kb)
echo "VmRSS before the load ${before} kB, after ${after} kB"
# Back near the level before: within 5% + 8 MiB (allocator slack); a leak of ~10 kB per request
# over the ~1,000 requests of the load would show.
check "VmRSS back near its level before the load" [ "$after" -le $((before + before / 20 + 8192)) ]
total=$(($(jq .ok "$T/warm.json") + $(jq .ok "$T/load.json")))
curl -sf "$URL/metrics" >"$T/metrics.txt"
counted=$(awk '/^cogumi_requests_total\{endpoint="\/v1\/chat\/completions"/ && /status="200"/ {s += $2} END {print s + 0}' "$T/metrics.txt")
others=$(awk '/^cogumi_requests_total\{/ && !/status="200"/ {s += $2} END {print s + 0}' "$T/metrics.txt")
check "/metrics counted every request ($counted of $total) and no failure ($others)" \
  [ "$counted" -eq "$total" -a "$others" -eq 0 ]
kill -TERM "$SERVER"
wait "$SERVER"
code=$?
check "SIGTERM after the load: drains and exits 0" [ $code -eq 0 ]
finish
