#!/usr/bin/env bash
# GPU benchmarks on the device machine (H100), in two back-to-back phases so that each
# stays well inside the 10-minute command limit (the machine keeps files ~30 s between calls).
#   bench/device.sh llama    # CUDA build of the pinned llama.cpp (libs + bench tools), sm_90
#   bench/device.sh cogumi   # build cogumi, make an 8B-shaped Q4_K_M model, run the benchmarks
# Needs the carried folder .devcache/ (npm tarball + Debian -dev packages; the device image
# has no network). Results go to $OUT (device tool) or out/device.
set -euo pipefail
cd "$(dirname "$0")/.."
export COGUMI_CACHE=/root/.cache/cogumi COGUMI_SKIP_APT=1 JOBS=16
OUT="${OUT:-out/device}"
mkdir -p "$OUT" "$COGUMI_CACHE/npm"
cp -n .devcache/node-llama-cpp-3.22.1.tgz "$COGUMI_CACHE/npm/" 2>/dev/null || true
DEPS=/opt/cogumi-debs
if [ ! -d "$DEPS" ]; then
  mkdir -p "$DEPS"
  for f in .devcache/debs/*.deb; do dpkg-deb -x "$f" "$DEPS"; done
fi
# fmt's CMake package checks that its shared library exists; Cogumi links fmt header-only.
touch "$DEPS/usr/lib/x86_64-linux-gnu/libfmt.so.9.1.0"
export CMAKE_PREFIX_PATH="$DEPS/usr"
case "${1:-}" in
  llama)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    cat /etc/os-release | head -2; ls /usr/include/zlib.h /usr/include/openssl/sha.h 2>&1 | head -2
    time scripts/deps.sh --cuda --tools
    ;;
  cogumi)
    PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
    cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOGUMI_LLAMA_PREFIX="$PREFIX" \
      -DCOGUMI_BUILD_TESTS=OFF -DZLIB_ROOT="$DEPS/usr" -DOPENSSL_ROOT_DIR="$DEPS/usr" >/dev/null
    cmake --build build-cuda -j 16 >/dev/null
    B=build-cuda/bin
    M=/root/m8b-q4km.gguf
    if [ ! -f "$M" ]; then
      time "$B/cogumi" model init "$M" --shape 8b --type q4_k_m --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" --seed 1
    fi
    "$B/cogumi" info "$M" | head -8 | tee "$OUT/model.txt"
    {
      echo "## llama-bench (tg128, pp512, fa on)"
      "$PREFIX/bin/llama-bench" -m "$M" -ngl 99 -fa 1 -p 512 -n 128 -r 3 2>/dev/null
      echo "## llama-batched-bench (pp 128, tg 128)"
      "$PREFIX/bin/llama-batched-bench" -m "$M" -ngl 99 -fa on -c 20000 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,8,32,64 2>/dev/null | grep '^|'
      echo "## cogumi engine (pp 128, tg 128)"
      "$B/cogumi-bench-engine" -m "$M" --pp 128 --tg 128 --npl 1,8,32,64 --fa 1 --reps 2 --json "$OUT/engine.jsonl"
      echo "## GSM8K test (1319 questions), max tokens 256, EOS ignored: harness vs one at a time"
      DATA=.devcache MAXTOK=256 bench/eval_bench.sh "$B/cogumi" "$M" 1319 48 64 --ctx 512
    } 2>&1 | tee "$OUT/bench.md"
    ;;
  *) echo "usage: bench/device.sh llama|cogumi" >&2; exit 2 ;;
esac
