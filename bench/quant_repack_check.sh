#!/usr/bin/env bash
# Quantized batched decode with llama.cpp's CPU weight repacking (AMX on CPUs that have it), through
# cogumi and through stock llama.cpp tools, on random models of widths 64..512 (Q8_0, Q4_K_M).
# One line per run: "ok" or the signal it died of. patches/0003-amx-tile-config.patch is what
# turned the SIGILL/SIGSEGV of every such run on an AMX CPU into "ok"; to see the crash, point
# LD_LIBRARY_PATH at a llama.cpp install made without that patch (the binaries load its libraries).
# Usage: bench/quant_repack_check.sh COGUMI LLAMA_BIN_DIR [OUT_DIR]
#   LLAMA_BIN_DIR: the bin/ of scripts/deps.sh --tools (llama-batched-bench, llama-server)
set -uo pipefail
COGUMI="$1"
LB="$2"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
W="${3:-$(mktemp -d)}"
mkdir -p "$W"
echo "cpu: $(lscpu | grep -o -E 'amx_int8|avx512_vnni' | sort -u | tr '\n' ' ')"
outcome() {  # outcome RC: ok, or the signal
  if [ "$1" -eq 0 ]; then echo ok; elif [ "$1" -gt 128 ]; then echo "died: $(kill -l $(($1 - 128)))"; else echo "exit $1"; fi
}
for i in $(seq 8); do echo "{\"id\":\"p$i\",\"prompt\":\"Question $i: Sam has $((i + 3)) apples and eats two. How many are left?\"}"; done >"$W/prompts.jsonl"

serve_run() {  # serve_run MODEL: cogumi serve -m MODEL, 8 concurrent chat requests
  "$COGUMI" serve -m "$1" --host 127.0.0.1 --port 0 >"$W/srv.out" 2>"$W/srv.err" &
  local s=$! port ok=0 i
  for _ in $(seq 150); do grep -q "listening on" "$W/srv.out" && break; kill -0 $s 2>/dev/null || break; sleep 0.2; done
  port=$(sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' "$W/srv.out")
  local pids=()
  for i in $(seq 8); do
    curl -s -m 60 -H 'Content-Type: application/json' "http://127.0.0.1:${port:-1}/v1/chat/completions" \
      -d "{\"max_tokens\":16,\"messages\":[{\"role\":\"user\",\"content\":\"count to $i\"}]}" -o "$W/r$i.json" &
    pids+=($!)
  done
  wait "${pids[@]}"
  for i in $(seq 8); do jq -e '.choices[0].message.content | type == "string"' "$W/r$i.json" >/dev/null 2>&1 && ok=$((ok + 1)); done
  if kill -0 $s 2>/dev/null; then kill $s; wait $s; echo "ok ($ok/8 answered)"; else wait $s; echo "$(outcome $?) ($ok/8 answered)"; fi
}

for w in 64 128 256 512; do
  for t in q8_0 q4_k_m; do
    [ "$t" = q4_k_m ] && [ $w -lt 256 ] && continue  # k-quants need rows of 256
    m="$W/m-$w-$t.gguf"
    "$COGUMI" model init "$m" --n-embd $w --n-layer 2 --n-head 4 --n-head-kv 4 --n-ff $((3 * w)) --type $t \
      --std 0.2 >/dev/null 2>&1 || { echo "model init $w $t failed"; exit 1; }
    for par in 1 8; do
      "$COGUMI" generate -m "$m" --prompts "$W/prompts.jsonl" -n 16 --ignore-eos -q --parallel $par --threads 2 \
        -o "$W/gen.jsonl" >/dev/null 2>&1
      echo "width $w $t: cogumi generate --parallel $par: $(outcome $?)"
    done
    rm -rf "$W/ev"
    "$COGUMI" eval -m "$m" --bench gsm8k="$REPO/datasets/gsm8k/test.jsonl" --limit 32 --max-tokens 16 --parallel 16 \
      -o "$W/ev" >/dev/null 2>&1
    echo "width $w $t: cogumi eval --parallel 16: $(outcome $?)"
    echo "width $w $t: cogumi serve, 8 concurrent requests: $(serve_run "$m")"
    "$LB/llama-batched-bench" -m "$m" -c 4096 -b 512 -ub 512 -npp 32 -ntg 16 -npl 1,2,4,8,16 -t 2 >/dev/null 2>&1
    echo "width $w $t: llama-batched-bench -npl 1,2,4,8,16: $(outcome $?)"
  done
done
