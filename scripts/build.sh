#!/usr/bin/env bash
# Installs dependencies (scripts/deps.sh) and builds Cogumi into build/ (or $BUILD_DIR).
# Usage: scripts/build.sh [--cuda]   (extra args go to deps.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX=$(scripts/deps.sh "$@" | tail -n 1)
BUILD_DIR="${BUILD_DIR:-build}"
LAUNCHER=()
command -v ccache >/dev/null && LAUNCHER=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCOGUMI_LLAMA_PREFIX="$PREFIX" -DCMAKE_BUILD_TYPE=Release \
  -DCOGUMI_WERROR="${COGUMI_WERROR:-ON}" "${LAUNCHER[@]}" >&2
cmake --build "$BUILD_DIR" -j "${JOBS:-$(nproc)}" >&2
echo "$BUILD_DIR/bin/cogumi"
