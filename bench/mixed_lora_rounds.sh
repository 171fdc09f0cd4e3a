#!/usr/bin/env bash
# Ours under several environment settings, interleaved: ROUNDS rounds, each running bench/mixed_lora_bench.sh
# (cogumi's setups only) once per setting, so that a drift of the machine hits every setting alike. Ends with
# bench/mixed_lora_rounds.py's table (per stream count and setting: median base and mixed tok/s over the rounds,
# mixed as a share of the median base of all settings' runs, each run's own share, the output hashes: the same
# kernels' floats give the same hashes).
# Usage: bench/mixed_lora_rounds.sh BIN_DIR MODEL ADAPTERS OUT_DIR "VAR=V[+VAR=V...] ..."
#   each setting one or more VAR=V joined by '+' (a baseline names a variable's default, e.g. VAR=0)
#   env: ROUNDS (2), and mixed_lora_bench.sh's (STREAMS, SETUPS, PP, TG, REPS, FA, ...)
# Example (the H100 of bench/device.sh, patch 0014's folded add off and on):
#   STREAMS=8,32 SETUPS=base,mixed PP=128 TG=256 REPS=2 FA=1 bench/mixed_lora_rounds.sh $B $M $A out/r \
#     "GGML_COGUMI_LORA_FUSE_ADD=0 GGML_COGUMI_LORA_FUSE_ADD=1"
set -euo pipefail -f  # -f: settings are not file patterns
BIN=$1 MODEL=$2 ADAPTERS=$3 OUT=$4 SETTINGS=$5
ROUNDS=${ROUNDS:-2}
[[ $ROUNDS =~ ^[1-9][0-9]?$ ]] || { echo "ROUNDS must be 1..99, got '$ROUNDS'" >&2; exit 2; }
[ -n "$SETTINGS" ] || { echo "no settings given (the fifth argument)" >&2; exit 2; }
tagof() { echo "$1" | tr -c 'A-Za-z0-9=\n' '_' | tr '=' '-'; }
seen=" "
for s in $SETTINGS; do
  [[ $s =~ ^[A-Za-z_][A-Za-z0-9_]*=[^+]*(\+[A-Za-z_][A-Za-z0-9_]*=[^+]*)*$ ]] ||
    { echo "setting '$s' is not VAR=V[+VAR=V...]" >&2; exit 2; }
  case $seen in *" $(tagof "$s") "*) echo "setting '$s' is given twice (or names the same files as another)" >&2; exit 2 ;; esac
  seen="$seen$(tagof "$s") "
done
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SETTINGS; do
    tag=$(tagof "$s")
    echo "## round $r $s"
    # shellcheck disable=SC2046
    env $(echo "$s" | tr '+' ' ') LLAMA_SERVER="" "$here/mixed_lora_bench.sh" "$BIN" "$MODEL" "$ADAPTERS" "$OUT/$tag-r$r" |
      grep '^|' | grep -v -- '---' || { echo "the run under $s failed" >&2; exit 1; }
    cp "$OUT/$tag-r$r/results.jsonl" "$OUT/$tag-r$r.jsonl"
  done
done
echo
echo "## medians over $ROUNDS round(s); mixed as a share of the median base over all settings' runs"
files=()
for s in $SETTINGS; do for r in $(seq 1 "$ROUNDS"); do files+=("$OUT/$(tagof "$s")-r$r.jsonl"); done; done
python3 "$here/mixed_lora_rounds.py" "${files[@]}"
