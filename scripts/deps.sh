#!/usr/bin/env bash
# Installs what Cogumi builds against, reusing whatever is already there.
#   - Debian -dev packages (apt-get, only the missing ones)
#   - llama.cpp v0.5.0 + ggml, from the pinned npm tarball node-llama-cpp@3.22.1
#     (package/llama/gitRelease.bundle), with Cogumi's patches (patches/*.patch) applied,
#     built as shared libraries and installed into a cache directory keyed by version, build
#     options and the patches' hash.
#
# Usage: scripts/deps.sh [--cuda] [--tools] [--test]
#   --cuda   also build ggml's CUDA backend for Hopper (sm_90) with the nvcc on PATH
#   --tools  also build llama.cpp's llama-bench / llama-batched-bench / llama-completion / llama-server /
#            llama-imatrix / llama-quantize (benchmarks)
#   --test   also install what only the tests use (chromium, clang-14 + libFuzzer, prometheus, nginx, jq,
#            curl, openssl; npm ci in tests/serve/ui and tests/serve/openai)
# Prints nothing on stdout but the install prefix (last line), so callers can capture it.
set -euo pipefail

NLC_VERSION=3.22.1
NLC_SHA256=a0d9dd80eacd2ab1cfe71aee57ac8a806487fd70b3d2a38fbec637752d9e5c5f
LLAMA_VERSION=0.5.0

CUDA=0
TOOLS=0
TEST=0
for arg in "$@"; do
  case "$arg" in
    --cuda) CUDA=1 ;;
    --tools) TOOLS=1 ;;
    --test) TEST=1 ;;
    *) echo "deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

CACHE="${COGUMI_CACHE:-$HOME/.cache/cogumi}"
JOBS="${JOBS:-$(nproc)}"
log() { echo "[deps] $*" >&2; }

# ---- Debian packages -------------------------------------------------------
APT_PKGS=(build-essential cmake ninja-build git ccache
  nlohmann-json3-dev libcpp-httplib-dev libcli11-dev libfmt-dev
  libssl-dev zlib1g-dev libsqlite3-dev libgtest-dev libgmock-dev libyaml-cpp-dev
  libre2-dev libhnswlib-dev bubblewrap python3 libzstd-dev libeigen3-dev)
# The test suite also drives a real browser (the failure report) and builds the fuzz targets with clang.
((TEST)) && APT_PKGS+=(chromium clang-14 libclang-rt-14-dev)
# The server's monitoring tests: promtool and a real Prometheus, nginx in front of replicas.
((TEST)) && APT_PKGS+=(prometheus nginx jq curl)
((TEST)) && APT_PKGS+=(openssl)  # data_teacher: the self-signed certificate of its HTTPS endpoint
missing=()
[ "${COGUMI_SKIP_APT:-0}" = 1 ] && APT_PKGS=()  # machines without Debian's archive (GPU device)
for p in "${APT_PKGS[@]+"${APT_PKGS[@]}"}"; do
  grep -q "install ok installed" <<<"$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" || missing+=("$p")
done
[ "${COGUMI_SKIP_APT:-0}" = 1 ] || command -v npm >/dev/null || missing+=(nodejs npm)
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# ---- npm packages of the tests ------------------------------------------------
# The web UI's browser test drives Chromium with playwright-core, pinned by tests/serve/ui's
# lockfile; `npm ci` runs again only when the lockfile changed (a copy marks the install).
if ((TEST)); then
  UI_TEST="$(cd "$(dirname "$0")/.." && pwd)/tests/serve/ui"
  if ! cmp -s "$UI_TEST/package-lock.json" "$UI_TEST/node_modules/.cogumi-lock.json"; then
    log "installing the web UI test's npm packages (npm ci in tests/serve/ui)"
    (cd "$UI_TEST" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$UI_TEST/package-lock.json" "$UI_TEST/node_modules/.cogumi-lock.json"
  fi
  # The API test runs the official `openai` client, pinned by tests/serve/openai's lockfile.
  API_TEST="$(cd "$(dirname "$0")/.." && pwd)/tests/serve/openai"
  if ! cmp -s "$API_TEST/package-lock.json" "$API_TEST/node_modules/.cogumi-lock.json"; then
    log "installing the API test's npm packages (npm ci in tests/serve/openai)"
    (cd "$API_TEST" && npm ci --no-audit --no-fund --loglevel=error >&2)
    cp "$API_TEST/package-lock.json" "$API_TEST/node_modules/.cogumi-lock.json"
  fi
fi

# ---- pinned llama.cpp source -----------------------------------------------
mkdir -p "$CACHE/npm"
TGZ="$CACHE/npm/node-llama-cpp-$NLC_VERSION.tgz"
SRC="$CACHE/llama.cpp-$LLAMA_VERSION-src"
# The tarball is needed only to unpack the source (bench/device.sh brings the unpacked source).
if [ ! -f "$SRC/.cogumi-ok" ] && { [ ! -f "$TGZ" ] || ! echo "$NLC_SHA256  $TGZ" | sha256sum -c --status; }; then
  log "fetching node-llama-cpp@$NLC_VERSION from npm"
  rm -f "$TGZ"
  (cd "$CACHE/npm" && npm pack --silent "node-llama-cpp@$NLC_VERSION" >/dev/null)
  echo "$NLC_SHA256  $TGZ" | sha256sum -c --status ||
    { log "sha256 mismatch for $TGZ (expected $NLC_SHA256)"; rm -f "$TGZ"; exit 1; }
fi

if [ ! -f "$SRC/.cogumi-ok" ]; then
  log "unpacking llama.cpp $LLAMA_VERSION source"
  rm -rf "$SRC" "$SRC.tmp"
  mkdir -p "$SRC.tmp"
  tar -xzf "$TGZ" -C "$SRC.tmp" package/llama/gitRelease.bundle
  git clone -q "$SRC.tmp/package/llama/gitRelease.bundle" "$SRC" 2>/dev/null
  rm -rf "$SRC.tmp"
  touch "$SRC/.cogumi-ok"
fi

# ---- Cogumi's patches (patches/*.patch, applied in name order) ---------------
# The pinned source stays pristine; the patched tree is a copy of it ($PSRC) that is rebuilt in
# place when the patches change: only files whose content changes are rewritten, so the build
# directory (shared across patch versions) recompiles only what a patch touches. The install
# prefix is keyed by the patches' hash, so changed patches always give a new prefix.
PATCHES=()
for p in "$(cd "$(dirname "$0")/.." && pwd)"/patches/*.patch; do [ -f "$p" ] && PATCHES+=("$p"); done
PATCH_HASH=none
PATCH_SHA=none
if ((${#PATCHES[@]})); then
  PATCH_SHA=$(cat "${PATCHES[@]}" | sha256sum | cut -c1-64)
  PATCH_HASH=${PATCH_SHA:0:8}
  PSRC="$CACHE/llama.cpp-$LLAMA_VERSION-patched"
  if [ ! -f "$PSRC/.cogumi-ok" ]; then
    rm -rf "$PSRC" && mkdir -p "$PSRC"
    tar -C "$SRC" --exclude=./.git -cf - . | tar -C "$PSRC" -xf -
    : >"$PSRC/.cogumi-patched-files"
    touch "$PSRC/.cogumi-ok"
  fi
  if [ "$(cat "$PSRC/.cogumi-patches" 2>/dev/null)" != "$PATCH_HASH" ]; then
    log "applying ${#PATCHES[@]} patch(es) to llama.cpp ($PATCH_HASH): ${PATCHES[*]##*/}"
    stage=$(mktemp -d)
    # Listed from the stage, outside any work tree: inside one (a checkout's subfolder, as bench/device.sh
    # runs from), git apply silently skips paths outside the current folder and lists nothing.
    new_files=$(for p in "${PATCHES[@]}"; do
      GIT_CEILING_DIRECTORIES="$(dirname "$stage")" git -C "$stage" apply --numstat "$p" | cut -f3; done | sort -u)
    for f in $new_files; do
      if [ -f "$SRC/$f" ]; then mkdir -p "$stage/$(dirname "$f")" && cp "$SRC/$f" "$stage/$f"; fi
    done
    for p in "${PATCHES[@]}"; do
      # GIT_CEILING_DIRECTORIES: apply to the stage even when the cache sits inside a git work tree
      GIT_CEILING_DIRECTORIES="$(dirname "$stage")" git -C "$stage" apply "$p" ||
        { log "$p does not apply to llama.cpp $LLAMA_VERSION"; rm -rf "$stage"; exit 1; }
    done
    for f in $(cat "$PSRC/.cogumi-patched-files") $new_files; do
      want="$SRC/$f"
      # A here-string, not `echo | grep -q`: under pipefail, grep -q quitting early can SIGPIPE the
      # echo, and the pristine file was then kept for a patched one (a fresh build failed on it).
      grep -qxF "$f" <<<"$new_files" && want="$stage/$f"
      if [ ! -f "$want" ]; then rm -f "$PSRC/$f"
      elif ! cmp -s "$want" "$PSRC/$f"; then mkdir -p "$PSRC/$(dirname "$f")" && cp "$want" "$PSRC/$f"; fi
    done
    for f in $new_files; do  # the patched tree must now hold every patched file: say so if not
      if [ -f "$stage/$f" ] && ! cmp -s "$stage/$f" "$PSRC/$f"; then
        log "patched $f did not reach $PSRC"; rm -rf "$stage"; exit 1
      fi
    done
    rm -rf "$stage"
    echo "$new_files" >"$PSRC/.cogumi-patched-files"
    echo "$PATCH_HASH" >"$PSRC/.cogumi-patches"
  fi
  SRC="$PSRC"
fi

# ---- build + install the libraries -----------------------------------------
OPTS=(-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_BUILD_IS_DEV=OFF
  -DLLAMA_BUILD_COMMON=ON)  # libllama-common: chat templates (Jinja), tool-call parsing, JSON-Schema grammars
KEY="cpu"
if ((CUDA)); then
  OPTS+=(-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90)
  KEY="cuda90"
fi
OPTS_HASH=$(echo "${OPTS[*]}" | sha256sum | cut -c1-8)
if [ "$PATCH_HASH" = none ]; then
  PREFIX="$CACHE/llama-$LLAMA_VERSION-$KEY-$OPTS_HASH"
  BUILD="$PREFIX.build"
else
  PREFIX="$CACHE/llama-$LLAMA_VERSION-$KEY-$OPTS_HASH-p$PATCH_HASH"
  BUILD="$CACHE/llama-$LLAMA_VERSION-$KEY-$OPTS_HASH-patched.build"
fi

if [ ! -f "$PREFIX/.cogumi-ok" ]; then
  log "building llama.cpp $LLAMA_VERSION ($KEY) into $PREFIX with $JOBS jobs (cold: ~10 min on 2 cores)"
  if command -v ccache >/dev/null; then OPTS+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
  cmake -S "$SRC" -B "$BUILD" -G Ninja "${OPTS[@]}" \
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_EXAMPLES=ON -DCMAKE_INSTALL_PREFIX="$PREFIX" >&2
  cmake --build "$BUILD" -j "$JOBS" --target llama llama-common >&2
  # Install only the library component pieces: headers, libs, CMake package files.
  rm -rf "$PREFIX"
  # cmake --install of unbuilt tools fails; copy the library artefacts explicitly instead.
  mkdir -p "$PREFIX/lib" "$PREFIX/include"
  cp -a "$SRC/include/"*.h "$PREFIX/include/"
  cp -a "$SRC/ggml/include/"*.h "$PREFIX/include/"
  find "$BUILD/bin" -maxdepth 1 -name 'lib*.so*' -exec cp -a {} "$PREFIX/lib/" \;
  ln -sfn "$SRC" "$PREFIX/src"
  touch "$PREFIX/.cogumi-ok"
fi

# What the pipeline's stage keys name as the engine (src/core/build_info.cpp, through CMake): the pinned version and
# the sha256 of the patches' text, so that a changed patch reruns the stages whose numbers it may change.
ENGINE_ID="llama.cpp $LLAMA_VERSION patches $PATCH_SHA"
[ "$(cat "$PREFIX/cogumi-engine.txt" 2>/dev/null)" = "$ENGINE_ID" ] || echo "$ENGINE_ID" >"$PREFIX/cogumi-engine.txt"

TOOL_TARGETS=(llama-bench llama-batched-bench llama-completion llama-simple llama-server llama-imatrix llama-quantize)
if ((TOOLS)) && [ ! -x "$PREFIX/bin/llama-quantize" ]; then
  log "building llama.cpp tools (${TOOL_TARGETS[*]})"
  # llama-server (the peer in bench/mixed_lora_bench.sh): only adds targets, the libraries keep their flags
  cmake -S "$SRC" -B "$BUILD" -DLLAMA_BUILD_SERVER=ON >&2
  cmake --build "$BUILD" -j "$JOBS" --target "${TOOL_TARGETS[@]}" >&2
  mkdir -p "$PREFIX/bin"
  for t in "${TOOL_TARGETS[@]}"; do cp -a "$BUILD/bin/$t" "$PREFIX/bin/"; done
fi

echo "$PREFIX"
