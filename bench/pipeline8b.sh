#!/usr/bin/env bash
# The pipeline smoke run on an 8B-shaped model (issue 13): configs/llama-3.1-8b.yaml's settings (ranks
# 128/112/96, lr 3e-6, patience 3, 5% validation) on a random-init Llama-3.1-8B-shaped F16 GGUF, every
# stage run (base evaluated, failures mined and clustered, four modifiers trained and evaluated, router,
# calibration, routed system, gates, report) on small samples, with each stage's time from events.jsonl.
# Random weights answer nothing right: this checks that every stage runs at this size on the GPU and
# what each costs, not quality. The files the plan's config expects from the user (MBPP, BBH, BFCL) are
# replaced by the nano curriculum's code and tool-call sets in the same upstream formats.
#
# Since session 32 also the config's compress stages (the base quantized to Q5_K_M with an importance matrix, the
# modifiers cut to rank 64 by SVD, KLD/agreement against the F16 base, the compressed system on the test samples,
# the base packed), with GSM8K's text standing in for the WikiText-2 files the config asks the user for.
#
# Usage: bench/pipeline8b.sh COGUMI VOCAB.gguf OUT_DIR [WORK_DIR]   (bench/device.sh pipeline8b runs it)
#   env: TEST_LIMIT (16) MINE_LIMIT (32) STEPS (6) SEQ (512) CALIB_CHUNKS (32) MEASURE_CHUNKS (16)
#        PIPE_TIMEOUT (0: none; a rerun in the same WORK_DIR resumes, reusing the finished stages)
set -euo pipefail
COGUMI=$(realpath "$1") VOCAB=$(realpath "$2") OUT=$3 W=${4:-/root/p8}
TEST_LIMIT=${TEST_LIMIT:-16} MINE_LIMIT=${MINE_LIMIT:-32} STEPS=${STEPS:-6} SEQ=${SEQ:-512}
R=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$W" "$OUT"
M=$W/m8b-f16.gguf
if [ ! -f "$M" ]; then
  /usr/bin/time -f "model init: %e s" "$COGUMI" model init "$M" --shape 8b --type f16 --vocab "$VOCAB" --seed 1 >/dev/null
fi
[ -f "$W/nano/manifest.json" ] || "$COGUMI" nano data -o "$W/nano" --seed 1 --n-train 200 --n-dev 50 --n-test 50 >/dev/null
cat >"$W/p8.yaml" <<YAML
name: llama-3.1-8b-smoke
work_dir: $W/run
base:
  gguf: $M
eval:
  test_limit: $TEST_LIMIT
  mine_limit: $MINE_LIMIT
  max_tokens: 64
  parallel: 64
failures:
  cluster: true
  k_max: 8
  embeddings: 0.5
training:
  rank: 64
  lr: 3.0e-6
  steps: $STEPS
  batch: 1
  seq_len: $SEQ
  eval_steps: 3
  patience: 3
  val_split: 0.05
  warmup: 2
  domain_share: 0.5
  replay: 0.0
domains:
  math:
    test: {gsm8k: $R/datasets/gsm8k/test.jsonl}
    mine: {gsm8k: $R/datasets/gsm8k/train.jsonl}
  code:
    test: {humaneval: $R/datasets/humaneval/HumanEval.jsonl.gz}
    mine: {humaneval: $W/nano/code/train.jsonl}
    train: {rank: 128}
  reasoning:
    test: {mmlu: $R/datasets/mmlu/test}
    mine: {mmlu: $R/datasets/mmlu/dev}
    train: {rank: 112}
  automation:
    test: {bfcl: $W/nano/automation/test.jsonl}
    mine: {bfcl: $W/nano/automation/train.jsonl}
    train: {rank: 96}
router:
  holdout: 0.2
  epochs: 10
runtime:
  threshold: 0.8
  escalation: accurate
gates:
  - every domain >= base + 10
  - every other domain >= base - 5
  - routed every domain >= best
  - router.accuracy >= 0.97
  - size_mb <= 20000
  - compress.agreement >= 0.95
  - compress.kld <= 0.05
  - compress.accuracy_delta >= -2
  - compress.size_mb <= 8000
compress:                   # configs/llama-3.1-8b.yaml's, with GSM8K text for the calibration and KLD files it
  quantize: q5_k_m          # asks the user for (WikiText-2), and fewer chunks
  imatrix: $R/datasets/gsm8k/train.jsonl
  tensor_types: {output: q8_0}
  lora_rank: 64
  pack: true
  measure: {data: $R/datasets/gsm8k/test.jsonl, ctx: 512, chunks: ${MEASURE_CHUNKS:-16}}
  calib: {ctx: 512, chunks: ${CALIB_CHUNKS:-32}}
YAML
"$COGUMI" run "$W/p8.yaml" --dry-run | tail -30
# PIPE_TIMEOUT (seconds, 0: none) stops the run before the device call's own limit, so the stage times so far
# still come back (a rerun resumes: finished stages are reused).
# The log goes straight to $OUT (no pipe that a kill would leave unflushed); the events and the stage
# times are copied on any exit, the device call's own timeout included.
save() {
  cp "$W/p8.yaml" "$W/run/events.jsonl" "$W/run/report.md" "$OUT/" 2>/dev/null || true
}
trap save EXIT
trap 'save; exit 124' TERM INT
/usr/bin/time -f "pipeline: %e s wall, %M KB max RSS" -o "$OUT/time.txt" timeout "${PIPE_TIMEOUT:-0}" \
  "$COGUMI" run "$W/p8.yaml" >"$OUT/pipeline8b.txt" 2>&1 || true
tail -40 "$OUT/pipeline8b.txt"; cat "$OUT/time.txt"
save
# Seconds per stage (events.jsonl: one line per stage start/finish)
python3 - "$W/run/events.jsonl" <<'PY' | tee "$OUT/stage_times.md"
import json, sys
t = {}
for line in open(sys.argv[1]):
    e = json.loads(line)
    if e.get("seconds") is not None and e.get("stage"):
        t[e["stage"]] = t.get(e["stage"], 0) + float(e["seconds"])
print("| stage | seconds |\n|---|---:|")
for k, v in t.items(): print(f"| {k} | {v:.1f} |")
print(f"| total | {sum(t.values()):.1f} |")
PY
