#!/usr/bin/env bash
# Does the reasoning modifier learn to read the letter off the option it names when taught that alone?
# (bench/RESULTS.md, "The loop on the copying base", session 20.) Two modifiers of the main job's settings at a
# fixed 400 steps, on the main job's reasoning trainset (its mined failures twice, a tenth of the domain, a tenth
# of the general mix), one of them with N "which option says X" items in the same MMLU prompt format (the target
# the option and its letter); both on the reasoning dev split, then per arm: options named right, letters right,
# letters that match the named option.
# Session 20 ran it with its own Python copy of the lookup items (options from the training CSV); since session 23
# the items are the curriculum's (`cogumi nano data --n-choice`), and the letter is the one eval read and scored.
# Usage: bench/reasoning_lookup.sh RUN_DIR [N]   (RUN_DIR: a finished `cogumi run configs/nano.yaml --dir RUN_DIR`)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
RUN=$1
N=${2:-3000}
T="${BENCH_DIR:-/tmp/cogumi-reasoning-lookup}"
mkdir -p "$T"
D=$(ls -d "$RUN"/stages/data-*/data | head -1)
F=$(ls "$RUN"/stages/failures-*/reasoning.jsonl | head -1)
# The curriculum's option-lookup items (`cogumi nano data --n-choice N`: their own stream, the reasoning prompt frame).
ARGS=$(python3 bench/curriculum_args.py)
[ -f "$T/lookup-$N/mix/choice.jsonl" ] || "$COGUMI" nano data -o "$T/lookup-$N" $ARGS --n-choice "$N" >/dev/null
arm() {  # NAME [extra train args]
  local name=$1; shift
  [ -f "$T/$name.gguf" ] || "$COGUMI" train -m models/nano-base.gguf -d "$F:2" -d "$D/mix/reasoning.jsonl:0.1" \
    -d "$D/mix/train.jsonl:0.1" "$@" --val-data "$D/mix/dev/reasoning.jsonl" --lora-rank 16 --lora-alpha 16 \
    --targets q,k,v,o,gate,up,down --seq-len 128 --pack --batch 16 --max-steps 400 --lr 2e-3 --warmup 10 \
    --eval-steps 25 --patience 0 -o "$T/$name.gguf" >"$T/$name.train.log" 2>&1
  [ -f "$T/$name-dev/summary.json" ] || "$COGUMI" eval -m models/nano-base.gguf --lora "r=$T/$name.gguf" --adapter r \
    --bench "mmlu=$D/reasoning/reasoning_dev.csv" -n 96 --parallel 64 -o "$T/$name-dev" >"$T/$name.eval.log" 2>&1
}
arm without
arm with -d "$T/lookup-$N/mix/choice.jsonl:1"
python3 - "$T/without-dev" "$T/with-dev" <<'PY'
import json, re, sys
print("| arm | dev items | accuracy | option named right | letter right | letter = the named option's |")
print("|---|---:|---:|---:|---:|---:|")
for run in sys.argv[1:]:
    n = named = letter = same = 0
    for line in open(f"{run}/items.jsonl"):
        j = json.loads(line)
        opts = dict(re.findall(r"\n([ABCD])\. (.*)", j["prompt"]))
        said = j["output"].strip().split("\n")[0].strip()
        got = j["extracted"] or None  # the letter eval read (its flexible extraction), as it scored the item
        n += 1
        named += said == opts.get(j["reference"])
        letter += bool(j["correct"])
        same += got is not None and opts.get(got) == said
    print(f"| {run.split('/')[-1][:-4]} | {n} | {100 * letter / n:.1f}% | {named} | {letter} | {same} |")
PY
