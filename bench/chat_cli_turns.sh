#!/usr/bin/env bash
# cogumi chat: does a session's next turn reuse the KV cache the turns before it left (GeneratorOptions::
# keep_cache, on in the runtime), against --no-prefix-cache (every prompt decoded whole), on one model in the
# same run. The system is the model alone (no router) with `history: H`, so each turn's prompt holds the last H
# turns and a new question; T questions are piped in, each answered with TOKENS tokens, --json output. Prints per
# setting: the prompt tokens asked and taken from the cache over turns 2..T, and their mean and total seconds
# (the runtime's own per-answer time: routing, prompt, generation).
# ASK_AS (gsm8k): how each question is asked: chat (the model's chat template, the history as its messages) or a
# completion form (gsm8k: each earlier exchange as a question and answer before the new one; any model).
# Usage: bench/chat_cli_turns.sh [COGUMI] [MODEL] [T=8] [TOKENS=24] [H=16]   env: ASK_AS
set -euo pipefail
R=$(cd "$(dirname "$0")/.." && pwd)
COGUMI=${1:-$R/build/bin/cogumi} MODEL=$(realpath "${2:-$R/models/nano-base.gguf}") T=${3:-8} TOK=${4:-24} H=${5:-16}
for v in T TOK H; do
  [[ "${!v}" =~ ^[0-9]+$ && "${!v}" -ge 1 && "${!v}" -le 64 ]] || { echo "chat_cli_turns.sh: $v must be in 1..64" >&2; exit 2; }
done
ASK_AS=${ASK_AS:-gsm8k}
W=$(mktemp -d); trap 'rm -rf "$W"' EXIT
cat >"$W/system.yaml" <<YAML
name: chat-bench
base: $MODEL
history: $H
choices: {base: {ask_as: $ASK_AS}}
generation: {max_tokens: $TOK, parallel: 4}
YAML
python3 - "$T" >"$W/in.txt" <<'PY'
import sys
qs = ["Sam has 30 cards. He gives 11 away. How many cards does Sam have now?",
      "Then he buys 5 more packs of 4 cards each. How many cards does he have now?",
      "He gives half of them to his sister Mia. How many does he keep for himself?",
      "Mia already had 7 cards. How many cards do the two of them have together now?",
      "They lose 3 cards on the bus home. How many cards are left between them?",
      "Each card is worth 2 dollars. What are all of their cards worth in dollars?",
      "If they sell a quarter of the cards, how many cards do they sell, rounded down?",
      "Write the whole story so far as one sentence with every number in it."]
for t in range(int(sys.argv[1])):
    print(qs[t % len(qs)])
PY
echo "| setting | turns | prompt tokens, turns 2..$T | of them cached | seconds per turn, turns 2..$T (mean) | total |"
echo "|---|---:|---:|---:|---:|---:|"
for flag in "" --no-prefix-cache; do
  "$COGUMI" chat -s "$W/system.yaml" --session new --memory "$W/s${flag}.db" --json $flag <"$W/in.txt" \
    >"$W/out.jsonl" 2>"$W/err.txt" || { cat "$W/err.txt" >&2; exit 1; }
  python3 - "${flag:-prefix cache (default)}" "$W/out.jsonl" <<'PY'
import json, sys
label, path = sys.argv[1:]
rs = [json.loads(l) for l in open(path) if l.startswith("{")]
later = rs[1:]
p = sum(r["prompt_tokens"] for r in later)
c = sum(r["cached_tokens"] for r in later)
s = [r["seconds"] for r in later]
print(f"| {label} | {len(rs)} | {p:,} | {c:,} | {sum(s) / max(len(s), 1):.2f} | {sum(r['seconds'] for r in rs):.1f} |")
PY
done
