#!/usr/bin/env bash
# The test suite: installs what it needs, builds, runs every test (unit, integration, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh --test "$@" >/dev/null
cd "${BUILD_DIR:-build}"
ctest --output-on-failure -j "${JOBS:-$(nproc)}" --timeout 900
