#!/usr/bin/env bash
# cogumi compress vocab (issue 15): the trained nano base trimmed to one domain's vocabulary (the math
# curriculum's training text), and a random model of nano's shape with Llama 3's 128,256-token BPE
# vocabulary trimmed to the same text (where the output head dominates, as in a small model).
# Prints vocabulary and file sizes, perplexity and bits per byte on in-domain text (math test) and
# out-of-domain text (code test, real GSM8K), greedy accuracy on the math test items before and after,
# and decode speed (cogumi generate, 16 prompts x 256 tokens, 2 threads) before and after.
#   bench/vocab_bench.sh [LIMIT]     (eval items, default 100)
# COGUMI=BIN skips the build; BENCH_DIR=DIR keeps the files (default /tmp/cogumi-vocab-bench);
# NANO_DATA=DIR reuses a nano curriculum (cogumi nano data --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1).
set -euo pipefail
cd "$(dirname "$0")/.."
COGUMI="${COGUMI:-$(scripts/build.sh | tail -n 1)}"
LIMIT="${1:-100}"
T="${BENCH_DIR:-/tmp/cogumi-vocab-bench}"
N="${NANO_DATA:-$T/nano-data}"
mkdir -p "$T"
[ -f "$N/manifest.json" ] || "$COGUMI" nano data -o "$N" --seed 1 --n-train 12000 --n-mix 3000 --difficulty 2,math=1 >/dev/null
# The corpus as the model reads and writes it: the eval's prompt format around each training item
# (the raw JSONL values lack "Question:" / "Answer:", and prompts with those words would tokenize
# differently after the trim).
python3 - "$N/math/train.jsonl" >"$T/math-corpus.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    j = json.loads(line)
    print(json.dumps({"text": f"Question: {j['question']}\nAnswer: {j['answer']}"}))
PY
EVAL=(--eval "$N/math/test.jsonl" --eval "$N/code/test.jsonl" --eval datasets/gsm8k/test.jsonl --eval-texts 200)
echo "## nano base (trained, F16, SPM vocabulary fitted to the nano curriculum) -> math vocabulary"
"$COGUMI" compress vocab -m models/nano-base.gguf --corpus "$T/math-corpus.jsonl" -o "$T/nano-math-vocab.gguf" "${EVAL[@]}"
speed() {  # MODEL
  python3 -c 'import json; [print(json.dumps({"prompt": f"Question: Gus has {i+3} stickers. He gives {i} away. How many stickers does Gus have now?\nAnswer:"})) for i in range(16)]' >"$T/prompts.jsonl"
  "$COGUMI" generate -m "$1" --prompts "$T/prompts.jsonl" -n 256 --ignore-eos --parallel 16 --threads 2 -o "$T/gen.jsonl" 2>&1 >/dev/null | tail -1
}
for m in models/nano-base.gguf "$T/nano-math-vocab.gguf"; do
  echo "speed $m: $(speed "$m")"
  out="$T/eval-$(basename "$m" .gguf)"
  rm -rf "$out"
  "$COGUMI" eval -m "$m" --bench gsm8k="$N/math/test.jsonl" -n 96 --parallel 64 --limit "$LIMIT" -o "$out" >"$out.log" 2>&1
  python3 -c 'import json,sys; r=[json.loads(l)["correct"] for l in open(sys.argv[1]+"/items.jsonl")]; print("eval", sys.argv[2], sum(r), "/", len(r), "correct")' "$out" "$m"
done
python3 - "$T/eval-nano-base" "$T/eval-nano-math-vocab" <<'PY'
import json, sys
a, b = ([json.loads(l) for l in open(d + "/items.jsonl")] for d in sys.argv[1:3])
same = sum(x["output"] == y["output"] for x, y in zip(a, b))
print(f"greedy responses identical before/after: {same}/{len(a)}")
PY
echo "## random model, nano shape, Llama 3 BPE vocabulary (128,256 tokens) -> math vocabulary"
BPE=$(grep -m1 COGUMI_LLAMA_PREFIX: build/CMakeCache.txt 2>/dev/null | cut -d= -f2)/src/models/ggml-vocab-llama-bpe.gguf
[ -f "$T/bpe-nano.gguf" ] || "$COGUMI" model init "$T/bpe-nano.gguf" --shape nano --type f16 --vocab "$BPE" >/dev/null
"$COGUMI" compress vocab -m "$T/bpe-nano.gguf" --corpus "$T/math-corpus.jsonl" -o "$T/bpe-nano-math.gguf"
for m in "$T/bpe-nano.gguf" "$T/bpe-nano-math.gguf"; do echo "speed $m: $(speed "$m")"; done
