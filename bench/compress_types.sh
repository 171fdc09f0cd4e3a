#!/usr/bin/env bash
# The main job's compression type, chosen on dev: each llama.cpp type's agreement, KLD and PPL ratio against the
# F16 base on the dev splits' text (CHUNKS x 128 tokens), on a finished main-job run directory (a copy of it is
# used, so the run itself is untouched; only the compress stages run, without the test-set evaluation).
#   bench/compress_types.sh RUN_DIR [TYPES] [CHUNKS]     e.g. bench/compress_types.sh runs/nano
#   env: COGUMI (build/bin/cogumi), WORK (a scratch directory, default /tmp/compress-types)
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=$1 TYPES=${2:-q4_k_m,q5_k_m,q6_k,q8_0} CHUNKS=${3:-64}
COGUMI=${COGUMI:-build/bin/cogumi} WORK=${WORK:-/tmp/compress-types}
[ -f "$RUN/run.json" ] || { echo "$RUN: not a cogumi run directory (no run.json)" >&2; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK" && cp -r "$RUN" "$WORK/run"
echo "| type | base MB | agreement | KLD mean | KLD p99 | PPL ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for t in ${TYPES//,/ }; do
  # configs/nano.yaml with the base path made absolute and the compress settings replaced for this measurement
  python3 - "$t" "$CHUNKS" "$(pwd)" >"$WORK/$t.yaml" <<'PY'
import re, sys
t, chunks, repo = sys.argv[1:]
s = open(f"{repo}/configs/nano.yaml").read().replace("gguf: ../models/", f"gguf: {repo}/models/")
s, n = re.subn(r"\n  quantize: [^\n]*", f"\n  quantize: {t}\n  eval: false\n  measure: {{chunks: {chunks}}}", s)
assert n == 1, "configs/nano.yaml: no compress.quantize line"
print(s, end="")
PY
  "$COGUMI" run "$WORK/$t.yaml" --dir "$WORK/run" -q >"$WORK/$t.log" 2>&1 || { tail -5 "$WORK/$t.log" >&2; exit 1; }
  python3 - "$WORK/run" "$t" <<'PY'
import glob, json, os, sys
d = max(glob.glob(sys.argv[1] + "/stages/compress.eval-*/done.json"), key=os.path.getmtime)
r = json.load(open(d))["result"]
k = r["kld"]
print(f"| {sys.argv[2]} | {r['bytes'] / 1e6:.2f} | {100 * k['agreement']:.2f}% | {k['kld_mean']:.4f} | {k['kld_p99']:.3f} | {k['ppl_ratio']:.3f} |")
PY
done
