#!/usr/bin/env bash
# The trainer's memory estimate (issue 14, train/memory.h) against what the run then reserves:
# `cogumi train --max-steps 2` on the nano base (F16) and its Q4_K_M copy at a few batch x seq
# settings, LoRA and full. One line per run from OUT.summary.json ("memory": estimated_bytes,
# reserved_bytes: weights + LoRA + accumulators/moments + compute buffer on the training device),
# the process's peak RSS for the same run (/usr/bin/time: ggml's CPU work buffer, the tokenizer,
# the data and the program itself on top), and the wall time of `--dry-run` (the estimate alone,
# no weights or data read).
#   bench/train_memory_bench.sh [BIN] [BASE] [DIR]
set -euo pipefail
BIN=${1:-build/bin/cogumi}
BASE=${2:-models/nano-base.gguf}
DIR=${3:-runs/train-memory-bench}
mkdir -p "$DIR"
DATA="$DIR/data.jsonl"
python3 - "$DATA" <<'EOF'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(64):
        f.write(json.dumps({"instruction": f"What is {i} plus {i + 3}?", "output": f"{i} + {i + 3} = {2 * i + 3}. " * 8}) + "\n")
EOF
[ -f "$DIR/q4_k_m.gguf" ] || "$BIN" model quantize "$BASE" "$DIR/q4_k_m.gguf" --type q4_k_m > /dev/null
printf '%-8s %-5s %-12s %14s %13s %6s %13s %10s\n' base mode "batch x seq" estimated_MiB reserved_MiB ratio peak_RSS_MiB dry_run_s
run() {  # base-file label mode batch seq [extra...]
  local model=$1 label=$2 mode=$3 batch=$4 seq=$5
  shift 5
  local out="$DIR/$label-$mode-$batch-$seq.gguf" flags=(--cpu --threads 2 --batch "$batch" --seq-len "$seq" --pack)
  [ "$mode" = full ] && flags+=(--full)
  local t0 t1
  t0=$(date +%s.%N)
  "$BIN" train -m "$model" -d "$DATA" -o "$out" "${flags[@]}" --max-steps 2 --dry-run > /dev/null
  t1=$(date +%s.%N)
  /usr/bin/time -f %M -o "$out.rss" "$BIN" train -m "$model" -d "$DATA" -o "$out" "${flags[@]}" --max-steps 2 > /dev/null 2>&1
  python3 - "$out.summary.json" "$label" "$mode" "$batch x $seq" "$(echo "$t1 - $t0" | bc)" "$(tail -1 "$out.rss")" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))["memory"]
e, r, rss = m["estimated_bytes"], m["reserved_bytes"], int(sys.argv[6]) * 1024
print(f"{sys.argv[2]:<8} {sys.argv[3]:<5} {sys.argv[4]:<12} {e / 2**20:14.1f} {r / 2**20:13.1f} {e / r:6.3f} {rss / 2**20:13.1f} {float(sys.argv[5]):10.2f}")
EOF
}
run "$BASE" f16 lora 16 128
run "$BASE" f16 lora 4 512
run "$BASE" f16 lora 1 1024
run "$DIR/q4_k_m.gguf" q4_k_m lora 16 128
run "$BASE" f16 full 8 128
