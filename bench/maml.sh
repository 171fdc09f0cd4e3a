#!/usr/bin/env bash
# MAML (Phase 7A) on the nano: 1/3/5-shot exact-match accuracy on held-out task families.
#   bench/maml.sh [WORK_DIR]          (default runs/maml-bench; about 15 min of CPU on 2 cores)
#
# 1. The nano curriculum (the base's own recipe, models/nano-base.json) as task-family files:
#    task = the generator template. Four families, one per domain, are held out of all training:
#    their dev items choose settings, their test items give the table.
# 2. FOMAML adapter (cogumi train --maml) on the other families' train items, and a plain multitask
#    LoRA (cogumi train) on the same items, same rank/targets/outer lr, about the same CPU time.
# 3. Dev: MAML's inner lr and the multitask adapter's test-time lr from {0.3, 1.0} (mean accuracy over k).
# 4. Test: every method on the same episodes (bench/maml_table.py prints the table).
# Each CPU-heavy step holds /tmp/cogumi-cpu.lock (the shared machine's rule).
set -euo pipefail
cd "$(dirname "$0")/.."
W=${1:-runs/maml-bench}
BIN=build/bin
BASE=models/nano-base.gguf
HELD=math/1-step/count+share,code/t2-16,reasoning/ordering,automation/set_timer
# MAML_LOCK="" when the whole script already runs under the lock (flock LOCK bash bench/maml.sh).
LOCK=${MAML_LOCK-flock /tmp/cogumi-cpu.lock}
THREADS=2
META_STEPS=${META_STEPS:-60}
MT_STEPS=${MT_STEPS:-300}
META_LRS=${META_LRS:-"0.3 1.0"}
mkdir -p "$W"

if [ ! -f "$W/data/manifest.json" ]; then
  $LOCK $BIN/cogumi nano data -o "$W/data" --seed 1 --n-train 12000 --n-mix 3000 --n-dev 200 --n-test 300 --difficulty 2,math=1
fi
$BIN/cogumi-bench-maml tasks --data "$W/data" --split train --exclude "$HELD" -o "$W/train.jsonl"
$BIN/cogumi-bench-maml tasks --data "$W/data" --split dev --families "$HELD" -o "$W/dev.jsonl"
$BIN/cogumi-bench-maml tasks --data "$W/data" --split test --families "$HELD" -o "$W/test.jsonl"

# Meta-training: 4 tasks per meta-step, 5 support + 8 query each, 3 inner SGD steps at LR (one
# adapter per inner lr; dev picks one).
for lr in $META_LRS; do
  [ -f "$W/maml-$lr.gguf" ] && continue
  /usr/bin/time -f "maml train (inner lr $lr): %e s wall, %U s user" $LOCK $BIN/cogumi train --maml -m $BASE \
    -d "$W/train.jsonl" --task-field task -o "$W/maml-$lr.gguf" --max-steps "$META_STEPS" --meta-batch 4 --shots 5 \
    --query 8 --inner-steps 3 --inner-lr $lr --lr 1e-3 --lora-rank 16 --lora-alpha 16 --targets q,v --seq-len 128 \
    --cpu --threads $THREADS
done
# The multitask baseline: the same items as plain SFT (8 packed rows a step).
if [ ! -f "$W/multitask.gguf" ]; then
  /usr/bin/time -f "multitask train: %e s wall, %U s user" $LOCK $BIN/cogumi train -m $BASE -d "$W/train.jsonl" \
    -o "$W/multitask.gguf" --max-steps "$MT_STEPS" --batch 8 --pack --lr 1e-3 --schedule constant \
    --lora-rank 16 --lora-alpha 16 --targets q,v --seq-len 128 --cpu --threads $THREADS
fi

EVAL=($BIN/cogumi-bench-maml eval -m $BASE --multitask "$W/multitask.gguf"
      --lora-rank 16 --lora-alpha 16 --targets q,v --shots 1,3,5 --query 16 --threads $THREADS
      --maml-inner-steps 3 --multitask-inner-steps 3)
# Dev: MAML's inner lr (training = test time) and the multitask adapter's test-time lr, each the
# best mean accuracy over k on the held-out families' dev items. Retrieval has no setting.
best_maml=1.0 best_mt=1.0 s_maml=-1 s_mt=-1
for lr in $META_LRS; do
  [ -f "$W/dev-$lr.jsonl" ] || $LOCK "${EVAL[@]}" --maml "$W/maml-$lr.gguf" -d "$W/dev.jsonl" -o "$W/dev-$lr.jsonl" \
    --episodes 2 --maml-inner-lr $lr --multitask-inner-lr $lr --no-retrieval --seed 2
  read -r m mt < <(python3 bench/maml_table.py --select "$W/dev-$lr.jsonl" |
                   awk '$1=="maml"{m=$2} $1=="multitask"{t=$2} END{print m, t}')
  echo "dev inner lr $lr: maml $m, multitask $mt"
  if python3 -c "import sys; sys.exit(0 if $m > $s_maml else 1)"; then s_maml=$m best_maml=$lr; fi
  if python3 -c "import sys; sys.exit(0 if $mt > $s_mt else 1)"; then s_mt=$mt best_mt=$lr; fi
done
echo "chosen on dev: maml inner lr $best_maml, multitask inner lr $best_mt"
/usr/bin/time -f "test eval: %e s wall, %U s user" $LOCK "${EVAL[@]}" --maml "$W/maml-$best_maml.gguf" -d "$W/test.jsonl" \
  -o "$W/test.jsonl.out" --episodes 4 --maml-inner-lr "$best_maml" --multitask-inner-lr "$best_mt" --seed 1
python3 bench/maml_table.py "$W/test.jsonl.out" | tee "$W/table.md"
