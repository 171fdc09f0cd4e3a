#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan) and fuzzes or replays them.
#
# Usage: tests/fuzz/run.sh [--replay] [--runs N] [--time S] [--max-len B] [--build DIR] [TARGET ...]
#   (no --replay)  fuzz each target in turn, one process, until N executions (default 1,000,000)
#                  or S seconds (default 180); new inputs go to DIR/corpus/<target>, crashes to
#                  DIR/crashes/; prints a table of executions and crashes per target. Seeds: the
#                  saved corpus but its crash-* files (findings kept for replay).
#   --replay       run every saved input of tests/fuzz/corpus/<target>/ once (CI); fails on any
#                  crash, sanitizer report or finding, and when a target has no saved inputs.
#   TARGET         a subset (default: all); see tests/fuzz/README.md.
# Builds into DIR (default build-fuzz in the repository). Does not take the CPU lock itself:
# callers wrap it (flock /tmp/cogumi-cpu.lock tests/fuzz/run.sh ...), and a ctest run under the
# lock would otherwise wait on itself.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ALL=(jsonl csv load_gsm8k load_mmlu load_humaneval load_mbpp load_bbh load_bfcl load_jsonl extract tool_calls sft gguf_model gguf_lora gguf_checkpoint)

REPLAY=0; RUNS=1000000; TIME=180; MAXLEN=""; BUILD="$REPO/build-fuzz"; TARGETS=()
while (($#)); do
  case "$1" in
    --replay) REPLAY=1 ;;
    --runs) RUNS="$2"; shift ;;
    --time) TIME="$2"; shift ;;
    --max-len) MAXLEN="$2"; shift ;;
    --build) BUILD="$2"; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option '$1'" >&2; exit 2 ;;
    *) TARGETS+=("$1") ;;
  esac
  shift
done
((${#TARGETS[@]})) || TARGETS=("${ALL[@]}")
log() { echo "[fuzz] $*" >&2; }

# ---- clang + libFuzzer runtime, installed the way scripts/deps.sh installs packages -------------
CXX=clang++-14
FUZZER_RT=/usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a
if ! command -v "$CXX" >/dev/null || [ ! -f "$FUZZER_RT" ]; then
  log "installing clang-14 and libclang-rt-14-dev"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang-14 libclang-rt-14-dev; } >&2 ||
    true
fi
if ! command -v "$CXX" >/dev/null; then
  echo "run.sh: FAILED: $CXX not found and could not be installed (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 1
fi
if [ ! -f "$FUZZER_RT" ]; then
  echo "run.sh: FAILED: libFuzzer runtime $FUZZER_RT missing (apt-get install libclang-rt-14-dev)" >&2
  exit 1
fi

# ---- build --------------------------------------------------------------------------------------
PREFIX="${COGUMI_LLAMA_PREFIX:-$("$REPO/scripts/deps.sh" | tail -n 1)}"
if [ ! -f "$BUILD/build.ninja" ]; then
  launcher=(); command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$HERE" -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER="$CXX" -DCOGUMI_LLAMA_PREFIX="$PREFIX" \
    "${launcher[@]}" >&2
fi
cmake --build "$BUILD" >&2

# ---- run ----------------------------------------------------------------------------------------
# Leaks are reported at exit by LeakSanitizer; llama.cpp's backend registry keeps its allocations
# for the process's life, so leak checking stays on only where llama.cpp is not loaded.
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fail=0
if ((REPLAY)); then
  for t in "${TARGETS[@]}"; do
    dir="$HERE/corpus/$t"
    shopt -s nullglob; files=("$dir"/*); shopt -u nullglob
    if ((${#files[@]} == 0)); then
      echo "FAILED $t: no saved inputs in $dir" >&2; fail=1; continue
    fi
    leak=1; [[ $t == sft || $t == gguf* ]] && leak=0
    if ASAN_OPTIONS="detect_leaks=$leak" "$BUILD/fuzz_$t" -rss_limit_mb=4096 -timeout=20 "${files[@]}" \
        >"$BUILD/replay_$t.log" 2>&1; then
      echo "ok     $t: ${#files[@]} inputs"
    else
      echo "FAILED $t: see $BUILD/replay_$t.log"; tail -n 40 "$BUILD/replay_$t.log"; fail=1
    fi
  done
  exit $fail
fi

mkdir -p "$BUILD/crashes"
echo "mode: COGUMI_FUZZ_STRICT=${COGUMI_FUZZ_STRICT:-1} (1: stray exceptions and failed checks are findings; 0: only memory errors, UB, aborts)"
printf '%-15s %12s %8s %8s %7s  %s\n' target executions exec/s seconds crashes result
for t in "${TARGETS[@]}"; do
  work="$BUILD/corpus/$t"; mkdir -p "$work"
  leak=1; [[ $t == sft || $t == gguf* ]] && leak=0
  args=(-runs="$RUNS" -max_total_time="$TIME" -rss_limit_mb=4096 -timeout=30 -print_final_stats=1
        -artifact_prefix="$BUILD/crashes/$t-")
  [ -n "$MAXLEN" ] && args+=(-max_len="$MAXLEN")
  logf="$BUILD/fuzz_$t.log"
  start=$(date +%s)
  rc=0
  # Saved findings (crash-*) are replayed by --replay, not used as seeds: one not yet fixed would
  # end the run at its first input.
  seeds="$BUILD/seeds/$t"; rm -rf "$seeds"; mkdir -p "$seeds"
  for f in "$HERE/corpus/$t"/*; do [[ $(basename "$f") == crash-* ]] || cp "$f" "$seeds/"; done
  ASAN_OPTIONS="detect_leaks=$leak" "$BUILD/fuzz_$t" "${args[@]}" "$work" "$seeds" >"$logf" 2>&1 || rc=$?
  secs=$(($(date +%s) - start))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logf" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$logf" | tail -n 1)
  crashes=$(grep -cE '^==[0-9]+==ERROR|^SUMMARY: (Address|Undefined)|FUZZ CHECK FAILED|FUZZ UNCAUGHT|deadly signal|out-of-memory|timeout after' "$logf" || true)
  result=ok
  if ((rc != 0)); then
    result="FAILED (rc $rc): $(grep -m1 -E 'ERROR|FUZZ|deadly|out-of-memory|timeout' "$logf" || echo see log) -> $(ls -t "$BUILD/crashes/$t-"* 2>/dev/null | head -n 1)"
    fail=1
  fi
  printf '%-15s %12s %8s %8s %7s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "$secs" "$crashes" "$result"
done
exit $fail
