#!/usr/bin/env bash
# `cogumi data generate` and `cogumi data judge` against a real `cogumi serve` of the nano system on
# loopback ports: a two-tier cascade on nano math failures (the base asked raw, then the math
# modifier), a judge pass where the reference check decides, backoff on the server's own 429s,
# resume after kill -9 without asking anything twice, the spend cap, and HTTPS through Debian's nginx
# with a self-signed certificate (trusted with --ca-file, refused with a clear error without it).
# Usage: teacher_cli_test.sh COGUMI_BINARY [REPO]. A missing tool fails the test naming its package.
set -uo pipefail
COGUMI="$1"
REPO="$(cd "${2:-$(dirname "$0")/../..}" && pwd)"
. "$(dirname "$0")/../lib.sh"
need nginx nginx
need openssl openssl
need jq jq
need curl curl
need python3 python3

# ---- nano math failures, clustered ------------------------------------------------
"$COGUMI" nano data -o "$T/data" --n-train 20 --n-dev 10 --n-test 80 --difficulty 2,math=1 >/dev/null || { echo "FAIL nano data"; exit 1; }
"$COGUMI" eval -m "$REPO/models/nano-base.gguf" --bench gsm8k="$T/data/math/test.jsonl" --max-tokens 48 \
  -o "$T/run" >"$T/eval.out" 2>&1 || { echo "FAIL eval"; cat "$T/eval.out"; exit 1; }
"$COGUMI" failures cluster "$T/run" --w-embed 0 -o "$T/clusters" >"$T/cluster.out" 2>&1 ||
  { echo "FAIL failures cluster"; cat "$T/cluster.out"; exit 1; }

# ---- servers: one plain, one with a tight rate limit ------------------------------
nano_system "$T/system.yaml"
start_serve a --system "$T/system.yaml"
start_serve limited --system "$T/system.yaml" --rate-limit 10
URL="http://127.0.0.1:$PORT_a/v1"
P="$REPO/configs/prompts"
cat >"$T/tiers.yaml" <<YAML
tiers:
  - {name: base, base_url: "$URL", model: base, api: completions, template: "$P/teacher_eval_prompt.txt", temperature: 0.8, max_tokens: 40}
  - {name: math, base_url: "$URL", model: math, api: chat, template: "$P/teacher_question.txt", max_tokens: 40}
YAML

# ---- the cascade over two tiers ---------------------------------------------------
"$COGUMI" data generate --config "$T/tiers.yaml" --failures "$T/clusters" --run "$T/run" --domain math \
  --limit 12 -o "$T/gen.jsonl" --quiet >"$T/gen.out" 2>&1
check "generate runs the cascade" test $? -eq 0
R="$T/gen.report.json"
check "tier 1 is asked every failure, tier 2 what tier 1 left failing" \
  jq -e '.tiers | length == 2 and .[0].asked == 12 and .[1].asked == .[0].failed + .[0].errors' "$R"
check "every request asked is in the log once" \
  jq -se --slurpfile r "$R" 'length == ($r[0].tiers[0].answered + $r[0].tiers[1].answered) and (map(.key) | unique | length) == length' "$T/gen.jsonl"
check "each reply records tier, prompt, usage and the raw reply" \
  jq -se 'all(.tier and (.prompt | length > 0) and (.usage.completion_tokens > 0) and (.reply | type == "string"))' "$T/gen.jsonl"
check "the per-tier tokens are the log's" \
  jq -se --slurpfile r "$R" '(map(select(.tier == "base")) | map(.usage.prompt_tokens + .usage.completion_tokens) | add)
     == ($r[0].tiers[0].prompt_tokens + $r[0].tiers[0].completion_tokens)' "$T/gen.jsonl"
check "kept examples state the reference's answer, with their tier and token cost" \
  jq -se 'all((.output | capture("#### *(?<n>-?[0-9]+)").n) == .reference and (.tier == "base" or .tier == "math") and .tokens.prompt_tokens > 0)' "$T/gen.kept.jsonl"
check "the cascade's kept count is the kept file's" \
  jq -se --slurpfile r "$R" 'length == $r[0].kept' "$T/gen.kept.jsonl"
check "the table is printed" grep -q "failure rate closed" "$T/gen.out"

# ---- the judge: the reference check decides where it applies -------------------------
{
  echo '{"instruction":"Ann has 5 pens and buys 3 more. How many pens?","output":"5 + 3 = 8\n#### 8","kind":"numeric","reference":"8"}'
  echo '{"instruction":"Ann has 5 pens and buys 3 more. How many pens?","output":"5 + 3 = 9\n#### 9","kind":"numeric","reference":"8"}'
  echo '{"prompt":"Name a colour.","completion":"Blue."}'
} >"$T/examples.jsonl"
"$COGUMI" data judge "$T/examples.jsonl" -o "$T/judged.jsonl" --endpoint "$URL" --model reasoning --max-tokens 16 \
  --threshold 7 --quiet >"$T/judge.out" 2>&1
check "judge runs" test $? -eq 0
check "every example has the judge's raw reply" jq -se 'length == 3 and all(.judge.reply | type == "string")' "$T/judged.judged.jsonl"
check "the check decides the checkable examples: the right one kept, the wrong one not" \
  jq -se '.[0].decided_by == "check" and .[0].kept and .[1].decided_by == "check" and (.[1].kept | not) and .[2].decided_by == "judge"' "$T/judged.judged.jsonl"
check "the judge decides the rest by its threshold" \
  jq -se '.[2].kept == (.[2].judge.score != null and .[2].judge.score >= 7)' "$T/judged.judged.jsonl"
check "the report counts checks and agreement" \
  jq -e '.examples == 3 and .checked == 2 and .judged_and_checked <= 2 and .agree <= .judged_and_checked' "$T/judged.report.json"

# ---- backoff on the server's own 429s (10 per minute, bursts of 10) ----------------
# 14 requests: the 4 past the burst need 24 s of refill, so 429s come unless the first 10 took longer than that
# (with 30/min and 36 requests a slow, loaded CI machine could take the 12 s of refill and see none).
"$COGUMI" data generate --failures "$T/clusters" --run "$T/run" --domain math --limit 14 -o "$T/limited.jsonl" \
  --endpoint "http://127.0.0.1:$PORT_limited/v1" --model base --api completions --template "$P/teacher_eval_prompt.txt" \
  --max-tokens 4 --concurrency 4 --backoff 0.2 --max-retries 20 --quiet >"$T/limited.out" 2>&1
check "a rate-limited run completes" jq -e '.tiers[0].answered == 14 and .tiers[0].errors == 0' "$T/limited.report.json"
check "and records the 429s it retried" jq -se '(map(.retries) | add) > 0 and any(.[].retried[]; . == 429)' "$T/limited.jsonl"

# ---- resume after kill -9 ---------------------------------------------------------
gen_slow() {
  "$COGUMI" data generate --config "$T/tiers.yaml" --failures "$T/clusters" --run "$T/run" --domain math \
    --limit 16 -o "$T/resume.jsonl" --quiet "$@"
}
sed 's/temperature: 0.8/temperature: 0.8, concurrency: 1, rate_limit: 240/' "$T/tiers.yaml" >"$T/slow.yaml"
"$COGUMI" data generate --config "$T/slow.yaml" --failures "$T/clusters" --run "$T/run" --domain math \
  --limit 16 -o "$T/resume.jsonl" --quiet >/dev/null 2>&1 &
GEN=$!
lines_at_least() { [ "$(grep -c . "$1" 2>/dev/null)" -ge "$2" ]; }
wait_for 60 lines_at_least "$T/resume.jsonl" 3
kill -9 "$GEN"; wait "$GEN" 2>/dev/null
before=$(grep -c . "$T/resume.jsonl")
check "the killed run left part of the work" test "$before" -ge 3 -a "$before" -lt 16
gen_slow >"$T/resume.out" 2>&1
check "the rerun completes" test $? -eq 0 || cat "$T/resume.out"
check "and answers every failure in tier 1" jq -e '.tiers[0].answered == 16' "$T/resume.report.json"
check "nothing was asked twice" jq -se '(map(.key) | unique | length) == length' "$T/resume.jsonl"
check "what the killed run received was reused" jq -e --argjson b "$before" '.tiers[0].resumed >= $b - 1' "$T/resume.report.json"
check "the log holds every request of both tiers" \
  jq -se --slurpfile r "$T/resume.report.json" 'length == ($r[0].tiers[0].answered + $r[0].tiers[1].answered)' "$T/resume.jsonl"

# ---- the spend cap ----------------------------------------------------------------
"$COGUMI" data generate --config "$T/tiers.yaml" --failures "$T/clusters" --run "$T/run" --domain math \
  --limit 16 -o "$T/capped.jsonl" --spend-cap 150 --quiet >/dev/null 2>&1
check "the spend cap stops the run" jq -e '.capped and .spent_tokens < 400 and .tiers[0].answered < 16' "$T/capped.report.json"

# ---- HTTPS: nginx with a self-signed certificate in front of the server ----------------
mkdir -p "$T/nginx"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" \
  -keyout "$T/nginx/key.pem" -out "$T/nginx/cert.pem" >/dev/null 2>&1 || { echo "FAIL openssl req"; exit 1; }
TLS_PORT=$(free_port)
nginx_conf "$T/nginx" 64 "  server {
    listen 127.0.0.1:$TLS_PORT ssl;
    ssl_certificate $T/nginx/cert.pem;
    ssl_certificate_key $T/nginx/key.pem;
    location / { proxy_pass http://127.0.0.1:$PORT_a; }
  }"
start_nginx "$T/nginx"
wait_for 20 curl -sf --cacert "$T/nginx/cert.pem" "https://127.0.0.1:$TLS_PORT/health" ||
  { echo "FAIL nginx (TLS) did not start"; cat "$T/nginx/nginx.err" "$T/nginx/logs/error.log"; exit 1; }
tls() {
  "$COGUMI" data generate --failures "$T/clusters" --run "$T/run" --domain math --limit 3 \
    --endpoint "https://127.0.0.1:$TLS_PORT/v1" --model math --template "$P/teacher_question.txt" --max-tokens 16 --quiet "$@"
}
tls -o "$T/tls-refused.jsonl" >"$T/tls-refused.out" 2>&1
rc=$?
check "without the CA file the self-signed endpoint is refused" test $rc -ne 0
check "with an error that says TLS and names --ca-file" grep -q "TLS.*--ca-file" "$T/tls-refused.out"
tls --ca-file "$T/nginx/cert.pem" -o "$T/tls.jsonl" >"$T/tls.out" 2>&1
check "with --ca-file the cascade runs over HTTPS" jq -e '.tiers[0].answered == 3' "$T/tls.report.json"
check "the requests went through nginx" test "$(grep -c 'POST /v1/chat/completions' "$T/nginx/logs/access.log")" -ge 3

finish
