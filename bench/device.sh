#!/usr/bin/env bash
# GPU benchmarks on the device machine (H100), in two back-to-back phases so that each
# stays well inside the 10-minute command limit (the machine keeps files ~30 s between calls).
#   bench/device.sh build    # both builds, nothing measured (the first of back-to-back calls)
#   bench/device.sh llama    # CUDA build of the pinned llama.cpp (libs + bench tools), sm_90; with PACK=1 the
#                            # install comes back in parts (llama-cuda.tar.xz.*) to keep in .devcache/: later
#                            # calls restore it instead of building (when the patches have not changed)
#   bench/device.sh cogumi   # build cogumi, make an 8B-shaped Q4_K_M model, run the benchmarks
#   bench/device.sh engine   # build cogumi; 8B Q4_K_M decode: llama-batched-bench vs cogumi with
#                            # backend (in-graph) greedy and with host greedy
#   bench/device.sh train    # build cogumi; LoRA r=16 training, cogumi train vs PEFT, 1B and 8B shapes
#                            # (env SHAPES="1b 8b", TYPES="bf16 q4_k_m", CFGS="1 1024,4 1024,1 2048" (batch seq)
#                            # pick a part, to fit the 10-minute limit; SCHED_DEBUG=1 saves one step's op placement;
#                            # BWD="f32 bf16" runs each row with both backward weight types of patch 0002;
#                            # CKPT="0 1 b16 auto" without, with --checkpoint-activations, with --checkpoint-blocks 16, with
#                            # --checkpoint-blocks auto --max-memory-gib $MAXMEM (default 16); FA="off on" each row with
#                            # and without --flash-attn (default: the trainer's auto, on); DQ="off on" the same for
#                            # --dequant-forward (a quantized base as BF16 copies); OP="off on" for --out-prod-grads; FAB="recompute fused"
#                            # for --flash-attn-backward (FABCHECK=1 first checks and times patch 0009's kernels alone); SPLIT="group split"
#                            # computes each shared-input group's LoRA A x once or per module (COGUMI_LORA_GROUP_FORWARD); NCU=1
#                            # times each row's kernels of one step with Nsight Compute (bench/ncu_sum.py: ncu-*.md;
#                            # unlike PROFILE's per-node times, which inflate small nodes by their launch and sync);
#                            # PROFILE=1 adds each row's
#                            # per-op times, COGUMI_TRAIN_PROFILE=1, as profile-*.txt)
#   bench/device.sh mixedlora [STREAMS]  # (after `llama`: it builds llama-server too) 8B Q4_K_M and three
#                            # rank-16 random adapters: cogumi one batch (fused op and unfused) vs grouped vs llama-server;
#                            # LORACHECK=1 first checks and times patch 0010's kernels alone; PREP=1 stops after the
#                            # builds and models (on a fresh machine: `PREP=1 ... mixedlora`, then `mixedlora` back to back);
#                            # ENVS="GGML_CUDA_DISABLE_GRAPHS=1 GGML_CUDA_GRAPH_OPT=1" reruns ours at 32 streams under each
#   bench/device.sh compress8b  # (after `llama`) issue 15 on the GPU, a model with Llama-3.1-8B's tensor shapes and
#                            # vocabulary but 8 of its 32 layers (random F16): our imatrix + quantize vs
#                            # llama-imatrix + llama-quantize (bench/quant_bench.sh, TYPES), then uniform prunes'
#                            # prefill/decode speed against the unpruned model (bench/prune_bench.sh, LEVELS)
#   bench/device.sh qlora8b     # issue 14's correctness row: LoRA on an 8B-shaped Q4_K_M base vs on its BF16 source,
#                            # held-out loss step by step (bench/qlora_loss.sh)
#   bench/device.sh pipeline8b  # `cogumi run` on an 8B-shaped random F16 model: every stage on the GPU, small
#                            # samples, seconds per stage (bench/pipeline8b.sh); builds what it needs; PIPE_DEADLINE=570
#                            # ends the pipeline 570 s after the script's start, whatever the builds took
#   bench/device.sh prefix8b    # the prefix cache on the GPU: `cogumi eval` on 8B-shaped Q4_K_M, real MMLU 5-shot,
#                            # with and without --no-prefix-cache (bench/prefix_cache_bench.sh, SETS=mmlu5; REPS (1),
#                            # MMLU_LIMIT (1000); CONTROL (32): cache off at that --parallel too; NANO (1): the trained
#                            # nano base on the mining set the same way); builds what it needs, the model made once per
#                            # machine; on a fresh machine `PREP=1 ... prefix8b` first (llama.cpp's build: 511 s on
#                            # an H100 in session 39), then `prefix8b` back to back (cogumi, the model, the runs);
#                            # tables and the first differing outputs (diffs.txt)
#                            # to $OUT
#   bench/device.sh servetools  # bench/serve_tools_load.sh with CUDA (1B-shaped F16, --prepare off vs on); on a fresh
#                            # machine `PREP=1 ... servetools` first; the table to $OUT/servetools.md
#   bench/device.sh pack8b      # compress pack at 8B on every core and on one, CPU build only (PACK_THREADS="16 1")
#   bench/device.sh nano "<nano base args>"...      # nano base candidates side by side: base.gguf, recipe,
#                                                   # training log, dev accuracy (200 items per domain); on a fresh
#                                                   # machine `PREP=1 bench/device.sh nano` first (the builds only;
#                                                   # also for engine|train|nanoloop|nanoselect)
#   bench/device.sh nanoloop I "<nano loop args>"... # loops on candidate I's base, side by side
#   [BASE=I] bench/device.sh nanoselect "<nano loop args>"...  # loop settings chosen on dev (bench/nano_select.py),
#                                                   # the chosen one reported on test
#                                                   # (I = ship: the shipped models/nano-base.gguf; nanoloop's
#                                                   # I = shipX: the same with CURRICULUM_EXTRA's `nano data` flags
#                                                   # added, e.g. CURRICULUM_EXTRA="--n-choice 6000")
# Needs the carried folder .devcache/ (npm tarball + Debian -dev packages; the device image
# has no network). Results go to $OUT (device tool) or out/device.
set -euo pipefail
cd "$(dirname "$0")/.."
export COGUMI_CACHE=/root/.cache/cogumi COGUMI_SKIP_APT=1 JOBS=16
OUT="${OUT:-out/device}"
# cogumi's CUDA build lives outside the working tree: the device tool replaces a carried folder (.snap/) on
# every call, and a build inside it would start cold each time.
BC="${BC:-/root/build-cuda}"
cogumi_build() {  # cogumi_build PREFIX [TARGET...]: configure and build cogumi (CUDA) in $BC; a failure shows its error
  local prefix=$1 t=(); shift
  [ $# -gt 0 ] && t=(--target "$@")
  cmake -S . -B "$BC" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOGUMI_LLAMA_PREFIX="$prefix" \
    -DCOGUMI_BUILD_TESTS=OFF -DZLIB_ROOT="$DEPS/usr" -DOPENSSL_ROOT_DIR="$DEPS/usr" >"$OUT/cmake.txt" 2>&1 ||
    { tail -20 "$OUT/cmake.txt" >&2; exit 1; }
  cmake --build "$BC" -j 16 "${t[@]}" >"$OUT/build.txt" 2>&1 ||
    { grep -B2 -A20 -m3 FAILED "$OUT/build.txt" >&2; echo "device.sh: the cogumi build failed (build.txt)" >&2; exit 1; }
}
cuda_cogumi_app() {  # the GPU to $OUT/gpu.txt, llama.cpp with CUDA (sets PREFIX), then cogumi's app
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
  PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
  echo "device.sh: llama.cpp ready at ${SECONDS} s"
  # PREP=1: llama.cpp's build only, the first of two back-to-back calls (session 40's H200: 429 s; session 39's
  # H100: 511 s); the second call builds cogumi (66 s) and runs. A call cut off mid-build resumes where it stopped
  # when the next comes while the machine is warm.
  [ "${PREP:-0}" = 1 ] && exit 0
  cogumi_build "$PREFIX" cogumi_app
  rm -f "$OUT/cmake.txt" "$OUT/build.txt"  # kept only on failure (the device tool returns at most 8 files)
  echo "device.sh: builds done at ${SECONDS} s"
}
ship_curriculum() {  # ship_curriculum DIR [ARGS]: the shipped base and the curriculum it was trained on (models/nano-base.json's
  # recipe), ARGS appended (e.g. --n-choice 6000: option-lookup items in the modifiers' replay mix; flags the recipe
  # already gives cannot be given again)
  mkdir -p "$1" && cp models/nano-base.gguf "$1/base.gguf"
  "$B/cogumi" nano data -o "$1/data" $(python3 bench/curriculum_args.py) ${2:-} >/dev/null
  echo "${2:-}" >"$1/curriculum-extra.txt"
}
mkdir -p "$OUT" "$COGUMI_CACHE/npm"
# The pinned llama.cpp source, unpacked where scripts/deps.sh looks (bench/devcache.sh packs it).
SRC="$COGUMI_CACHE/llama.cpp-0.5.0-src"
if [ ! -f "$SRC/.cogumi-ok" ]; then
  rm -rf "$SRC" && mkdir -p "$SRC"
  xz -dc .devcache/llama-src.tar.xz | tar -C "$SRC" -xf -
  xz -dc .devcache/llama-vocab.tar.xz | tar -C "$SRC" -xf -
  touch "$SRC/.cogumi-ok"
fi
DEPS=/opt/cogumi-debs
if [ ! -d "$DEPS" ]; then
  mkdir -p "$DEPS"
  for f in .devcache/debs/*.deb; do dpkg-deb -x "$f" "$DEPS"; done
fi
# Cogumi links Debian's shared libfmt (libfmt9, unpacked above with the rest).
test -f "$DEPS/usr/lib/x86_64-linux-gnu/libfmt.so.9.1.0" || { echo "device.sh: .devcache lacks libfmt9" >&2; exit 1; }
export CMAKE_PREFIX_PATH="$DEPS/usr"
# bubblewrap, for the code sandbox (the device image lacks it)
export PATH="$PATH:$DEPS/usr/bin"
# A CUDA llama.cpp install packed by an earlier call (`PACK=1 bench/device.sh llama`, its parts copied into
# .devcache/): restored here it saves the ~4.5-minute cold build of each fresh machine. deps.sh uses it only
# when its key (build options, patches' hash) matches; otherwise it builds as before. Mind the device tool's 64 MiB
# carry: the tracked tree (~30 MB) + .devcache (~20 MB) + .snap leave no room for the ~41 MB pack, so a call
# that carries it is refused (session 14); the pack only helps once the tree or the pack is smaller.
if ls .devcache/llama-cuda.tar.xz.* >/dev/null 2>&1; then
  cat .devcache/llama-cuda.tar.xz.* | xz -dc | tar -C "$COGUMI_CACHE" -xf - || echo "device.sh: the packed llama.cpp in .devcache is unreadable; building" >&2
fi
case "${1:-}" in
  build)
    # Both builds only (CUDA llama.cpp with its tools, then cogumi): the first of back-to-back calls, so
    # that the measuring calls after it (the machine stays warm ~30 s) spend their 10 minutes measuring.
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    PREFIX=$(scripts/deps.sh --cuda --tools | tail -n 1)
    time cogumi_build "$PREFIX"
    # the cuBLAS calls behind the trainer's thin LoRA matmuls, timed alone (bench/cublas_shapes.py)
    python3 bench/cublas_shapes.py >"$OUT/cublas.md" 2>&1 || tail -3 "$OUT/cublas.md"
    ;;
  llama)
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    cat /etc/os-release | head -2; ls /usr/include/zlib.h /usr/include/openssl/sha.h 2>&1 | head -2
    PREFIX=$(scripts/deps.sh --cuda --tools | tail -n 1)
    if [ -n "${PACK:-}" ]; then
      # parts of 15 MiB (the device tool returns files up to 16 MiB): copy them from the call's files into .devcache/
      tar -C "$COGUMI_CACHE" -cf - "$(basename "$PREFIX")" | xz -T16 -6 | split -b 15M - "$OUT/llama-cuda.tar.xz."
      ls -la "$OUT"/llama-cuda.tar.xz.*
    fi
    ;;
  cogumi)
    PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
    cogumi_build "$PREFIX"
    B=$BC/bin
    M=/root/m8b-q4km.gguf
    if [ ! -f "$M" ]; then
      time "$B/cogumi" model init "$M" --shape 8b --type q4_k_m --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" --seed 1
    fi
    "$B/cogumi" info "$M" | head -8 | tee "$OUT/model.txt"
    {
      echo "## llama-bench (tg128, pp512, fa on)"
      "$PREFIX/bin/llama-bench" -m "$M" -ngl 99 -fa 1 -p 512 -n 128 -r 3 2>/dev/null
      echo "## llama-batched-bench (pp 128, tg 128)"
      "$PREFIX/bin/llama-batched-bench" -m "$M" -ngl 99 -fa on -c 20000 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,8,32,64 2>/dev/null | grep '^|'
      echo "## cogumi engine (pp 128, tg 128)"
      "$B/cogumi-bench-engine" -m "$M" --pp 128 --tg 128 --npl 1,8,32,64 --fa 1 --reps 2 --json "$OUT/engine.jsonl"
      echo "## GSM8K test (1319 questions), max tokens 256, EOS ignored: harness vs one at a time"
      MAXTOK=256 bench/eval_bench.sh "$B/cogumi" "$M" 1319 48 64 --ctx 512
    } 2>&1 | tee "$OUT/bench.md"
    ;;
  mixedlora)
    # Many modifiers, one batch (bench/mixed_lora_bench.sh): base only / one adapter / spread over three.
    # NOSERVER=1: cogumi's setups only (no llama-server, so llama.cpp builds without its tools: ~1 minute less).
    if [ "${NOSERVER:-0}" = 1 ]; then PREFIX=$(scripts/deps.sh --cuda | tail -n 1); else PREFIX=$(scripts/deps.sh --cuda --tools | tail -n 1); fi
    cogumi_build "$PREFIX" cogumi_app cogumi-bench-mixed-lora
    B=$BC/bin
    M=/root/m8b-q4km.gguf
    [ -f "$M" ] || "$B/cogumi" model init "$M" --shape 8b --type q4_k_m --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" --seed 1 >/dev/null
    A=""
    for i in 1 2 3; do
      # rank 16 on all seven linear modules (what cogumi train makes), B non-zero so each adapter changes outputs
      [ -f /root/m8b-lora$i.gguf ] || "$B/cogumi" lora init "$M" /root/m8b-lora$i.gguf --rank 16 \
        --targets q,k,v,o,gate,up,down --seed $i --std-b 0.01 >/dev/null
      A="$A${A:+,}/root/m8b-lora$i.gguf"
    done
    if [ "${LORACHECK:-0}" = 1 ]; then
      # Patch 0010's fused adapter-slot kernels alone: results against a double-precision reference, then one decode
      # step's adapter work at the 8B shapes against the unfused form (bench/lora_slots/check.cu).
      nvcc -O3 -std=c++17 -arch=sm_90 -I"$COGUMI_CACHE/llama.cpp-0.5.0-patched/ggml/src/ggml-cuda" bench/lora_slots/check.cu \
        -lcublas -o /root/lora_check && /root/lora_check 2>&1 | tee "$OUT/lora-slots-check.txt"
    fi
    [ "${PREP:-0}" = 1 ] && exit 0  # builds and models only (the first of two back-to-back calls)
    server="$PREFIX/bin/llama-server"
    [ "${NOSERVER:-0}" = 1 ] && server=""
    STREAMS=${2:-1,8,32} PP=128 TG=128 FA=1 LLAMA_SERVER="$server" \
      bench/mixed_lora_bench.sh "$B" "$M" "$A" "$OUT/mixed_lora" 2>&1 | tee "$OUT/mixed_lora.md"
    # ENVS="VAR=V ...": ours again at 32 streams under each setting, e.g. GGML_CUDA_DISABLE_GRAPHS=1 (are CUDA graphs
    # what hides the adapters' launches?), GGML_CUDA_GRAPH_OPT=1 (ggml-cuda's concurrent Q/K/V streams) or
    # GGML_COGUMI_LORA_SIDE=2 (patch 0013 on); ENV_SETUPS picks the setups of those reruns (default all)
    for e in ${ENVS:-}; do
      echo "## with $e" | tee -a "$OUT/mixed_lora.md"
      env "$e" STREAMS=${ENV_STREAMS:-32} SETUPS="${ENV_SETUPS:-}" PP=128 TG=128 FA=1 LLAMA_SERVER="" \
        bench/mixed_lora_bench.sh "$B" "$M" "$A" "$OUT/mixed_lora_${e%%=*}" 2>&1 | tee -a "$OUT/mixed_lora.md"
    done
    ;;
  engine|train|nano|nanoloop|nanoselect)
    PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
    if [ "$1" = engine ]; then cogumi_build "$PREFIX"; else cogumi_build "$PREFIX" cogumi_app; fi  # the others: the CLI only
    [ "${PREP:-0}" = 1 ] && exit 0  # the builds only: the first of back-to-back calls on a fresh machine
    B=$BC/bin
    VOCAB="$PREFIX/src/models/ggml-vocab-llama-bpe.gguf"
    if [ "$1" = nano ]; then
      # The nano base model, trained on the GPU (variants side by side), shipped as models/nano-base.gguf.
      shift
      i=0
      for v in "$@"; do
        i=$((i + 1))
        ( D=/root/nano$i
          "$B/cogumi" nano base --dir $D $v >$D.txt 2>&1
          mkdir -p "$OUT/v$i"; cp $D/base.gguf $D/recipe.json "$OUT/v$i/"
          cp $D/base-f32.gguf.log.jsonl "$OUT/v$i/train.log.jsonl" 2>/dev/null; tail -2 $D.txt
          # Candidates are compared on the dev splits; test accuracy is measured only for the one shipped.
          "$B/cogumi" eval -m $D/base.gguf --bench gsm8k=$D/data/math/dev.jsonl --bench humaneval=$D/data/code/dev.jsonl \
            --bench mmlu=$D/data/reasoning/reasoning_dev.csv --bench bfcl=$D/data/automation/dev.jsonl -n 96 \
            --parallel 64 -o $D/dev >/dev/null 2>&1
          cp $D/dev/summary.json "$OUT/v$i/dev-summary.json"
          python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["benchmarks"]; print(sys.argv[2], "dev:", {k: round(100*v["accuracy"],1) for k,v in s.items()})' \
            $D/dev/summary.json "v$i $v" ) &
      done
      wait
    elif [ "$1" = nanoloop ]; then
      # Loop configurations side by side on one candidate's base and curriculum (modifiers on the GPU).
      I=$2 D=/root/nano$2
      shift 2
      # (made again when CURRICULUM_EXTRA differs from what made it on this machine)
      if [[ "$I" == ship* ]] && { [ ! -f $D/data/manifest.json ] || [ "$(cat $D/curriculum-extra.txt 2>/dev/null)" != "${CURRICULUM_EXTRA:-}" ]; }; then
        # The shipped base and the curriculum scripts/run.sh writes for it (I = ship), or with CURRICULUM_EXTRA's
        # arguments added (I = ship<anything>, its own directory).
        ship_curriculum $D "${CURRICULUM_EXTRA:-}"
      fi
      j=0
      for v in "$@"; do
        j=$((j + 1))
        ( L=/root/loop${I}_$(echo "$v" | md5sum | cut -c1-8)
          "$B/cogumi" nano loop --dir $L --base $D/base.gguf --data $D/data $v >$L.txt 2>&1 || tail -5 $L.txt
          mkdir -p "$OUT/loop${I}_$j"; cp $L/loop.json $L/table.md "$OUT/loop${I}_$j/" 2>/dev/null
          echo "## loop${I}_$j: $v"; cat $L/table.md ) &
      done
      wait
    elif [ "$1" = nanoselect ]; then
      # Settings chosen on dev, reported on test: every configuration's loop on the dev splits
      # (side by side), bench/nano_select.py picks one by its stated rule, and only that one runs on
      # test (its modifiers and mined failures are reused). Rerunning the same command resumes.
      # BASE=I: candidate I of an earlier `nano` call on this machine (its base and curriculum) instead of the
      # shipped base; the loops' directories are then per candidate too.
      D=/root/nanoship
      [ -n "${BASE:-}" ] && D=/root/nano$BASE
      [ -n "${BASE:-}" ] && [ ! -f $D/base.gguf ] && { echo "device.sh: no candidate $BASE on this machine ($D)" >&2; exit 1; }
      shift
      if [ ! -f $D/data/manifest.json ]; then
        ship_curriculum $D
      fi
      dirs=()
      for v in "$@"; do
        L=/root/sel${BASE:-}_$(echo "$v" | md5sum | cut -c1-8)
        dirs+=("$L")
        [ -f $L/loop-dev.json ] || "$B/cogumi" nano loop --dir $L --base $D/base.gguf --data $D/data --eval-split dev $v >$L.dev.txt 2>&1 &
      done
      wait
      for L in "${dirs[@]}"; do [ -f $L/loop-dev.json ] || { tail -5 $L.dev.txt; exit 1; }; done
      python3 bench/nano_select.py "${dirs[@]/%//loop-dev.json}" | tee "$OUT/select.md"
      best=$(tail -1 "$OUT/select.md")
      args=("$@")
      L=${dirs[$best]}
      echo "## chosen on dev: ${args[$best]}" | tee -a "$OUT/select.md"
      "$B/cogumi" nano loop --dir $L --base $D/base.gguf --data $D/data ${args[$best]} >$L.test.txt 2>&1 || tail -5 $L.test.txt
      cp $L/loop.json "$OUT/loop-test.json"; cat $L/table.md | tee -a "$OUT/select.md"
      for i in "${!dirs[@]}"; do { echo "## dev table of candidate $i: ${args[$i]}"; cat ${dirs[$i]}/table-dev.md; } >>"$OUT/select.md"; done
      # The chosen modifiers (the nano system's, shipped in models/) and their training records.
      tar czf "$OUT/modifiers.tgz" -C $L $(cd $L && ls modifiers/*/modifier.gguf modifiers/*/train.json modifiers/*/stage.json 2>/dev/null)
    elif [ "$1" = engine ]; then
      M=/root/m8b-q4km.gguf
      [ -f "$M" ] || "$B/cogumi" model init "$M" --shape 8b --type q4_k_m --vocab "$VOCAB" --seed 1 >/dev/null
      {
        echo "## llama-batched-bench (pp 128, tg 128)"
        "$PREFIX/bin/llama-batched-bench" -m "$M" -ngl 99 -fa on -c 20000 -b 2048 -ub 512 -npp 128 -ntg 128 -npl 1,8,32,64 2>/dev/null | grep '^|'
        echo "## cogumi engine, greedy in llama.cpp's graph (backend sampling)"
        "$B/cogumi-bench-engine" -m "$M" --pp 128 --tg 128 --npl 1,8,32,64 --fa 1 --reps 2 --backend-sampling --json "$OUT/engine-backend.jsonl"
        echo "## cogumi engine, greedy on the host (the default)"
        "$B/cogumi-bench-engine" -m "$M" --pp 128 --tg 128 --npl 1,8,32,64 --fa 1 --reps 2 --json "$OUT/engine.jsonl"
      } 2>&1 | tee "$OUT/engine.md"
    else
      if [ "${FABCHECK:-0}" = 1 ]; then
        # Patch 0009's fused flash-attention backward kernels alone: gradients against a double-precision
        # reference, then their time per layer at the 1B and 8B training shapes (bench/fattn_back/check.cu).
        nvcc -O3 -std=c++17 -arch=sm_90 -I"$COGUMI_CACHE/llama.cpp-0.5.0-patched/ggml/src/ggml-cuda" bench/fattn_back/check.cu \
          -o /root/fab_check && /root/fab_check 2>&1 | tee "$OUT/fattn-back-check.txt"
      fi
      # Long examples (every token a target) so each row is full: pure training throughput.
      python3 -c 'import json,random
r=random.Random(1); w=["alpha","beta","gamma","delta","omega","token","model","train","speed","value"]
with open("/root/long.jsonl","w") as f:
  for i in range(64): f.write(json.dumps({"prompt":"x","completion":" ".join(r.choice(w) for _ in range(3000))})+"\n")'
      # Peak GPU memory of one command, measured the same way for both sides: nvidia-smi's memory.used,
      # sampled every 200 ms while the command runs, minus the reading before it starts (the
      # CUDA context and allocator reserve count; PyTorch's max_memory_allocated would not).
      peak_gib() {  # peak_gib LOG CMD...: runs CMD with its output in LOG, prints the peak in GiB
        local log=$1 idle; shift; idle=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits | head -1)
        nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 >/root/mem.txt &
        local smi=$!
        "$@" >"$log" 2>&1 || true
        kill $smi; wait $smi 2>/dev/null || true
        python3 -c 'import sys; m=max(int(x) for x in open("/root/mem.txt").read().split() if x.strip().isdigit()); print(round((m-int(sys.argv[1]))/1024,2))' "$idle"
      }
      {
        if [ -n "${SCHED_DEBUG:-}" ]; then
          # Which backend runs each op of one training step (ggml's scheduler splits): CPU fallbacks show here.
          M=/root/m-1b-bf16.gguf
          [ -f "$M" ] || "$B/cogumi" model init "$M" --shape 1b --type bf16 --vocab "$VOCAB" --seed 1 >/dev/null
          GGML_SCHED_DEBUG=2 "$B/cogumi" train -m "$M" -d /root/long.jsonl -o /root/a.gguf --lora-rank 16 \
            --targets q,k,v,o,gate,up,down --seq-len 256 --batch 1 --max-steps 1 --train-on-inputs --clip 0 2>&1 |
            head -c 400000 >"$OUT/sched.txt" || true
        fi
        # LoRA keeps the frozen base in its file's type (patch 0002): a BF16 and a Q4_K_M base per shape.
        for shape in ${SHAPES:-1b 8b}; do for type in ${TYPES:-bf16 q4_k_m}; do
          M=/root/m-$shape-$type.gguf
          # a quantized base from the BF16 one when the loop made it (one random init per shape: an 8B init is minutes)
          if [ ! -f "$M" ] && [ -f /root/m-$shape-bf16.gguf ]; then "$B/cogumi" model quantize /root/m-$shape-bf16.gguf "$M" --type $type >/dev/null; fi
          [ -f "$M" ] || "$B/cogumi" model init "$M" --shape $shape --type $type --vocab "$VOCAB" --seed 1 >/dev/null
          IFS=, read -ra cfgs <<<"${CFGS:-1 1024,4 1024,1 2048}"
          for cfg in "${cfgs[@]}"; do for bwd in ${BWD:-auto}; do for ck in ${CKPT:-0}; do for fa in ${FA:-auto}; do for dq in ${DQ:-auto}; do for op in ${OP:-auto}; do for sp in ${SPLIT:-group}; do for fab in ${FAB:-auto}; do
            set -- $cfg
            [ $shape = 8b ] && [ "$1" = 4 ] && continue
            # BWD: the type of the frozen weights' transposed copies in the backward pass (patch 0002)
            rm -f /root/a.gguf.log.jsonl  # a run that stops early must not report the previous row's log
            MEM=$(COGUMI_LORA_GROUP_FORWARD=$sp GGML_COGUMI_BACKWARD_WEIGHT_TYPE=$bwd peak_gib /root/train.txt "$B/cogumi" train -m "$M" -d /root/long.jsonl -o /root/a.gguf --lora-rank 16 --lora-alpha 16 \
              --targets q,k,v,o,gate,up,down --seq-len $2 --batch $1 --max-steps 8 --train-on-inputs --clip 0 \
              --flash-attn $fa --flash-attn-backward $fab --dequant-forward $dq --out-prod-grads $op $(case $ck in 1) echo --checkpoint-activations ;; b*) echo --checkpoint-blocks ${ck#b} ;; auto) echo --checkpoint-blocks auto --max-memory-gib ${MAXMEM:-16} ;; esac))
            python3 -c 'import json,sys
log=[json.loads(l) for l in open("/root/a.gguf.log.jsonl")]
t=[l["tokens"]/l["tokens_per_s"] for l in log]
steady=(log[-1]["tokens"]-log[1]["tokens"])/(t[-1]-t[1])
print(json.dumps({"impl":"cogumi","base":sys.argv[5],"backward":sys.argv[6],"checkpoint":sys.argv[7]=="1","checkpoint_blocks":int(sys.argv[7][1:]) if sys.argv[7].startswith("b") else 0,"ckpt":sys.argv[7],"flash_attn":sys.argv[8],"dequant_forward":sys.argv[9],"out_prod_grads":sys.argv[10],"lora_a":sys.argv[11],"fa_backward":sys.argv[12],"shape":sys.argv[1],"batch":int(sys.argv[2]),"seq":int(sys.argv[3]),"tokens_per_s":round(steady,1),"tokens_per_s_with_setup":round(log[-1]["tokens_per_s"],1),"peak_gib_nvidia_smi":float(sys.argv[4]),"loss":[round(log[0]["loss"],3),round(log[-1]["loss"],3)]}))' $shape $1 $2 "$MEM" $type $bwd $ck $fa $dq $op $sp $fab || tail -5 /root/train.txt
            grep '^train: ' /root/train.txt | sort -u | head -4  # ops the GPU backend left to the CPU, if any
            [ "$ck" = auto ] && { grep -m1 '^memory on' /root/train.txt || true; }  # the plan auto chose by
            if [ "${NCU:-0}" = 1 ] && [ "$ck" = 0 ]; then
              # Each kernel of one training step timed by Nsight Compute (bench/ncu_sum.py sums them by kernel and grid).
              COGUMI_LORA_GROUP_FORWARD=$sp timeout 240 ncu --clock-control none --csv --metrics gpu__time_duration.sum \
                "$B/cogumi" train -m "$M" -d /root/long.jsonl -o /root/p.gguf --lora-rank 16 --lora-alpha 16 \
                --targets q,k,v,o,gate,up,down --seq-len $2 --batch $1 --max-steps 1 --train-on-inputs --clip 0 \
                --flash-attn $fa --flash-attn-backward $fab --dequant-forward $dq --out-prod-grads $op >/root/ncu.csv 2>/root/ncu.err || tail -3 /root/ncu.err
              python3 bench/ncu_sum.py /root/ncu.csv >"$OUT/ncu-$shape-$type-$1x$2-$bwd-fa$fa-$fab-dq$dq-op$op-$sp.md" || true
            fi
            if [ "${PROFILE:-0}" = 1 ] && [ "$ck" = 0 ]; then
              # Where a step's time goes, op by op (COGUMI_TRAIN_PROFILE=1: each node timed alone, 3 steps).
              COGUMI_TRAIN_PROFILE=1 COGUMI_LORA_GROUP_FORWARD=$sp GGML_COGUMI_BACKWARD_WEIGHT_TYPE=$bwd "$B/cogumi" train -m "$M" -d /root/long.jsonl \
                -o /root/p.gguf --lora-rank 16 --lora-alpha 16 --targets q,k,v,o,gate,up,down --seq-len $2 --batch $1 \
                --max-steps 3 --train-on-inputs --clip 0 --flash-attn $fa --flash-attn-backward $fab --dequant-forward $dq --out-prod-grads $op 2>&1 |
                grep -A30 'train profile' >"$OUT/profile-$shape-$type-$1x$2-$bwd-fa$fa-$fab-dq$dq-op$op-$sp.txt" || true
            fi
          done; done; done; done; done; done; done; done
          [ $type = bf16 ] || rm -f "$M"
        done; rm -f /root/m-$shape-*.gguf; done
        for spec in 1b:1:1024:8 1b:4:1024:8 1b:1:2048:8 8b:1:1024:6 8b:1:2048:6; do
          [ "${PEFT:-1}" = 1 ] || break  # PEFT=0: ours only (an A/B of our own settings)
          case ",${CFGS:-1 1024,4 1024,1 2048}," in *",$(echo $spec | cut -d: -f2) $(echo $spec | cut -d: -f3),"*) ;; *) continue ;; esac
          case " ${SHAPES:-1b 8b} " in *" ${spec%%:*} "*) ;; *) continue ;; esac
          MEM=$(peak_gib /root/peft.txt python3 bench/peft_bench.py $spec)
          python3 -c 'import json,sys
r=json.loads([l for l in open("/root/peft.txt") if l.startswith("{")][-1]); r["peak_gib_nvidia_smi"]=float(sys.argv[1]); print(json.dumps(r))' "$MEM" || tail -5 /root/peft.txt
        done
      } 2>&1 | tee "$OUT/train.md"
    fi
    ;;
  compress8b)
    PREFIX=$(scripts/deps.sh --cuda --tools | tail -n 1)
    cogumi_build "$PREFIX" cogumi_app cogumi-bench-engine
    B=$BC/bin
    M=/root/c8-f16.gguf
    [ -f "$M" ] || /usr/bin/time -f "model init: %e s" "$B/cogumi" model init "$M" --shape 8b --n-layer ${LAYERS:-8} \
      --type f16 --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" --seed 1 >/dev/null
    "$B/cogumi" info "$M" | head -8 | tee "$OUT/model.txt"
    # Text: the nano curriculum (as in RESULTS' CPU rows): calibration = the training mix, scored = test splits.
    Q=/root/qdata
    [ -f $Q/mix/train.jsonl ] || "$B/cogumi" nano data -o $Q --n-train 400 --n-dev 10 --n-test 150 --n-mix 0 >/dev/null
    python3 bench/quant_text.py /root/calib.txt $Q/mix/train.jsonl
    python3 bench/quant_text.py /root/eval.txt $Q/math/test.jsonl $Q/code/test.jsonl $Q/automation/test.jsonl
    if [ "${QUANT:-1}" = 1 ]; then
      CTX=512 CHUNKS=${CHUNKS:-32} EVAL_CHUNKS=${EVAL_CHUNKS:-16} TYPES="${TYPES:-q4_k_m iq4_xs}" THREADS=16 \
        COGUMI=$B/cogumi LLAMA_BIN=$PREFIX/bin bench/quant_bench.sh "$M" /root/calib.txt /root/eval.txt /root/q8 2>&1 |
        tee "$OUT/quant.md"
      cp /root/q8/report.json "$OUT/quant-report.json" 2>/dev/null || true
    fi
    if [ "${PRUNE:-1}" = 1 ]; then
      NGL=99 RECOVER=0 EVAL=0 THREADS=16 PP=512 TG=128 KINDS="${KINDS:-uniform}" LEVELS="${LEVELS:-0.1 0.2 0.3 0.5}" \
        bench/prune_bench.sh $B "$M" /root/p8 2>&1 | tee "$OUT/prune.md"
    fi
    ;;
  pipeline8b)
    # `cogumi run` on an 8B-shaped random F16 model, every stage on the GPU (bench/pipeline8b.sh)
    PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
    cogumi_build "$PREFIX" cogumi_app
    # PIPE_DEADLINE (seconds since this script started): the pipeline's own limit is what is left of it after the
    # builds, so a cold machine's first call builds and runs as far as the device call's limit allows
    if [ -n "${PIPE_DEADLINE:-}" ]; then
      export PIPE_TIMEOUT=$((PIPE_DEADLINE - SECONDS))
      [ "$PIPE_TIMEOUT" -gt 0 ] || { echo "device.sh: the builds took ${SECONDS} s, past PIPE_DEADLINE" >&2; exit 124; }
      echo "device.sh: builds done at ${SECONDS} s, pipeline limit ${PIPE_TIMEOUT} s"
    fi
    bench/pipeline8b.sh "$BC/bin/cogumi" "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" "$OUT/pipeline8b"
    ;;
  prefix8b)
    # The prefix cache (src/engine/generate.cpp) with an 8B-shaped Q4_K_M model on the GPU: `cogumi eval` offloads
    # every layer by default (--ngl -1); the KV copy threshold is the engine's automatic 64 tokens on a GPU
    # (GeneratorOptions::min_shared_prefix has no CLI flag)
    cuda_cogumi_app
    M=/root/m8b-q4km.gguf
    if [ ! -f "$M" ]; then  # made under another name first: a call cut off mid-init leaves no partial model behind
      "$BC/bin/cogumi" model init /root/m8b-q4km.part.gguf --shape 8b --type q4_k_m --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" \
        --seed 1 >/dev/null && mv /root/m8b-q4km.part.gguf "$M"
      echo "device.sh: model made at ${SECONDS} s"
    fi
    "$BC/bin/cogumi" info "$M" | head -8 || true
    # CONTROL (32): a third run per set with the cache off at --parallel 32, against the cache-off run at 64: what the
    # batch composition alone changes. NANO=1 (the default) then runs the trained nano base on the mining set the same
    # way: a model whose logits are not near flat.
    W=/root/prefix8b rc=0
    SETS=mmlu5 REPS=${REPS:-1} MMLU_LIMIT=${MMLU_LIMIT:-1000} CONTROL=${CONTROL:-32} bench/prefix_cache_bench.sh \
      "$BC/bin/cogumi" "$M" "$W" | tee "$OUT/prefix8b.md" || rc=$?
    echo "device.sh: 8B bench done at ${SECONDS} s (exit $rc)"
    if [ "${NANO:-1}" = 1 ]; then
      SETS=mine REPS=1 CONTROL=${CONTROL:-32} bench/prefix_cache_bench.sh "$BC/bin/cogumi" models/nano-base.gguf \
        /root/prefixnano | tail -n 3 | tee -a "$OUT/prefix8b.md" || rc=$?
      echo "device.sh: nano bench done at ${SECONDS} s (exit $rc)"
    fi
    # the first differing items of each comparison, to read (the device tool returns at most 8 files)
    python3 bench/prefix_diffs.py "$W"/mmlu5-{on,off,off${CONTROL:-32}} /root/prefixnano/mine-{on,off,off${CONTROL:-32}} \
      >"$OUT/diffs.txt" 2>&1 || true
    exit $rc
    ;;
  servetools)
    # bench/serve_tools_load.sh with CUDA: long streams while chat requests with tools arrive, each rendered by the
    # model's Jinja template, prepared on the engine's thread (--prepare off) and on the HTTP threads (on, what
    # auto picks with the model on the GPU). A random 1B-shaped F16 model with Llama 3.1's template (SHAPE), made
    # once per machine; STREAMS (16), TOKENS (512), RATE (20), PARALLEL (16), THREADS (0: the default).
    # On a fresh machine `PREP=1 ... servetools` first (llama.cpp's build), then `servetools` back to back.
    cuda_cogumi_app
    rc=0
    SHAPE=${SHAPE:-1b} STREAMS=${STREAMS:-16} TOKENS=${TOKENS:-512} RATE=${RATE:-20} PARALLEL=${PARALLEL:-16} \
      THREADS=${THREADS:-0} WORK=/root/servetools LLAMA_SRC="$PREFIX/src" bench/serve_tools_load.sh "$BC/bin/cogumi" |
      tee "$OUT/servetools.md" || rc=$?
    echo "device.sh: bench done at ${SECONDS} s (exit $rc)"
    exit $rc
    ;;
  pack8b)
    # `cogumi compress pack` at 8B on the machine's cores, CPU only (no CUDA build): an 8B-shaped Q5_K_M file, the type
    # compress.quantize makes, packed on every core and on one (PACK_THREADS); the packs must have the same sha256
    # (bench/RESULTS.md "Compression"). A first call may stop after the model (PACK_THREADS=none).
    PREFIX=$(scripts/deps.sh | tail -n 1)
    BC=/root/build-cpu
    cogumi_build "$PREFIX" cogumi_app
    M=/root/m8b-q5km.gguf
    [ -f "$M" ] || /usr/bin/time -f "model init (8b, q5_k_m): %e s" -a -o "$OUT/pack8b.md" "$BC/bin/cogumi" model init "$M" \
      --shape 8b --type q5_k_m --vocab "$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" --seed 1 >/dev/null
    { nproc; ls -l "$M"; } | tee -a "$OUT/pack8b.md"
    for t in ${PACK_THREADS:-16 1}; do
      [ "$t" = none ] && break
      /usr/bin/time -f "pack, --threads $t: %e s wall, %M KB max RSS" -a -o "$OUT/pack8b.md" \
        "$BC/bin/cogumi" compress pack "$M" -o "/root/m8b.t$t.czst" --threads "$t" >/dev/null
      { sha256sum "/root/m8b.t$t.czst"; ls -l "/root/m8b.t$t.czst"; } | tee -a "$OUT/pack8b.md"
      [ "$t" = 16 ] && /usr/bin/time -f "verify: %e s wall" -a -o "$OUT/pack8b.md" "$BC/bin/cogumi" compress verify "/root/m8b.t16.czst" >/dev/null
    done
    cat "$OUT/pack8b.md"
    ;;
  qlora8b)
    # A LoRA on an 8B-shaped Q4_K_M base against one on the BF16 base it was quantized from: held-out loss step by
    # step (bench/qlora_loss.sh; STEPS, default 60)
    PREFIX=$(scripts/deps.sh --cuda | tail -n 1)
    cogumi_build "$PREFIX" cogumi_app
    VOCAB="$PREFIX/src/models/ggml-vocab-llama-bpe.gguf" bench/qlora_loss.sh "$BC/bin/cogumi" 8b /root/qlora "${STEPS:-60}"
    cp /root/qlora/summary.md /root/qlora/lora-*.gguf.log.jsonl "$OUT/" 2>/dev/null || true
    ;;
  *) echo "usage: bench/device.sh llama|cogumi|engine|train|mixedlora|compress8b|pipeline8b|prefix8b|pack8b|qlora8b|nano|nanoloop|nanoselect" >&2; exit 2 ;;
esac
