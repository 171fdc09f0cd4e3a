#!/usr/bin/env bash
# The chat-template costs of bench/chat_template_bench.cpp on a random-weight model with Llama 3.1 Instruct's own
# template and Llama 3's tokenizer (both from the pinned llama.cpp source), made once in WORK.
#   bench/chat_template_bench.sh [BUILD_DIR (build)] [TURNS (8)] [REPS (200)] [WORK (/tmp/cogumi-chat-template)]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:-build} TURNS=${2:-8} REPS=${3:-200} WORK=${4:-/tmp/cogumi-chat-template}
SRC="$(scripts/deps.sh | tail -n 1)/src"
mkdir -p "$WORK"
M="$WORK/llama31-template.gguf"
[ -f "$M" ] || "$B/bin/cogumi" model init "$M" --type f16 --vocab "$SRC/models/ggml-vocab-llama-bpe.gguf" \
  --chat-template "$SRC/models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja" >/dev/null
"$B/bin/cogumi-bench-chat-template" "$M" "$TURNS" "$REPS"
