#!/usr/bin/env bash
# Many LoRA modifiers, one batch: throughput and time to first token at several concurrent stream
# counts, base only / one adapter / requests spread over all adapters, for
#   cogumi   Generator with adapter slots (mixed) and grouped by adapter (cogumi-bench-mixed-lora)
#   server   llama-server from the same llama.cpp bundle (optional: LLAMA_SERVER=path), the
#            adapters loaded with --lora and chosen per request ("lora": [{"id", "scale"}]),
#            driven by concurrent streaming /completion requests from Python.
# Both sides: pp random prompt tokens and tg generated tokens per request (EOS ignored, greedy),
# all streams started together; throughput = generated tokens / wall time of the whole wave.
#
# Usage: bench/mixed_lora_bench.sh BIN_DIR MODEL ADAPTER1,ADAPTER2,... [OUT_DIR]
#   env: STREAMS (1,8,32)  PP (64)  TG (128)  REPS (1)  NGL (-1: all layers on the GPU if any)
#        FA (-1)  THREADS (0: all cores)  LLAMA_SERVER (unset: skip the llama-server side)
#        SETUPS (cogumi's setups, comma-separated; unset: cogumi-bench-mixed-lora's default, all of them)
# Example (CPU, nano system):
#   bench/mixed_lora_bench.sh build/bin models/nano-base.gguf \
#     models/nano-math.gguf,models/nano-code.gguf,models/nano-reasoning.gguf
set -euo pipefail
BIN=$1 MODEL=$2 ADAPTERS=$3 OUT=${4:-out/mixed_lora}
setups_arg=()
[ -n "${SETUPS:-}" ] && setups_arg=(--setups "$SETUPS")
STREAMS=${STREAMS:-1,8,32} PP=${PP:-64} TG=${TG:-128} REPS=${REPS:-1} NGL=${NGL:--1} FA=${FA:--1} THREADS=${THREADS:-0}
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"

echo "## cogumi (adapter slots: 'mixed'; one adapter group after another: 'grouped')"
"$BIN/cogumi-bench-mixed-lora" -m "$MODEL" --adapters "$ADAPTERS" --streams "$STREAMS" "${setups_arg[@]}" \
  --pp "$PP" --tg "$TG" --reps "$REPS" --ngl "$NGL" --fa "$FA" --threads "$THREADS" --json "$OUT/results.jsonl"

[ -n "${LLAMA_SERVER:-}" ] || exit 0

echo "## llama-server (same bundle; adapters per request)"
max_streams=$(echo "$STREAMS" | tr ',' '\n' | sort -n | tail -1)
port=${PORT:-18187}
lora_args=()
IFS=',' read -ra files <<<"$ADAPTERS"
for f in "${files[@]}"; do lora_args+=(--lora "$f"); done
fa_arg=auto; [ "$FA" = 1 ] && fa_arg=on; [ "$FA" = 0 ] && fa_arg=off
ngl_arg=$NGL; [ "$NGL" = -1 ] && ngl_arg=99
thr_args=(); [ "$THREADS" != 0 ] && thr_args=(-t "$THREADS" -tb "$THREADS")
"$LLAMA_SERVER" -m "$MODEL" "${lora_args[@]}" --lora-init-without-apply -np "$max_streams" \
  -c $((max_streams * (PP + TG + 64))) -b 2048 -ngl "$ngl_arg" -fa "$fa_arg" "${thr_args[@]}" \
  --host 127.0.0.1 --port "$port" --no-webui >"$OUT/llama-server.log" 2>&1 &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
python3 - "$port" "$STREAMS" "$PP" "$TG" "$REPS" "${#files[@]}" "$OUT/results.jsonl" "$MODEL" <<'EOF'
import json, random, sys, threading, time, urllib.request
port, streams, pp, tg, reps, n_adapters, out, model = sys.argv[1:]
pp, tg, reps, n_adapters = int(pp), int(tg), int(reps), int(n_adapters)
url = f"http://127.0.0.1:{port}"
for _ in range(600):  # up to 10 minutes to load
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as r:
            if r.status == 200: break
    except Exception:
        pass
    time.sleep(1)
else:
    sys.exit("llama-server did not become healthy")
n_vocab = 32000  # prompt token ids drawn from [300, n_vocab): ordinary tokens of a Llama-3 vocabulary
try:  # smaller vocabularies (the nano system's)
    with urllib.request.urlopen(url + "/v1/models", timeout=10) as r:
        n_vocab = min(n_vocab, int(json.load(r)["data"][0]["meta"]["n_vocab"]))
except Exception:
    pass
rng = random.Random(1234)

def one(prompt, lora, res, i, t0):
    body = json.dumps({"prompt": prompt, "n_predict": tg, "ignore_eos": True, "temperature": 0.0,
                       "stream": True, "cache_prompt": False, "lora": lora}).encode()
    req = urllib.request.Request(url + "/completion", data=body, headers={"Content-Type": "application/json"})
    first, n = None, 0
    with urllib.request.urlopen(req, timeout=3600) as r:
        for line in r:
            if not line.startswith(b"data: "): continue
            d = json.loads(line[6:])
            if first is None and d.get("content") is not None: first = time.perf_counter() - t0
            if d.get("stop"): n = d.get("tokens_predicted", d.get("timings", {}).get("predicted_n", 0))
    res[i] = (first, n)

def wave(s, setup):
    prompts = [[rng.randrange(300, n_vocab) for _ in range(pp)] for _ in range(s)]
    loras = [[] if setup == "base" else [{"id": 0 if setup == "one" else i % n_adapters, "scale": 1.0}] for i in range(s)]
    res = [None] * s
    t0 = time.perf_counter()
    th = [threading.Thread(target=one, args=(prompts[i], loras[i], res, i, t0)) for i in range(s)]
    for t in th: t.start()
    for t in th: t.join()
    wall = time.perf_counter() - t0
    ttft = sorted(r[0] * 1000 for r in res)
    return sum(r[1] for r in res) / wall, ttft[len(ttft) // 2], ttft[min(len(ttft) - 1, int(0.9 * (len(ttft) - 1) + 0.5))]

print("| streams | setup | gen tok/s | TTFT p50 ms | TTFT p90 ms |\n|---:|---|---:|---:|---:|")
for s in [int(x) for x in streams.split(",")]:
    for setup in ["base", "one", "spread"]:
        wave(1, setup)  # warm-up
        best = max((wave(s, setup) for _ in range(reps)), key=lambda r: r[0])
        print(f"| {s} | {setup} | {best[0]:.1f} | {best[1]:.1f} | {best[2]:.1f} |", flush=True)
        with open(out, "a") as f:
            f.write(json.dumps({"bench": "mixed_lora", "engine": "llama-server", "model": model, "streams": s,
                                "setup": setup, "pp": pp, "tg": tg, "tok_s": best[0], "ttft_p50_ms": best[1],
                                "ttft_p90_ms": best[2]}) + "\n")
EOF
