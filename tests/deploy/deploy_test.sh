#!/usr/bin/env bash
# deploy/ checked by the tools that read it: promtool (scrape config, alert rules, the rules'
# unit tests, every dashboard query parsed as PromQL), jq (the Grafana dashboard is JSON with
# the fields Grafana imports), nginx -t (the replica config inside a minimal nginx.conf, in a
# temporary prefix). A missing tool fails with the package to install (scripts/deps.sh --test).
set -uo pipefail
REPO="$(cd "${1:-$(dirname "$0")/../..}" && pwd)"
D="$REPO/deploy"
. "$(dirname "$0")/../lib.sh"
need promtool prometheus
need nginx nginx
need jq jq

check "promtool check config" promtool check config "$D/prometheus/prometheus.yml"
check "promtool check rules" promtool check rules "$D/prometheus/cogumi-alerts.yml"
check "promtool test rules: every alert fires on its synthetic series" \
  bash -c "cd '$D/prometheus' && promtool test rules cogumi-alerts.test.yml"
# Every alert in the rules has a unit test.
alerts=$(grep -E '^\s*- alert:' "$D/prometheus/cogumi-alerts.yml" | awk '{print $3}' | sort -u)
tested=$(grep -E '^\s*alertname:' "$D/prometheus/cogumi-alerts.test.yml" | awk '{print $2}' | sort -u)
check "every alert has a promtool unit test" test "$alerts" = "$tested"

dash="$D/grafana/cogumi-dashboard.json"
check "dashboard is JSON with a uid, a title and panels" \
  jq -e '(.uid | type == "string") and (.title | type == "string") and (.panels | length > 10)' "$dash"
check "dashboard panel ids are unique" \
  jq -e '[.panels[].id] | length == (unique | length)' "$dash"
check "every dashboard panel but rows has a query" \
  jq -e '[.panels[] | select(.type != "row") | (.targets // []) | length > 0] | all' "$dash"
# Each panel query is valid PromQL: written as recording rules (Grafana's variables replaced by
# what they expand to) so promtool parses them.
{
  echo "groups:"
  echo "  - name: dashboard"
  echo "    rules:"
  jq -r '.panels[] | .targets // [] | .[] | .expr' "$dash" |
    sed -e 's/\$__rate_interval/5m/g' -e 's/\$job/.*/g' -e 's/\$instance/.*/g' |
    jq -R '.' | awk '{printf "      - record: dashboard:q%d\n        expr: %s\n", NR, $0}'
} >"$T/dashboard-rules.yml"
check "every dashboard query parses as PromQL" promtool check rules "$T/dashboard-rules.yml"

# nginx: the shipped http-context file inside a minimal main config, everything in a temp prefix.
nginx_conf "$T/nginx" 64 "  include $D/nginx/cogumi.conf;"
check "nginx -t accepts deploy/nginx/cogumi.conf" nginx -t -p "$T/nginx" -c "$T/nginx/nginx.conf"
# And nginx -t is a real check: a typo in the file is refused.
sed 's/least_conn;/least_con;/' "$D/nginx/cogumi.conf" >"$T/bad.conf"
sed "s|include $D/nginx/cogumi.conf|include $T/bad.conf|" "$T/nginx/nginx.conf" >"$T/nginx/bad-nginx.conf"
check "nginx -t refuses a broken copy" bash -c "! nginx -t -p '$T/nginx' -c '$T/nginx/bad-nginx.conf'"

finish
