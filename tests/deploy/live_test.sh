#!/usr/bin/env bash
# deploy/ against the real thing: two `cogumi serve` replicas of the nano system on loopback
# ports, Debian's nginx in front of them with deploy/nginx/cogumi.conf, and Debian's Prometheus
# scraping both every second with deploy/prometheus's alert rules loaded. Checks that answers
# (whole and streamed) come back through nginx from both replicas, that Prometheus sees both
# replicas up and the requests counted, and that every metric the alert rules and the Grafana
# dashboard name is one the server really exports.
# Usage: live_test.sh COGUMI_BINARY [REPO]. A missing tool fails the test naming its package.
set -uo pipefail
COGUMI="$1"
REPO="$(cd "${2:-$(dirname "$0")/../..}" && pwd)"
D="$REPO/deploy"
. "$(dirname "$0")/../lib.sh"
need nginx nginx
need prometheus prometheus
need curl curl
need jq jq

# ---- two replicas -------------------------------------------------------------
# The shipped nano system with absolute model paths and its session memory in this run's dir.
nano_system "$T/system.yaml"
start_serve a --system "$T/system.yaml"
start_serve b --system "$T/system.yaml"
echo "replicas on $PORT_a and $PORT_b"

# ---- nginx in front, the shipped config with this run's ports ---------------------
NGINX_PORT=$(free_port)
mkdir -p "$T/nginx"
sed -e "s|127.0.0.1:8081|127.0.0.1:$PORT_a|" -e "s|127.0.0.1:8082|127.0.0.1:$PORT_b|" \
  -e "s|listen 8080;|listen 127.0.0.1:$NGINX_PORT;|" "$D/nginx/cogumi.conf" >"$T/nginx/cogumi.conf"
nginx_conf "$T/nginx" 256 "  include $T/nginx/cogumi.conf;"
start_nginx "$T/nginx"
N="http://127.0.0.1:$NGINX_PORT"
wait_for 20 curl -sf "$N/health" || { echo "FAIL nginx did not start"; cat "$T/nginx/nginx.err" "$T/nginx/logs/error.log"; exit 1; }

ask() {  # ask N STREAM: a chat completion through nginx
  curl -sf -H 'Content-Type: application/json' "$N/v1/chat/completions" \
    -d "{\"model\":\"nano\",\"max_tokens\":8,\"stream\":$2,\"messages\":[{\"role\":\"user\",\"content\":\"Sam has $1 cards. He gives 3 away. How many are left?\"}]}"
}
for i in 1 2 3 4; do ask $((10 + i)) false >"$T/answer$i.json"; done
check "answers come back through nginx" jq -e '.choices[0].message.content | type == "string"' "$T/answer1.json"
check "the routing decision rides along through nginx" jq -e '.cogumi.choice == "math"' "$T/answer2.json"
ask 20 true >"$T/stream.txt"
check "a streamed answer comes through nginx as SSE events ending with [DONE]" \
  bash -c "grep -c '^data: {' '$T/stream.txt' | awk '\$1 >= 2 {ok=1} END {exit !ok}' && tail -n 2 '$T/stream.txt' | grep -q 'data: \[DONE\]'"
check "nginx keeps /metrics private (404)" \
  bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code}' '$N/metrics')\" = 404 ]"
served() {  # chat completions answered by a replica, from its own /metrics
  curl -sf "http://127.0.0.1:$1/metrics" |
    awk '/^cogumi_requests_total\{endpoint="\/v1\/chat\/completions".*status="200"/ {s += $2} END {print s + 0}'
}
# A replica counts a request after the client's last byte: poll (up to 10 s) until all 5 are counted.
for _ in $(seq 50); do
  sa=$(served "$PORT_a"); sb=$(served "$PORT_b")
  [ $((sa + sb)) -ge 5 ] && break
  sleep 0.2
done
check "nginx spread the 5 requests over both replicas ($sa + $sb)" \
  bash -c "[ $sa -ge 1 ] && [ $sb -ge 1 ] && [ $((sa + sb)) -eq 5 ]"

# ---- Prometheus scraping both replicas, with the shipped alert rules ---------------
PROM_PORT=$(free_port)
mkdir -p "$T/prom"
cp "$D/prometheus/cogumi-alerts.yml" "$T/prom/"
cat >"$T/prom/prometheus.yml" <<CONF
global: {scrape_interval: 1s, evaluation_interval: 1s}
rule_files: [cogumi-alerts.yml]
scrape_configs:
  - job_name: cogumi
    static_configs:
      - targets: ['127.0.0.1:$PORT_a', '127.0.0.1:$PORT_b']
CONF
prometheus --config.file="$T/prom/prometheus.yml" --storage.tsdb.path="$T/prom/data" \
  --web.listen-address="127.0.0.1:$PROM_PORT" >"$T/prom.log" 2>&1 &
track $!
P="http://127.0.0.1:$PROM_PORT"
wait_for 60 curl -sf "$P/-/ready" || { echo "FAIL prometheus did not start"; tail -20 "$T/prom.log"; exit 1; }
query() { curl -sf "$P/api/v1/query" --data-urlencode "query=$1"; }
check "Prometheus scrapes both replicas: up == 1" \
  wait_for 30 bash -c "[ \"\$(curl -sf '$P/api/v1/query' --data-urlencode 'query=up{job=\"cogumi\"} == 1' | jq '.data.result | length')\" = 2 ]"
check "Prometheus sees the 5 answered chat completions" \
  wait_for 30 bash -c "[ \"\$(curl -sf '$P/api/v1/query' --data-urlencode 'query=sum(cogumi_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"})' | jq -r '.data.result[0].value[1]')\" = 5 ]"
ask 30 false >/dev/null
check "a new request shows up in Prometheus" \
  wait_for 30 bash -c "[ \"\$(curl -sf '$P/api/v1/query' --data-urlencode 'query=sum(cogumi_requests_total{endpoint=\"/v1/chat/completions\",status=\"200\"})' | jq -r '.data.result[0].value[1]')\" = 6 ]"
check "Prometheus sees routing per choice" \
  bash -c "query() { curl -sf '$P/api/v1/query' --data-urlencode \"query=\$1\"; }; [ \"\$(query 'sum(cogumi_routed_total{choice=\"math\"})' | jq -r '.data.result[0].value[1]')\" = 6 ]"
# Thumbs through nginx: the session is made on one replica, answered and rated on whichever
# nginx picks (the replicas share the session store); the rating reaches Prometheus.
sid=$(curl -sf -H 'Content-Type: application/json' "$N/v1/sessions" -d '{}' | jq -r .id)
turn=$(curl -sf -H 'Content-Type: application/json' "$N/v1/chat/completions" \
  -d "{\"model\":\"nano\",\"max_tokens\":8,\"cogumi\":{\"session\":\"$sid\"},\"messages\":[{\"role\":\"user\",\"content\":\"Sam has 9 cards. He gives 3 away. How many are left?\"}]}" |
  jq -r .cogumi.turn_id)
curl -sf -H 'Content-Type: application/json' "$N/v1/feedback" -d "{\"turn_id\":$turn,\"score\":-1}" >"$T/feedback.json"
check "a thumbs-down through nginx is stored (turn $turn)" jq -e ".turn_id == $turn" "$T/feedback.json"
check "Prometheus sees the thumbs-down" \
  wait_for 30 bash -c "[ \"\$(curl -sf '$P/api/v1/query' --data-urlencode 'query=sum(cogumi_feedback_total{score=\"down\"})' | jq -r '.data.result[0].value[1]')\" = 1 ]"
check "Prometheus loaded every shipped alert rule, all healthy" \
  bash -c "curl -sf '$P/api/v1/rules' | jq -e '[.data.groups[].rules[]] | length == $(grep -c -- '- alert:' "$D/prometheus/cogumi-alerts.yml") and all(.health == \"ok\")'"
# The alerts have `for:` durations, so a condition that holds shows as pending long before it fires: a
# healthy pair has neither, once every rule has been evaluated on the scraped series.
check "every alert rule has been evaluated" \
  wait_for 30 bash -c "curl -sf '$P/api/v1/rules' | jq -e '[.data.groups[].rules[] | select(.lastEvaluation | startswith(\"0001-\"))] | length == 0'"
check "no alert pending or firing on a healthy pair" \
  bash -c "curl -sf '$P/api/v1/alerts' | jq -e '[.data.alerts[] | select(.state == \"firing\" or .state == \"pending\")] | length == 0'"

# ---- every metric named in deploy/ is one the server exports ------------------------
curl -sf "http://127.0.0.1:$PORT_a/metrics" >"$T/scrape.txt"
{
  awk '/^# TYPE / {print $3; if ($4 == "histogram") {print $3 "_bucket"; print $3 "_sum"; print $3 "_count"}}' "$T/scrape.txt"
  echo up  # Prometheus' own
} | sort -u >"$T/exported.txt"
jq -r '.. | .expr? // empty' "$D/grafana/cogumi-dashboard.json" >"$T/exprs.txt"
grep -E '^\s*expr:|^\s{10,}' "$D/prometheus/cogumi-alerts.yml" >>"$T/exprs.txt"
grep -oE '\b(cogumi|process)_[a-z_]+' "$T/exprs.txt" | sort -u >"$T/named.txt"
check "deploy/ names $(wc -l <"$T/named.txt") metrics, all exported by the server" \
  bash -c "comm -23 '$T/named.txt' '$T/exported.txt' | tee /dev/stderr | wc -l | grep -qx 0"
check "the dashboard charts every cogumi metric the server exports" \
  bash -c "grep -oE '\b(cogumi)_[a-z_]+' '$T/exprs.txt' | sed -E 's/_(bucket|sum|count)\$//' | sort -u >'$T/charted.txt'; grep -E '^cogumi_' '$T/exported.txt' | grep -vE '_(bucket|sum|count)\$' | comm -23 - '$T/charted.txt' | tee /dev/stderr | wc -l | grep -qx 0"

finish
