#!/usr/bin/env bash
# Fills .devcache/, the folder bench/device.sh needs on the GPU machine (which has no network):
# the pinned node-llama-cpp tarball (llama.cpp's source) and the Debian packages Cogumi builds
# against (headers, bubblewrap for the code sandbox). Carry it: run(carry=[".devcache"]).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .devcache/debs
scripts/deps.sh >/dev/null  # puts the tarball into the cache
cp -u "${COGUMI_CACHE:-$HOME/.cache/cogumi}/npm/node-llama-cpp-3.22.1.tgz" .devcache/
cd .devcache/debs
apt-get download nlohmann-json3-dev libcli11-dev libfmt-dev libfmt9 libssl-dev zlib1g-dev bubblewrap \
  libcpp-httplib-dev libcpp-httplib0.11 libyaml-cpp-dev libyaml-cpp0.7 libsqlite3-dev libsqlite3-0 libre2-dev libre2-9 2>/dev/null
du -sh .. >&2
