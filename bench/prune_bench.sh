#!/usr/bin/env bash
# Structured pruning with recovery: per level, uniform (llama GGUF) and uneven (deci GGUF) prunes of
# MODEL, each recovered by `cogumi compress prune --recover-data` (a LoRA on the nano curriculum's
# training mix, merged). For each: size, prefill and decode tokens/s against the unpruned model in
# the same run, KLD / top-1 agreement against it on held-out dev text before and after recovery, and
# accuracy on the four nano test sets before and after recovery.
#
#   bench/prune_bench.sh BIN_DIR MODEL [WORK]
#     BIN_DIR: holds cogumi and cogumi-bench-engine (build/bin)
#     MODEL:   an F32/F16/BF16 llama GGUF (models/nano-base.gguf)
#   env: LEVELS ("0.1 0.2 0.3 0.5"), KINDS ("uniform uneven"), THREADS (2), NGL (0: CPU; 99 on a GPU), RECOVER (1; 0: prune only),
#        STEPS (recovery optimizer steps, 200), LR (recovery peak lr, 2e-3), FULL (0; 1: full SFT recovery),
#        EVAL (1; 0: no accuracy runs, e.g. for a random-init model), LIMIT (test items per domain, 300 = all of the nano's), TG (decode tokens, 32), PP (prefill, 128),
#        DATA (a `cogumi nano data` directory; made in WORK with the nano base's recipe when missing),
#        LOCK (a command prefix for each CPU-heavy step, e.g. "flock /tmp/cogumi-cpu.lock")
# Prints two markdown tables; raw results stay in WORK (speed.jsonl, *.prune.json, eval-* runs).
set -euo pipefail
BIN=${1:?usage: prune_bench.sh BIN_DIR MODEL [WORK]}
BASE=${2:?usage: prune_bench.sh BIN_DIR MODEL [WORK]}
WORK=${3:-runs/prune-bench}
LEVELS=${LEVELS:-0.1 0.2 0.3 0.5}
KINDS=${KINDS:-uniform uneven}
THREADS=${THREADS:-2}
NGL=${NGL:-0}
RECOVER=${RECOVER:-1}
STEPS=${STEPS:-200}
LR=${LR:-2e-3}
FULL=${FULL:-0}
LIMIT=${LIMIT:-300}
EVAL=${EVAL:-1}
PP=${PP:-128}
TG=${TG:-32}
LOCK=${LOCK:-}
mkdir -p "$WORK"
COGUMI="$BIN/cogumi"

# The curriculum the nano base was trained on (models/nano-base.json, data_recipe): its mix is the
# recovery data, its dev split the held-out text, its test split the accuracy.
DATA=${DATA:-$WORK/data}
[ -f "$DATA/mix/train.jsonl" ] || $LOCK "$COGUMI" nano data -o "$DATA" --seed 1 --n-train 12000 --n-mix 3000 \
  --n-dev 200 --n-test 300 --difficulty 2,math=1 >/dev/null
# Calibration: 400 training items as the model reads them; held-out: 40 dev items per domain.
python3 - "$DATA" "$WORK" <<'EOF'
import json, random, sys
data, work = sys.argv[1], sys.argv[2]
rows = [json.loads(l) for l in open(f"{data}/mix/train.jsonl")]
random.Random(1).shuffle(rows)
with open(f"{work}/calib.txt", "w") as f:
    for r in rows[:400]: f.write(r["prompt"] + r["completion"] + "\n\n")
with open(f"{work}/heldout.txt", "w") as f:
    for d in ["math", "code", "reasoning", "automation"]:
        for l in list(open(f"{data}/mix/dev/{d}.jsonl"))[:40]:
            r = json.loads(l); f.write(r["prompt"] + r["completion"] + "\n\n")
EOF

recover=()
if [ "$RECOVER" = 1 ]; then
  recover=(--recover-data "$DATA/mix/train.jsonl" --recover-steps "$STEPS" --recover-lr "$LR" --recover-batch 8
           --recover-seq-len 128)
  [ "$FULL" = 1 ] && recover+=(--recover-full)
fi
speed_of() { if [ "$RECOVER" = 1 ]; then echo "${1%.gguf}.unrecovered.gguf"; else echo "$1"; fi; }
N=$DATA
evaluate() {
  local run="$WORK/eval-$(basename "$1" .gguf)"
  [ -f "$run/summary.json" ] || "$COGUMI" eval -m "$1" --bench gsm8k="$N/math/test.jsonl" \
    --bench humaneval="$N/code/test.jsonl" --bench mmlu="$N/reasoning/reasoning_test.csv" \
    --bench bfcl="$N/automation/test.jsonl" -n 96 --parallel 64 --limit "$LIMIT" --threads "$THREADS" -o "$run" >/dev/null 2>&1
}
# One CPU-heavy step (run under $LOCK, a few minutes each): both prunes of one level, all speed
# runs (so every model is timed under the same conditions), or every accuracy run.
step() {
  case "$1" in
    prune)
      for kind in $KINDS; do
        out="$WORK/$kind-$2.gguf"
        [ -f "$out" ] || "$COGUMI" compress prune -m "$BASE" --calib "$WORK/calib.txt" --level "$2" --what ffn \
          "--$kind" --eval "$WORK/heldout.txt" --eval-chunks 16 --threads "$THREADS" "${recover[@]}" -o "$out" >/dev/null
      done ;;
    speed)
      # Two passes over the unpruned model and every pruned one (a recovered model has its pruned
      # model's shapes), the faster of each kept.
      rm -f "$WORK/speed.jsonl"
      for pass in 1 2; do
        for m in "$BASE" "${pruned[@]}"; do
          [ "$m" = "$BASE" ] || m=$(speed_of "$m")
          "$BIN/cogumi-bench-engine" -m "$m" --pp "$PP" --tg "$TG" --npl 1 --threads "$THREADS" --ngl "$NGL" --reps 2 \
            --json "$WORK/speed.jsonl" >/dev/null
        done
      done ;;
    eval)
      evaluate "$BASE"
      for m in "${pruned[@]}"; do
        evaluate "$(speed_of "$m")"
        if [ "$RECOVER" = 1 ]; then evaluate "$m"; fi
      done ;;
  esac
}
pruned=()
for L in $LEVELS; do for kind in $KINDS; do pruned+=("$WORK/$kind-$L.gguf"); done; done
if [ "${PRUNE_BENCH_STEP:-}" != "" ]; then step $PRUNE_BENCH_STEP; exit 0; fi
for L in $LEVELS; do PRUNE_BENCH_STEP="prune $L" $LOCK "$0" "$@"; done
PRUNE_BENCH_STEP=speed $LOCK "$0" "$@"
if [ "$EVAL" = 1 ]; then PRUNE_BENCH_STEP=eval $LOCK "$0" "$@"; fi

python3 - "$WORK" "$BASE" "$RECOVER" "${pruned[@]}" <<'EOF'
import json, math, os, sys
work, base, recover, pruned = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4:]
speed = {}
for l in open(f"{work}/speed.jsonl"):
    r = json.loads(l)
    o = speed.setdefault(r["model"], dict(r))
    o["s_pp"], o["s_tg"] = max(o["s_pp"], r["s_pp"]), max(o["s_tg"], r["s_tg"])
def unrec(m): return m[:-5] + ".unrecovered.gguf" if recover else m
def acc(m):
    p = f"{work}/eval-{os.path.basename(m)[:-5]}/summary.json"
    b = json.load(open(p))["benchmarks"]
    per = [b[k]["accuracy"] for k in ("gsm8k", "humaneval", "mmlu", "bfcl")]
    n = sum(b[k]["n"] if "n" in b[k] else b[k].get("items", 0) for k in ("gsm8k", "humaneval", "mmlu", "bfcl"))
    return per, n
def wilson(p, n, z=1.96):
    if n == 0: return (0, 0)
    d = 1 + z * z / n; c = (p + z * z / (2 * n)) / d; h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)
b0 = speed[base]
print("| model | arch | params | MiB | prefill t/s | decode t/s | KLD before -> after | same top before -> after | recovery loss |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
print(f"| {os.path.basename(base)} | llama | base | {os.path.getsize(base)/2**20:.2f} | "
      f"{b0['s_pp']:.0f} (1.00x) | {b0['s_tg']:.1f} (1.00x) | | | |")
for m in pruned:
    p = json.load(open(m[:-5] + ".prune.json"))
    s = speed[unrec(m)]
    q, qu = p.get("quality", {}), p.get("quality_unrecovered", p.get("quality", {}))
    rec = p.get("recovery")
    kld = f"{qu['kld_mean']:.3f} -> {q['kld_mean']:.3f}" if rec else f"{q['kld_mean']:.3f}"
    top = f"{100*qu['top1_agree']:.1f}% -> {100*q['top1_agree']:.1f}%" if rec else f"{100*q['top1_agree']:.1f}%"
    loss = f"{rec['first_loss']:.2f} -> {rec['last_loss']:.2f}" if rec else ""
    print(f"| {os.path.basename(m)[:-5]} | {p['arch']} | {p['params_after']/1e6:.2f}M (-{100*p['removed_fraction']:.0f}%) | "
          f"{os.path.getsize(m)/2**20:.2f} | {s['s_pp']:.0f} ({s['s_pp']/b0['s_pp']:.2f}x) | "
          f"{s['s_tg']:.1f} ({s['s_tg']/b0['s_tg']:.2f}x) | {kld} | {top} | {loss} |")
if not os.path.exists(f"{work}/eval-{os.path.basename(base)[:-5]}/summary.json"): sys.exit(0)
print()
print("| model | math | code | reasoning | automation | mean [95% CI] |")
print("|---|---:|---:|---:|---:|---:|")
def row(name, m):
    per, n = acc(m)
    mean = sum(per) / 4
    lo, hi = wilson(mean, n)
    print(f"| {name} | " + " | ".join(f"{100*x:.1f}" for x in per) + f" | {100*mean:.1f} [{100*lo:.1f}, {100*hi:.1f}] |")
row("base", base)
for m in pruned:
    n = os.path.basename(m)[:-5]
    row(n + (" before recovery" if recover else ""), unrec(m))
    if recover: row(n + " after recovery", m)
EOF
