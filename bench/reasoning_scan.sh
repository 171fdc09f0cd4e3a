#!/usr/bin/env bash
# Does an answer format that scans the options teach the reasoning modifier the letter? (bench/RESULTS.md,
# "Scanning the options instead of looking the letter up", session 32.) The base names the right option about half
# the time but writes that option's letter only about half the time it names one (the lookup behind "Answer: X"
# is a search of the prompt for the named text). Here the modifier's targets say the options back in order, each
# judged, up to the right one, so the letter is the one on the line just written (bench/reasoning_scan.py):
#   first: " A. Olga - no\nB. Yara - yes\nAnswer: B"        named: " Yara\nA. Olga - no\nB. Yara - yes\nAnswer: B"
# Each arm: the main job's reasoning trainset (its mined failures twice, a tenth of the domain, a tenth of the
# general mix; every multiple-choice completion rewritten, dev too) and train.reasoning's settings (400 steps,
# patience 4), then the reasoning dev split, as eval scores it, against the run's own dev.base and dev.reasoning.
# Usage: bench/reasoning_scan.sh RUN_DIR   (RUN_DIR: a finished `cogumi run configs/nano.yaml --dir RUN_DIR`)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
RUN=$1
T="${BENCH_DIR:-/tmp/cogumi-reasoning-scan}"
mkdir -p "$T"
D=$(ls -d "$RUN"/stages/data-*/data | head -1)
F=$(ls "$RUN"/stages/failures-*/reasoning.jsonl | head -1)
arm() {  # STYLE
  local s=$1
  python3 bench/reasoning_scan.py "$s" "$F" "$T/$s-fail.jsonl" "$D/mix/reasoning.jsonl" "$T/$s-domain.jsonl" \
    "$D/mix/train.jsonl" "$T/$s-replay.jsonl" "$D/mix/dev/reasoning.jsonl" "$T/$s-dev.jsonl"
  [ -f "$T/$s.gguf" ] || "$COGUMI" train -m models/nano-base.gguf -d "$T/$s-fail.jsonl:2" -d "$T/$s-domain.jsonl:0.1" \
    -d "$T/$s-replay.jsonl:0.1" --val-data "$T/$s-dev.jsonl" --lora-rank 16 --lora-alpha 16 \
    --targets q,k,v,o,gate,up,down --seq-len 128 --pack --batch 16 --max-steps 400 --lr 2e-3 --warmup 10 \
    --eval-steps 25 --patience 4 -o "$T/$s.gguf" >"$T/$s.train.log" 2>&1
  [ -f "$T/$s-dev/summary.json" ] || "$COGUMI" eval -m models/nano-base.gguf --lora "r=$T/$s.gguf" --adapter r \
    --bench "mmlu=$D/reasoning/reasoning_dev.csv" -n 96 --parallel 64 -o "$T/$s-dev" >"$T/$s.eval.log" 2>&1
}
arm first
arm named
python3 - "$(ls -d "$RUN"/stages/dev.base-*/run)" "$(ls -d "$RUN"/stages/dev.reasoning-*/run)" "$T/first-dev" \
  "$T/named-dev" <<'PY'
import json, re, sys
print("| model (reasoning dev) | items | right | first line names the right option | scan lines copied exactly |")
print("|---|---:|---:|---:|---:|")
for run in sys.argv[1:]:
    n = right = named = lines = exact = 0
    for line in open(f"{run}/items.jsonl"):
        r = json.loads(line)
        if r.get("category") != "reasoning":
            continue
        opts = dict(re.findall(r"\n([A-Z])\. ([^\n]*)", r["prompt"]))
        n += 1
        right += bool(r["correct"])
        named += r["output"].split("\n")[0].strip() == opts.get(r["reference"])
        for letter, text in re.findall(r"(?m)^ ?([A-Z])\. (.*?) - (?:yes|no)$", r["output"]):
            lines += 1
            exact += opts.get(letter) == text
    print(f"| {run} | {n} | {right} | {named} | {exact} of {lines} |")
PY
