#!/usr/bin/env bash
# Structured pruning: per level, the pruned model's size, prefill and decode tokens/s against the
# unpruned model in the same run, KLD / top-1 agreement against it on held-out curriculum text
# (`cogumi compress report`), and with RECOVER=1 (llama-architecture prunes only: the trainer reads
# no deci) nano accuracy before and after a short recovery LoRA on curriculum data, merged.
#
#   bench/prune_bench.sh BIN_DIR MODEL [WORK]
#     BIN_DIR: holds cogumi and cogumi-bench-engine (build/bin)
#     MODEL:   an F32/F16/BF16 llama GGUF (models/nano-base.gguf), or "random:ARGS" for a random-init
#              model made by `cogumi model init ARGS` (e.g. "random:--n-embd 1024 --n-layer 8 ...")
#   env: LEVELS ("0.1 0.2 0.3 0.5"), THREADS (2), NGL (0: CPU; 99 on a GPU), RECOVER (0|1), EVAL
#        (accuracy of the base, uniform and recovered models; default: RECOVER),
#        STEPS (recovery LoRA optimizer steps, 60), LIMIT (eval items per benchmark, 100), DATA (a
#        `cogumi nano data` directory; made in WORK when missing), TG (decode tokens, 32), PP (128),
#        WHAT (structures of the uneven/deci prune, ffn; the uniform one prunes ffn)
#   On the H200 (device tool): build with CUDA, then the same command with NGL=99 THREADS=16 and
#   larger STEPS/LIMIT, e.g. `NGL=99 RECOVER=1 STEPS=500 LIMIT=300 bench/prune_bench.sh build/bin models/nano-base.gguf`.
# Prints one markdown table; raw results stay in WORK (speed.jsonl, report.json, *.prune.json, eval runs).
set -euo pipefail
BIN=${1:?usage: prune_bench.sh BIN_DIR MODEL [WORK]}
MODEL=${2:?usage: prune_bench.sh BIN_DIR MODEL [WORK]}
WORK=${3:-runs/prune-bench}
LEVELS=${LEVELS:-0.1 0.2 0.3 0.5}
THREADS=${THREADS:-2}
NGL=${NGL:-0}
RECOVER=${RECOVER:-0}
EVAL=${EVAL:-$RECOVER}
STEPS=${STEPS:-60}
LIMIT=${LIMIT:-100}
PP=${PP:-128}
TG=${TG:-32}
mkdir -p "$WORK"
COGUMI="$BIN/cogumi"

DATA=${DATA:-$WORK/data}
[ -f "$DATA/mix/train.jsonl" ] || "$COGUMI" nano data -o "$DATA" >/dev/null
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

if [[ "$MODEL" == random:* ]]; then
  BASE="$WORK/base.gguf"
  # shellcheck disable=SC2086
  [ -f "$BASE" ] || "$COGUMI" model init "$BASE" ${MODEL#random:} --type f16 >/dev/null
else
  BASE="$MODEL"
fi

models=("$BASE")
for L in $LEVELS; do
  "$COGUMI" compress prune -m "$BASE" --calib "$WORK/calib.txt" --level "$L" --what "${WHAT:-ffn}" \
    -o "$WORK/deci-$L.gguf" --threads "$THREADS" >/dev/null
  "$COGUMI" compress prune -m "$BASE" --calib "$WORK/calib.txt" --level "$L" --what ffn --uniform \
    -o "$WORK/uniform-$L.gguf" --threads "$THREADS" >/dev/null
  models+=("$WORK/deci-$L.gguf" "$WORK/uniform-$L.gguf")
  if [ "$RECOVER" = 1 ]; then
    # LoRA (r=16, all seven modules, the nano loop's lr) merged back: full-parameter SFT on the F16
    # nano overflows (inf gradient norms from step 2).
    "$COGUMI" train -m "$WORK/uniform-$L.gguf" -d "$DATA/mix/train.jsonl" --max-steps "$STEPS" \
      --batch 8 --seq-len 128 --pack --lr 2e-3 --warmup 5 -o "$WORK/recovery-$L.lora.gguf" >/dev/null
    "$COGUMI" lora merge "$WORK/uniform-$L.gguf" "$WORK/recovery-$L.lora.gguf" "$WORK/recovered-$L.gguf" >/dev/null
    models+=("$WORK/recovered-$L.gguf")
  fi
done

# Two passes over every model (the base measured among them, not apart); the faster of each is kept.
rm -f "$WORK/speed.jsonl"
for m in "${models[@]}" "${models[@]}"; do
  "$BIN/cogumi-bench-engine" -m "$m" --pp "$PP" --tg "$TG" --npl 1 --threads "$THREADS" --ngl "$NGL" --reps 2 \
    --json "$WORK/speed.jsonl" >/dev/null
done
"$COGUMI" compress report "$BASE" "${models[@]:1}" --data "$WORK/heldout.txt" --ctx 128 --chunks 16 \
  --threads "$THREADS" --json "$WORK/report.json" >/dev/null

if [ "$EVAL" = 1 ]; then
  for m in "${models[@]}"; do
    case "$m" in "$BASE"|*uniform-*|*recovered-*) ;; *) continue ;; esac
    run="$WORK/eval-$(basename "$m" .gguf)"
    [ -f "$run/summary.json" ] || "$COGUMI" eval -m "$m" --bench gsm8k="$DATA/math/test.jsonl" \
      --bench mmlu="$DATA/reasoning/reasoning_test.csv" --limit "$LIMIT" -o "$run" >/dev/null
  done
fi

python3 - "$WORK" "$BASE" "${models[@]}" <<'EOF'
import json, os, sys
work, base, models = sys.argv[1], sys.argv[2], sys.argv[3:]
speed = {}
for l in open(f"{work}/speed.jsonl"):
    r = json.loads(l)
    o = speed.setdefault(r["model"], r)
    o["s_pp"], o["s_tg"] = max(o["s_pp"], r["s_pp"]), max(o["s_tg"], r["s_tg"])
rep = json.load(open(f"{work}/report.json"))
cands = {}
def walk(x):
    if isinstance(x, dict):
        if "kld_mean" in x or "kld" in x:
            key = x.get("candidate") or x.get("model") or x.get("path")
            if key: cands[key] = x
        for v in x.values(): walk(v)
    elif isinstance(x, list):
        for v in x: walk(v)
walk(rep)
def get(d, *names):
    for n in names:
        cur = d
        for part in n.split("."):
            cur = cur.get(part) if isinstance(cur, dict) else None
        if cur is not None: return cur
    return None
def acc(m):
    p = f"{work}/eval-{os.path.basename(m)[:-5]}/summary.json"
    if not os.path.exists(p): return ""
    b = json.load(open(p))["benchmarks"]
    return " / ".join(f"{100*b[k]['accuracy']:.0f}" for k in ("gsm8k", "mmlu") if k in b)
b0 = speed[base]
print("| model | arch | params | MiB | prefill t/s | decode t/s | KLD mean | same top | math / reasoning % |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for m in models:
    s = speed[m]
    pj = m[:-5] + ".prune.json"
    arch, params = "llama", ""
    if os.path.exists(pj):
        p = json.load(open(pj)); arch = p["arch"]; params = f"{p['params_after']/1e6:.2f}M (-{100*p['removed_fraction']:.0f}%)"
    elif m == base:
        params = "base"
    else:
        arch = "llama (recovered)"
    c = cands.get(m, {})
    kld = get(c, "kld_mean", "kld.mean"); top = get(c, "top1_agreement")
    print(f"| {os.path.basename(m)} | {arch} | {params} | {os.path.getsize(m)/2**20:.2f} | "
          f"{s['s_pp']:.0f} ({s['s_pp']/b0['s_pp']:.2f}x) | {s['s_tg']:.1f} ({s['s_tg']/b0['s_tg']:.2f}x) | "
          f"{'' if kld is None else f'{kld:.4f}'} | {'' if top is None else f'{100*top:.1f}%'} | {acc(m)} |")
EOF
