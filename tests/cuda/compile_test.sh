#!/usr/bin/env bash
# CI has no GPU, so the CUDA code of Cogumi's llama.cpp patches is never built by the CPU build: this
# compiles it with nvcc for sm_90 (the H200's architecture) so that a broken kernel fails CI, not the
# next device session. The patched ggml-cuda sources (cpy, getrows, out-prod, fattn-back, lora-slots, mmq and
# its Q4_K instance, ggml-cuda.cu itself) and the standalone kernel harnesses (bench/fattn_back/check.cu,
# bench/lora_slots/check.cu), compile only (no GPU to run them). Fails, never skips, without nvcc.
#   tests/cuda/compile_test.sh LLAMA_PREFIX REPO
set -euo pipefail
PREFIX=$1 REPO=$(readlink -f "$2")
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$NVCC" ] || { echo "nvcc not found (looked in PATH and /usr/local/cuda/bin): install CUDA's compiler or set NVCC" >&2; exit 1; }
SRC=$(readlink -f "$PREFIX/src")
CU=$SRC/ggml/src/ggml-cuda
[ -d "$CU" ] || { echo "$CU missing: the patched llama.cpp source (scripts/deps.sh) is not where the prefix points" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O3 -std=c++17 -arch=sm_90 -DGGML_USE_CUDA -I"$SRC/ggml/include" -I"$SRC/ggml/src" -I"$CU")
# every ggml-cuda file a patch adds or changes
files=$(grep -h '^diff --git a/ggml/src/ggml-cuda/.*\.cu ' "$REPO"/patches/*.patch | awk '{print $3}' | sed 's#^a/##' | sort -u)
[ -n "$files" ] || { echo "no patched .cu file found in $REPO/patches" >&2; exit 1; }
# mmq.cuh's kernels (patch 0016's write-back) are compiled only where a type instantiates them: the Q4_K one
if grep -q '^diff --git a/ggml/src/ggml-cuda/mmq.cuh ' "$REPO"/patches/*.patch; then
  files="$files ggml/src/ggml-cuda/template-instances/mmq-instance-q4_k.cu"
fi
for f in $files "$REPO/bench/fattn_back/check.cu" "$REPO/bench/lora_slots/check.cu"; do
  case $f in /*) path=$f ;; *) path=$SRC/$f ;; esac
  "$NVCC" "${flags[@]}" -c "$path" -o "$out/$(basename "$path").o" || { echo "nvcc failed on $path" >&2; exit 1; }
  echo "compiled $path"
done
