#!/usr/bin/env bash
# `cogumi serve --drain SECONDS` as a user runs it: SIGTERM lets requests in flight run that long,
# then cuts them (a stream ends with an OpenAI-shaped error event, code shutting_down) and the
# process exits at once instead of waiting for the generation; a bad --drain is refused by name.
# Usage: drain_test.sh COGUMI_BINARY [REPO]. A missing tool fails the test naming its package.
set -uo pipefail
COGUMI="$1"
REPO="$(cd "${2:-$(dirname "$0")/../..}" && pwd)"
. "$(dirname "$0")/../lib.sh"
need curl curl

"$COGUMI" serve -m "$REPO/models/nano-base.gguf" --drain -1 >"$T/bad.out" 2>&1
check "--drain -1 is refused" test $? -ne 0
check "the error names --drain" grep -q -- "--drain" "$T/bad.out"

start_serve d -m "$REPO/models/nano-base.gguf" --drain 1
# 16 answers of 1,000 tokens each: far more than a second of generation on 2 cores.
body='{"model":"base","messages":[{"role":"user","content":"Count."}],"max_tokens":1000,"n":16,"ignore_eos":true,"stream":true}'
curl -sN "http://127.0.0.1:$PORT_d/v1/chat/completions" -H 'Content-Type: application/json' -d "$body" >"$T/stream.txt" &
CURL=$!
wait_for 30 grep -q '"content"' "$T/stream.txt" || { echo "FAIL the stream never started"; cat "$T/d.err"; exit 1; }
start=$SECONDS
kill -TERM "$PID_d"
wait "$PID_d"
rc=$?
took=$((SECONDS - start))
wait "$CURL"
check "the server exits 0 after SIGTERM" test "$rc" -eq 0
check "it exits after the drain, not after the generation (${took} s)" test "$took" -le 5
check "the stream ends with a shutting_down error event" grep -q '"shutting_down"' "$T/stream.txt"
check "no answer was finished" bash -c "! grep -q '\"finish_reason\":\"length\"' '$T/stream.txt'"
finish
