#!/usr/bin/env bash
# Prompts that start alike reuse each other's KV cache (src/engine/generate.cpp: requests sorted by
# prompt and dealt to the slots in lanes, each slot keeping its finished prompt's cache): `cogumi eval`
# with it and with `--no-prefix-cache` (every prompt decoded whole), on the same model and items, one
# after the other, best of REPS each. Sets:
#   mine   the nano main job's mining set: 2,400 training items of each of math (GSM8K format),
#          reasoning (MMLU CSV) and automation (BFCL tool calls) of the shipped curriculum, zero-shot
#          (the `mine` stage of configs/nano.yaml: --skip 3000 --max-tokens 96 --parallel 64)
#   mmlu5  real MMLU test questions 5-shot (datasets/mmlu: the subject's five dev questions before each
#          question, so the prompts of one subject share ~85% of their tokens), 5 answer tokens
# Prints seconds, prompt tokens decoded (of those asked), items whose output differs between the two.
# CONTROL=P adds a third run per set, cache off again at --parallel P instead of 64: how many outputs the batch
# composition alone changes (compared with the first cache-off run), the noise floor for the cache's own count.
# Usage: bench/prefix_cache_bench.sh [COGUMI] [MODEL] [WORK_DIR]   env: SETS ("mine mmlu5"), REPS (2),
#        MMLU_LIMIT (1000 per subject file set: the first N test questions), CONTROL (unset: no third run)
set -euo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
COGUMI=${1:-$R/build/bin/cogumi} MODEL=${2:-$R/models/nano-base.gguf} W=${3:-/tmp/prefix-cache-bench}
SETS=${SETS:-mine mmlu5} REPS=${REPS:-2} MMLU_LIMIT=${MMLU_LIMIT:-1000} CONTROL=${CONTROL:-}
if [ -n "$CONTROL" ] && ! [[ "$CONTROL" =~ ^[0-9]+$ && "$CONTROL" -ge 1 && "$CONTROL" -le 1024 ]]; then
  echo "prefix_cache_bench.sh: CONTROL must be a --parallel value in 1..1024, got '$CONTROL'" >&2; exit 2
fi
mkdir -p "$W"
[ -f "$W/data/manifest.json" ] || "$COGUMI" nano data -o "$W/data" $(python3 "$R/bench/curriculum_args.py") >/dev/null
D=$W/data
args_for() {  # args_for SET [PARALLEL]
  local par=${2:-64}
  case $1 in
    mine) echo "--bench gsm8k=$D/math/train.jsonl --bench mmlu=$D/reasoning/reasoning_train.csv"\
      "--bench bfcl=$D/automation/train.jsonl --limit 2400 --skip 3000 --max-tokens 96 --parallel $par" ;;
    mmlu5) echo "--bench mmlu=$R/datasets/mmlu/test --shots 5 --shots-from mmlu=$R/datasets/mmlu/dev"\
      "--limit $MMLU_LIMIT --max-tokens 5 --parallel $par" ;;
    *) echo "prefix_cache_bench.sh: unknown set '$1'" >&2; exit 2 ;;
  esac
}
echo "| set | prefix cache | seconds (best of $REPS) | prompt tokens decoded | of those asked | outputs differing |"
echo "|---|---|---:|---:|---:|---:|"
for set in $SETS; do
  modes="on off"; [ -n "$CONTROL" ] && modes="on off off$CONTROL"
  for mode in $modes; do
    flag=""; par=64
    case $mode in off) flag=--no-prefix-cache ;; off*) flag=--no-prefix-cache par=$CONTROL ;; esac
    best=""
    for rep in $(seq "$REPS"); do
      rm -rf "$W/$set-$mode"
      # shellcheck disable=SC2046
      "$COGUMI" eval -m "$MODEL" $(args_for "$set" $par) $flag -o "$W/$set-$mode" >"$W/$set-$mode.log" 2>&1 ||
        { tail -5 "$W/$set-$mode.log" >&2; exit 1; }
      s=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run"]["seconds"])' "$W/$set-$mode/summary.json")
      if [ -z "$best" ] || python3 -c "import sys; sys.exit(0 if $s < $best else 1)"; then best=$s; fi
    done
    ref=$W/$set-on; [ $mode != on ] && [ $mode != off ] && ref=$W/$set-off
    python3 - "$W/$set-$mode" "$ref" "$set" "$mode" "$best" <<'PY'
import json, sys
run, ref, name, mode, best = sys.argv[1:]
s = json.load(open(f"{run}/summary.json"))["run"]
items = [json.loads(l) for l in open(f"{run}/items.jsonl")]
# prompts over the context are refused, not decoded (failure type "error"): not counted as asked
asked = sum(i["n_prompt_tokens"] for i in items if i.get("failure_type") != "error")
refused = sum(1 for i in items if i.get("failure_type") == "error")
diff = "-"
if mode != "on":  # "off" against the cache-on run; "offP" (the control) against "off"
    key = lambda i: (i["benchmark"], i["id"], i.get("sample", 0))
    on = {key(i): i["output"] for i in map(json.loads, open(f"{ref}/items.jsonl"))}
    diff = sum(1 for i in items if on.get(key(i)) != i["output"])
name += f", {refused} over the context" if refused else ""
label = {"on": "on", "off": "off"}.get(mode, f"off, --parallel {mode[3:]} (vs off)")
print(f"| {name} ({len(items)} items) | {label} | {float(best):.1f} | {s['prompt_tokens']:,} | {asked:,} | {diff} |")
PY
  done
done
