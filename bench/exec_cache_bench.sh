#!/usr/bin/env bash
# The code-run cache (eval/exec_cache.h) against running every program: HumanEval's 164 canonical solutions
# (right) and 164 `return None` bodies (wrong), scored with `cogumi eval --responses` (no model: the time is the
# sandbox's), first without the cache, then with a new cache (every program runs and is stored), then with it
# again (every program from the cache). Same run, same machine; the scores must agree.
# Usage: bench/exec_cache_bench.sh   (builds what it needs; markdown on stdout)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI=$(scripts/build.sh | tail -n 1)
T="${BENCH_DIR:-/tmp/cogumi-exec-cache-bench}"
rm -rf "$T" && mkdir -p "$T"
HE=datasets/humaneval/HumanEval.jsonl.gz
python3 - "$HE" "$T/responses.jsonl" <<'PY'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as f, open(sys.argv[2], "w") as out:
    for line in f:
        t = json.loads(line)
        out.write(json.dumps({"task_id": t["task_id"], "completion": t["canonical_solution"]}) + "\n")
PY
python3 - "$HE" "$T/wrong.jsonl" <<'PY'
import gzip, json, sys
with gzip.open(sys.argv[1], "rt") as f, open(sys.argv[2], "w") as out:
    for line in f:
        t = json.loads(line)
        out.write(json.dumps({"task_id": t["task_id"], "completion": "    return None\n"}) + "\n")
PY
run() {  # run NAME RESPONSES [--exec-cache FILE]: prints "| NAME | seconds | correct | cached | ran |"
  local name=$1 resp=$2; shift 2
  "$COGUMI" eval --bench humaneval=$HE --responses "$resp" --out "$T/$name" "$@" >/dev/null
  python3 - "$T/$name/summary.json" "$name" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = s["run"]; c = r.get("sandbox", {})
print(f"| {sys.argv[2]} | {r['seconds']:.2f} | {s['benchmarks']['humaneval']['correct']} | {c.get('cached', '-')} | {c.get('ran', r['items_this_run'])} |")
PY
}
echo "| run (164 programs each) | seconds | correct | from the cache | run |"
echo "|---|---:|---:|---:|---:|"
for kind in responses wrong; do
  run "$kind-no-cache" "$T/$kind.jsonl"
  run "$kind-cache-cold" "$T/$kind.jsonl" --exec-cache "$T/cache.sqlite"
  run "$kind-cache-warm" "$T/$kind.jsonl" --exec-cache "$T/cache.sqlite"
done
