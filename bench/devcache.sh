#!/usr/bin/env bash
# Fills .devcache/, the folder bench/device.sh needs on the GPU machine (which has no network):
# the pinned node-llama-cpp tarball (llama.cpp's source) and the Debian packages Cogumi builds
# against (headers, bubblewrap for the code sandbox). Carry it: run(carry=[".devcache"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devcache/debs
scripts/deps.sh >/dev/null  # unpacks the pinned source into the cache
# The pinned source without git history, docs and all but the Llama vocabularies: ~12 MB instead of
# the 35 MB npm tarball, so that the repository and this folder fit the device's 64 MiB together.
# bench/device.sh unpacks it where scripts/deps.sh looks for the source (patches apply at build).
SRC="${COGUMI_CACHE:-$HOME/.cache/cogumi}/llama.cpp-0.5.0-src"
rm -f .devcache/node-llama-cpp-3.22.1.tgz
if git -C "$SRC" rev-parse -q --verify HEAD >/dev/null 2>&1 && [ -n "$(git -C "$SRC" status --porcelain -uno)" ]; then
  echo "$SRC has local changes; run scripts/deps.sh on a clean cache first" >&2; exit 1
fi
tar -C "$SRC" --exclude=./.git --exclude=./docs --exclude='./models/*' -cf - . |
  xz -T2 -6 >.devcache/llama-src.tar.xz
(cd "$SRC" && tar -cf - models/ggml-vocab-llama-bpe.gguf models/ggml-vocab-llama-spm.gguf \
  models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja) | xz -6 >.devcache/llama-vocab.tar.xz
cd .devcache/debs
apt-get download nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libssl-dev zlib1g-dev bubblewrap \
  libcpp-httplib-dev libcpp-httplib0.11 libyaml-cpp-dev libyaml-cpp0.7 libsqlite3-dev libsqlite3-0 libre2-dev libre2-9 libhnswlib-dev libzstd-dev libzstd1 libeigen3-dev 2>/dev/null
du -sh .. >&2
