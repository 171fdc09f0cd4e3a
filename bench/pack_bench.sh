#!/usr/bin/env bash
# cogumi compress pack (issue 15): the true lossless ratio per weight type, on the trained nano base
# (models/nano-base.gguf, F16, and its BF16 / Q8_0 / Q4_K_M conversions) and on a random-init model of
# the same shape, for each packing option (zstd level, byte-plane split, trained dictionary). Each
# pack is unpacked and compared byte for byte (cmp) before its numbers are printed.
#   bench/pack_bench.sh            markdown table on stdout
# COGUMI=BIN skips the build; COGUMI_LOCK=FILE takes that lock (flock) around each CPU-heavy command;
# BENCH_DIR=DIR keeps the files (default /tmp/cogumi-pack-bench); CONFIGS overrides the option sets.
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
T="${BENCH_DIR:-/tmp/cogumi-pack-bench}"
L=(); [ -n "${COGUMI_LOCK:-}" ] && L=(flock "$COGUMI_LOCK")
mkdir -p "$T"
# The random-init twin: nano's shape and vocabulary size, seeded uniform weights.
[ -f "$T/random-f16.gguf" ] || "${L[@]}" "$COGUMI" model init "$T/random-f16.gguf" --shape nano --type f16 >/dev/null
cp -f models/nano-base.gguf "$T/trained-f16.gguf"
for src in trained random; do
  for ty in bf16 q8_0 q4_k_m; do
    [ -f "$T/$src-$ty.gguf" ] || "${L[@]}" "$COGUMI" model quantize "$T/$src-f16.gguf" "$T/$src-$ty.gguf" --type $ty >/dev/null 2>&1
  done
done
IFS=';' read -r -a CONFIGS <<<"${CONFIGS:---level 12;--level 12 --no-split;--level 12 --dict;--level 3;--level 19}"
echo "| model | file type | pack options | file bytes | packed bytes | packed / original | per weight type (packed / raw) | pack s | unpack s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for src in trained random; do
  for ty in f16 bf16 q8_0 q4_k_m; do
    f="$T/$src-$ty.gguf"
    for c in "${CONFIGS[@]}"; do
      out=$("${L[@]}" "$COGUMI" compress pack "$f" -o "$T/p.czst" $c)
      un=$("${L[@]}" "$COGUMI" compress unpack "$T/p.czst" -o "$T/u.gguf")
      cmp -s "$f" "$T/u.gguf" || { echo "round trip differs: $f $c" >&2; exit 1; }
      total=$(head -1 <<<"$out" | sed -E 's/.*: ([0-9]+) -> ([0-9]+) bytes \(([0-9.]+)% of the original.* in ([0-9.]+) s/\1 | \2 | \3%/')
      ps=$(head -1 <<<"$out" | sed -E 's/.* in ([0-9.]+) s$/\1/')
      us=$(sed -E 's/.* in ([0-9.]+) s$/\1/' <<<"$un")
      types=$(awk 'NR>2 && $1!="header" && $1!="dictionary" && $1!="note:" && $1!="sha256" && NF==5 {printf "%s%s %s", sep, $1, $5; sep=", "}' <<<"$out")
      echo "| $src | $ty | \`$c\` | $total | $types | $ps | $us |"
    done
  done
done
