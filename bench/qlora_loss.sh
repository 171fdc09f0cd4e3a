#!/usr/bin/env bash
# A LoRA trained on a Q4_K_M base against one trained on the 16-bit base it was quantized from (issue 14's
# correctness row, "within a few percent", on an 8B-shaped model on the GPU): the same data, steps, seed and
# settings on each; the held-out loss each adapter reaches on its own base (cogumi train --val-data: the base it
# is served on, with the adapter), compared step by step.
#   bench/qlora_loss.sh COGUMI SHAPE OUT [STEPS] [extra cogumi train args...]
#     COGUMI: the cogumi binary; SHAPE: a `cogumi model init --shape` preset (8b on the GPU, tiny for a CPU smoke
#     run); OUT: a folder for the models, data, adapters and summary.md. VOCAB=GGUF copies a tokenizer (Llama 3's
#     for 8b); TYPE=bf16 the 16-bit type (bf16 or f16); SEQ=512 and BATCH=4 the rows per step; further arguments go to
#     both cogumi train runs.
set -euo pipefail
B=$1 SHAPE=$2 OUT=$3 STEPS=${4:-60}
shift $(($# < 4 ? $# : 4))
TYPE=${TYPE:-bf16}
mkdir -p "$OUT"
# Text a LoRA can learn on a random base: cyclic runs over a word list from a random start, one word in ten
# random, so the best loss is well above 0 and each adapter's progress shows. Train and held-out rows apart.
python3 - "$OUT" <<'EOF'
import json, random, sys
out = sys.argv[1]
w = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda omicron sigma omega".split()
def row(r):
    i, words = r.randrange(len(w)), []
    for _ in range(700):
        words.append(w[i] if r.random() > 0.1 else r.choice(w))
        i = (i + 1) % len(w)
    return {"prompt": "", "completion": " ".join(words)}
for name, seed, n in (("train", 1, 256), ("val", 2, 16)):
    r = random.Random(seed)
    with open(f"{out}/{name}.jsonl", "w") as f:
        for _ in range(n): f.write(json.dumps(row(r)) + "\n")
EOF
vocab=()
[ -n "${VOCAB:-}" ] && vocab=(--vocab "$VOCAB")
[ -f "$OUT/base-$TYPE.gguf" ] || "$B" model init "$OUT/base-$TYPE.gguf" --shape "$SHAPE" --type "$TYPE" "${vocab[@]}" --seed 1 >/dev/null
[ -f "$OUT/base-q4_k_m.gguf" ] || "$B" model quantize "$OUT/base-$TYPE.gguf" "$OUT/base-q4_k_m.gguf" --type q4_k_m >/dev/null
for base in "$TYPE" q4_k_m; do
  "$B" train -m "$OUT/base-$base.gguf" -d "$OUT/train.jsonl" --val-data "$OUT/val.jsonl" -o "$OUT/lora-$base.gguf" \
    --lora-rank 16 --lora-alpha 16 --targets q,k,v,o,gate,up,down --seq-len "${SEQ:-512}" --batch "${BATCH:-4}" --max-steps "$STEPS" \
    --eval-steps $((STEPS / 4 > 0 ? STEPS / 4 : 1)) --lr 1e-3 --warmup 5 --train-on-inputs --seed 7 "$@" \
    >"$OUT/train-$base.txt" 2>&1 || { tail -5 "$OUT/train-$base.txt" >&2; exit 1; }
done
python3 - "$OUT" "$TYPE" <<'EOF'
import json, sys
out, t = sys.argv[1], sys.argv[2]
def val(base):
    return {l["step"]: l["val_loss"] for l in map(json.loads, open(f"{out}/lora-{base}.gguf.log.jsonl")) if "val_loss" in l}
a, q = val(t), val("q4_k_m")
lines = [f"| step | held-out loss, {t} base | held-out loss, Q4_K_M base | Q4_K_M / {t} |", "|---:|---:|---:|---:|"]
for s in sorted(set(a) & set(q)):
    lines.append(f"| {s} | {a[s]:.4f} | {q[s]:.4f} | {q[s] / a[s]:.3f} |")
last = max(set(a) & set(q))
lines.append(f"\nfinal (step {last}): Q4_K_M {100 * (q[last] / a[last] - 1):+.1f}% against {t}")
open(f"{out}/summary.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
