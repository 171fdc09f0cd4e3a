#!/usr/bin/env bash
# Quantization with an importance matrix: ours (cogumi compress imatrix + cogumi model quantize)
# against llama.cpp's (llama-imatrix + llama-quantize) on the same model, calibration text and
# types, both scored by one `cogumi compress report` run against the unquantized model
# (KLD mean/median/p99, top-1 agreement, PPL ratio, size). Also llama-quantize fed OUR imatrix
# (the file format check: it must give our weights).
#
#   bench/quant_bench.sh BASE.gguf CALIB.txt EVAL.txt OUTDIR
# env: TYPES (default "q8_0 q6_k q5_k_m q4_k_m q3_k_m iq4_xs iq2_xs"), CTX (tokens per chunk, 512),
#      CHUNKS (calibration chunks, 0 = all), EVAL_CHUNKS (report chunks, 16), THREADS (2),
#      COGUMI (build/bin/cogumi), LLAMA_BIN (the bundle's tools: llama-imatrix, llama-quantize).
# Build llama.cpp's tools once:
#   flock /tmp/cogumi-cpu.lock cmake --build ~/.cache/cogumi/llama-0.5.0-cpu-*-patched.build \
#     --target llama-quantize llama-imatrix -j2
set -euo pipefail
[ $# -eq 4 ] || { sed -n 2,14p "$0"; exit 2; }
BASE=$1 CALIB=$2 EVAL=$3 OUT=$4
TYPES=${TYPES:-"q8_0 q6_k q5_k_m q4_k_m q3_k_m iq4_xs iq2_xs"}
CTX=${CTX:-512} CHUNKS=${CHUNKS:-0} EVAL_CHUNKS=${EVAL_CHUNKS:-16} THREADS=${THREADS:-2}
COGUMI=${COGUMI:-build/bin/cogumi}
LLAMA_BIN=${LLAMA_BIN:-$(ls -d ~/.cache/cogumi/llama-0.5.0-cpu-*-patched.build/bin | head -1)}
for f in "$BASE" "$CALIB" "$EVAL" "$COGUMI" "$LLAMA_BIN/llama-imatrix" "$LLAMA_BIN/llama-quantize"; do
  [ -e "$f" ] || { echo "quant_bench: missing $f" >&2; exit 1; }
done
mkdir -p "$OUT"
t() { local s=$(date +%s.%N); "$@" > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; exit 1; }
      awk -v a="$s" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }  # no bc on the GPU image

llama_chunks=$([ "$CHUNKS" = 0 ] && echo -1 || echo "$CHUNKS")
echo "imatrix: ours $(t "$COGUMI" compress imatrix -m "$BASE" -f "$CALIB" -o "$OUT/ours.imatrix.gguf" \
  --chunk "$CTX" --chunks "$CHUNKS" --threads "$THREADS") s, llama-imatrix $(t "$LLAMA_BIN/llama-imatrix" -m "$BASE" \
  -f "$CALIB" -o "$OUT/llama.imatrix.gguf" -c "$CTX" -b "$CTX" -ub "$CTX" --chunks "$llama_chunks" --no-ppl \
  -t "$THREADS") s"

cands=()
for T in $TYPES; do
  "$COGUMI" model quantize "$BASE" "$OUT/ours-$T.gguf" --type "$T" --imatrix "$OUT/ours.imatrix.gguf" \
    --threads "$THREADS" > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; exit 1; }
  "$LLAMA_BIN/llama-quantize" --imatrix "$OUT/llama.imatrix.gguf" "$BASE" "$OUT/llama-$T.gguf" "$T" "$THREADS" \
    > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; exit 1; }
  cands+=("$OUT/ours-$T.gguf" "$OUT/llama-$T.gguf")
done
# Format check: llama-quantize reading our imatrix must write the same tensors as our quantize.
T1=$(echo $TYPES | awk '{print $NF}')
"$LLAMA_BIN/llama-quantize" --imatrix "$OUT/ours.imatrix.gguf" "$BASE" "$OUT/llama-with-ours-$T1.gguf" "$T1" \
  "$THREADS" > "$OUT/last.log" 2>&1 || { cat "$OUT/last.log" >&2; exit 1; }
same=$(python3 - "$OUT/ours-$T1.gguf" "$OUT/llama-with-ours-$T1.gguf" <<'PY'
import sys
a, b = (open(p, 'rb').read() for p in sys.argv[1:])
# metadata differs (the imatrix file name); compare the tensor data at the end of the files
n = min(len(a), len(b)) * 9 // 10
print("identical tensor data" if a[-n:] == b[-n:] else "DIFFERENT tensor data")
PY
)
echo "llama-quantize with our imatrix ($T1): $same"

"$COGUMI" compress report "$BASE" "${cands[@]}" --data "$EVAL" --ctx "$CTX" --chunks "$EVAL_CHUNKS" \
  --threads "$THREADS" --json "$OUT/report.json" > "$OUT/report.txt"
python3 - "$OUT/report.json" <<'PY'
import json, sys, os
r = json.load(open(sys.argv[1]))
print(f"base {r['base']}: {r['base_bytes']/2**20:.2f} MiB, PPL {r['base_ppl']:.4f}, "
      f"{r['chunks']} chunks x {r['ctx']} tokens ({r['scored_tokens']} scored)")
print("| type | imatrix+quantize | MiB | KLD mean | KLD median | KLD p99 | same top | PPL ratio |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for c in r["candidates"]:
    name = os.path.basename(c["path"])[:-5]
    who, t = name.split("-", 1)
    who = "cogumi" if who == "ours" else "llama.cpp"
    print(f"| {t} | {who} | {c['bytes']/2**20:.2f} | {c['kld_mean']:.6f} | {c['kld_median']:.6f} | "
          f"{c['kld_p99']:.6f} | {100*c['top1_agreement']:.2f}% | {c['ppl_ratio']:.4f} |")
PY
