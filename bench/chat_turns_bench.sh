#!/usr/bin/env bash
# cogumi serve: does a conversation's next turn reuse the KV cache of the turn before? The same
# system served twice in one run, with the prefix cache (the default) and with --no-prefix-cache
# (every prompt decoded whole, the peer). C conversations run side by side, each T turns: every turn
# sends the whole history (the answers so far) and a new question, as a chat client does. A long
# system message (a few hundred tokens of instructions, as real deployments send) makes the history
# worth keeping from the first turn on. Prints per server: turns/s, mean and p90 latency of turns 2..T,
# prompt tokens asked and taken from the cache (usage.prompt_tokens_details.cached_tokens).
# Usage: bench/chat_turns_bench.sh [BIN] [SYSTEM] [C=8] [T=6] [TOKENS=32]
set -euo pipefail
BIN="${1:-build/bin/cogumi}"; SYSTEM="${2:-models/nano-system.yaml}"; C="${3:-8}"; T="${4:-6}"; TOK="${5:-32}"
TMP="$(mktemp -d)"; PID=""; trap '[ -n "$PID" ] && kill $PID 2>/dev/null; rm -rf "$TMP"' EXIT
run() {  # $1 label, rest: extra serve flags
  local label="$1"; shift
  "$BIN" serve -s "$SYSTEM" --port 0 "$@" > "$TMP/serve.log" 2>&1 & PID=$!
  for _ in $(seq 200); do grep -q listening "$TMP/serve.log" && break; sleep 0.1; done
  local url; url="$(grep -o 'http://[0-9.:]*' "$TMP/serve.log" | head -1)"
  [ -n "$url" ] || { cat "$TMP/serve.log" >&2; exit 1; }
  python3 - "$label" "$url" "$C" "$T" "$TOK" <<'PY'
import json, sys, threading, time, urllib.request
label, url, C, T, TOK = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
SYSTEM = " ".join(f"Rule {i}: answer with the number only, show the steps, and keep units as given." for i in range(12))
QS = ["Sam has 30 cards. He gives 11 away. How many cards does Sam have now?",
      "Then he buys 5 more packs of 4 cards. How many now?", "He gives half to Mia. How many does he keep?",
      "Mia has 7 cards. How many do they have together?", "They lose 3. How many are left?",
      "Each card costs 2 dollars. What are the cards worth?"]
lat, asked, cached, errors = [], 0, 0, []
lock = threading.Lock()
def conversation(c):
    global asked, cached
    msgs = [{"role": "system", "content": SYSTEM}]
    for t in range(T):
        msgs.append({"role": "user", "content": f"(conversation {c}) " + QS[t % len(QS)] if t == 0 else QS[t % len(QS)]})
        body = json.dumps({"model": "math", "max_tokens": TOK, "messages": msgs}).encode()
        req = urllib.request.Request(url + "/v1/chat/completions", body, {"Content-Type": "application/json"})
        t0 = time.time()
        try:
            r = json.load(urllib.request.urlopen(req, timeout=600))
        except Exception as e:  # noqa: BLE001 - reported, counted
            with lock: errors.append(str(e))
            return
        dt = time.time() - t0
        msgs.append({"role": "assistant", "content": r["choices"][0]["message"]["content"]})
        with lock:
            if t > 0: lat.append(dt)
            asked += r["usage"]["prompt_tokens"]
            cached += r["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)
t0 = time.time()
th = [threading.Thread(target=conversation, args=(c,)) for c in range(C)]
for x in th: x.start()
for x in th: x.join()
wall = time.time() - t0
lat.sort()
p90 = lat[int(0.9 * (len(lat) - 1))] if lat else float("nan")
mean = sum(lat) / len(lat) if lat else float("nan")
print(f"| {label} | {C} x {T} | {C * T / wall:.2f} | {mean:.3f} | {p90:.3f} | {asked:,} | {cached:,} | {len(errors)} |")
PY
  kill -TERM $PID; wait $PID || true; PID=""
}
echo "| server | conversations x turns | turns/s | mean latency, turns 2.. (s) | p90 (s) | prompt tokens | from cache | errors |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
run "prefix cache (default)"
run "no prefix cache (--no-prefix-cache)" --no-prefix-cache
