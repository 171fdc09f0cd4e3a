#!/usr/bin/env bash
# Can the shipped nano base learn to read the letter off the option it names? (bench/RESULTS.md, "Reading the letter
# off the named option", session 22.) Continued full-parameter training of models/nano-base.gguf on its own mix, with
# and without the curriculum's option-lookup items (`cogumi nano data --n-choice 6000`), then on the dev splits (200
# items per domain) and on lookup items of another seed (300 drawn, those that repeat a training item dropped):
# accuracy, options named right, letters right, letters that match the named option. Dev only: no base is chosen here. About 40 minutes on 2 CPU cores.
# Usage: bench/choice_lookup_cpu.sh   (BENCH_DIR: work directory, default /tmp/cogumi-choice-lookup)
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
T="${BENCH_DIR:-/tmp/cogumi-choice-lookup}"
mkdir -p "$T"
ARGS=$(python3 bench/curriculum_args.py)
# The shipped curriculum (control) and the same with 6,000 lookup items (domain files identical: own stream).
[ -f "$T/plain/manifest.json" ] || "$COGUMI" nano data -o "$T/plain" $ARGS >/dev/null
[ -f "$T/data/manifest.json" ] || "$COGUMI" nano data -o "$T/data" $ARGS --n-choice 6000 >/dev/null
# Held-out lookup items (seed 2) as an MMLU CSV whose subject is "reasoning", so eval asks them in the same frame.
if [ ! -f "$T/probe/reasoning_test.csv" ]; then
  "$COGUMI" nano data -o "$T/probe-data" --seed 2 --n-train 10 --n-dev 10 --n-test 10 --n-mix 10 --n-choice 300 >/dev/null
  mkdir -p "$T/probe"
  # Held out: a probe prompt that is also one of the training lookup items (a few repeat: the cast is small) is dropped.
  python3 - "$T/probe-data/mix/choice.jsonl" "$T/probe/reasoning_test.csv" "$T/data/mix/choice.jsonl" <<'PY'
import csv, json, re, sys
seen = {json.loads(line)["prompt"] for line in open(sys.argv[3])}
w = csv.writer(open(sys.argv[2], "w"))
w.writerow(["question", "choice0", "choice1", "choice2", "choice3", "answer"])
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["prompt"] in seen:
        continue
    q = re.search(r"\n\n(Which option says: [^\n]*)\n", d["prompt"]).group(1)
    opts = [o for _, o in re.findall(r"\n([ABCD])\. ([^\n]*)", d["prompt"])]
    w.writerow([q] + opts + ["ABCD".index(d["completion"][-1])])
PY
fi
full() {  # NAME INIT STEPS WARMUP SEED DATA...: continued full-parameter training, the base's own batch and row length
  local name=$1 init=$2 steps=$3 warmup=$4 seed=$5; shift 5
  [ -f "$T/$name.gguf" ] && return
  "$COGUMI" train -m "$init" --full "$@" --pack --seq-len 128 --batch 64 --max-steps "$steps" --lr 1e-3 --warmup "$warmup" \
    --seed "$seed" -o "$T/$name-f32.gguf" >"$T/$name.train.log" 2>&1
  "$COGUMI" model quantize "$T/$name-f32.gguf" "$T/$name.gguf" --type f16 >/dev/null
}
full ctl models/nano-base.gguf 300 20 1 -d "$T/plain/mix/train.jsonl"
full with models/nano-base.gguf 300 20 1 -d "$T/data/mix/train.jsonl"
full with2 "$T/with-f32.gguf" 600 10 2 -d "$T/data/mix/train.jsonl" -d "$T/data/mix/choice.jsonl:1"  # 900 steps in all
for m in ship ctl with with2; do
  M="$T/$m.gguf"
  [ $m = ship ] && M=models/nano-base.gguf
  D="$T/plain"
  [ -f "$T/$m-dev/summary.json" ] || "$COGUMI" eval -m "$M" --bench gsm8k=$D/math/dev.jsonl --bench humaneval=$D/code/dev.jsonl \
    --bench mmlu=$D/reasoning/reasoning_dev.csv --bench bfcl=$D/automation/dev.jsonl -n 96 --parallel 64 -o "$T/$m-dev" >/dev/null 2>&1
  [ -f "$T/$m-probe/summary.json" ] || "$COGUMI" eval -m "$M" --bench mmlu="$T/probe/reasoning_test.csv" -n 48 --parallel 64 \
    -o "$T/$m-probe" >/dev/null 2>&1
done
python3 - "$T" <<'PY'
import json, re, sys
T = sys.argv[1]
def lookup(run):
    n = named = letter = same = 0
    for line in open(f"{run}/items.jsonl"):
        j = json.loads(line)
        if j["kind"] != "multiple_choice":
            continue
        opts = dict(re.findall(r"\n([ABCD])\. ([^\n]*)", j["prompt"]))
        said = j["output"].strip().split("\n")[0].strip()
        m = re.search(r"Answer: ([ABCD])(?![A-Za-z])", j["output"])  # not the C of "Answer: Cannot tell"
        got = m.group(1) if m else None
        n += 1
        named += said == opts.get(j["reference"])
        letter += got == j["reference"]
        same += got is not None and opts.get(got) == said
    return f"{named} / {letter} / {same} of {n}"
print("| base (dev) | math | code | reasoning | automation | reasoning: named right / letter right / letter = named's | held-out lookup items: the same |")
print("|---|---:|---:|---:|---:|---|---|")
for m in ["ship", "ctl", "with", "with2"]:
    s = json.load(open(f"{T}/{m}-dev/summary.json"))["benchmarks"]
    acc = [f"{100 * s[b]['accuracy']:.1f}" for b in ["gsm8k", "humaneval", "mmlu", "bfcl"]]
    print(f"| {m} | " + " | ".join(acc) + f" | {lookup(f'{T}/{m}-dev')} | {lookup(f'{T}/{m}-probe')} |")
PY
