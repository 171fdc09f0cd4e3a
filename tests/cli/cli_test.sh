#!/usr/bin/env bash
# Integration test: the real cogumi binary on generated models, and llama.cpp's own
# llama-simple (built from the pinned source) loading a GGUF that cogumi wrote.
set -uo pipefail
COGUMI="$1"
SIMPLE="$2"
cd "$(dirname "$0")/../.."  # repository root (datasets/ holds the benchmark files)
. tests/lib.sh
expect_error() {  # expect_error NAME NEEDLE CMD...: exits 1 and stderr names NEEDLE
  local name="$1" needle="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -eq 1 ] && grep -qF -- "$needle" "$T/err"; then echo "ok   $name"; else
    echo "FAIL $name (rc=$rc)"; cat "$T/err"; fails=$((fails + 1)); fi
}
expect_bad_option() {  # expect_bad_option NAME NEEDLE CMD...: fails (not by a signal), stderr names NEEDLE, no abort
  local name="$1" needle="$2"; shift 2
  "$@" >"$T/out" 2>"$T/err"; local rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qF -- "$needle" "$T/err" && ! grep -qE "terminate called|Aborted|Segmentation|std::" "$T/err"; then
    echo "ok   $name"; else echo "FAIL $name (rc=$rc)"; cat "$T/err"; fails=$((fails + 1)); fi
}

"$COGUMI" model init "$T/m.gguf" --seed 5 --std 0.2 >/dev/null || { echo "model init failed"; exit 1; }
check "model init writes a GGUF" test -s "$T/m.gguf"

"$COGUMI" info "$T/m.gguf" --json >"$T/info.json"
check "info --json reports the arch" grep -q '"arch": "llama"' "$T/info.json"
check "info --json reports the chat template" grep -q 'im_start' "$T/info.json"
"$COGUMI" info "$T/m.gguf" >"$T/info.txt"
check "info text names the parameter count" grep -q "parameters" "$T/info.txt"

# Single prompt: streamed text on stdout.
"$COGUMI" generate -m "$T/m.gguf" -p "The answer is" -n 12 --ignore-eos -q >"$T/one.txt"
check "generate prints text" test -s "$T/one.txt"

# Many prompts from JSONL, chat and plain, results as JSONL with ids in order.
cat >"$T/prompts.jsonl" <<'J'
{"id": "a", "prompt": "The answer is"}
{"id": "b", "messages": [{"role": "user", "content": "How many apples?"}]}
{"id": "c", "prompt": "def add(a, b):", "max_tokens": 3}
J
"$COGUMI" generate -m "$T/m.gguf" --prompts "$T/prompts.jsonl" -n 10 --ignore-eos -q -o "$T/res.jsonl"
check "generate -o writes one line per prompt" test "$(wc -l <"$T/res.jsonl")" -eq 3
check "ids kept in order" test "$(python3 -c 'import json,sys; print(",".join(json.loads(l)["id"] for l in open(sys.argv[1])))' "$T/res.jsonl")" = "a,b,c"
check "per-line max_tokens honoured" python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert r[2]["n_gen_tokens"]==3 and r[0]["n_gen_tokens"]==10' "$T/res.jsonl"
check "chat prompt formatted with the template" python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert r[1]["prompt"].startswith("<|im_start|>user")' "$T/res.jsonl"

# Same greedy output from cogumi and from stock llama.cpp (llama-simple).
"$SIMPLE" -m "$T/m.gguf" -n 16 "The answer is" >"$T/simple.out" 2>"$T/simple.err"
check "llama-simple loads and runs a cogumi GGUF" test $? -eq 0
"$COGUMI" generate -m "$T/m.gguf" -p "The answer is" -n 16 --ignore-eos -q >"$T/ours.txt"
check "llama-simple's greedy text equals cogumi's" python3 -c '
import sys
simple=open(sys.argv[1],encoding="utf-8",errors="replace").read()
ours=open(sys.argv[2],encoding="utf-8",errors="replace").read().rstrip("\n").replace("\x00", "")  # printf %s drops NUL pieces
assert ours and ours in simple, (ours, simple)' "$T/simple.out" "$T/ours.txt"

# A random adapter changes the output; stock llama.cpp can load it too (via our engine: same loader).
"$COGUMI" lora init "$T/m.gguf" "$T/lora.gguf" --rank 4 --std-b 0.5 --std-a 0.5 >/dev/null
check "lora init writes an adapter" test -s "$T/lora.gguf"
"$COGUMI" generate -m "$T/m.gguf" --lora code="$T/lora.gguf" --adapter code -p "The answer is" -n 16 --ignore-eos -q >"$T/lora.txt"
check "adapter changes greedy output" bash -c '! cmp -s "$1" "$2"' _ "$T/lora.txt" "$T/ours.txt"

# Bad input: clear errors naming the thing at fault, exit code 1.
expect_error "missing model" "model file not found: '$T/nope.gguf'" "$COGUMI" info "$T/nope.gguf"
echo "not json" >"$T/bad.jsonl"
expect_error "malformed JSONL names file:line" "$T/bad.jsonl:1" "$COGUMI" generate -m "$T/m.gguf" --prompts "$T/bad.jsonl"
echo '{"id": 1}' >"$T/nofield.jsonl"
expect_error "missing field named" "missing field 'prompt'" "$COGUMI" generate -m "$T/m.gguf" --prompts "$T/nofield.jsonl"
expect_error "unknown adapter" "unknown adapter 'math'" "$COGUMI" generate -m "$T/m.gguf" -p hi --adapter math
long=$(python3 -c 'print("the answer " * 400)')
expect_error "prompt longer than context" "context holds 256 per sequence" "$COGUMI" generate -m "$T/m.gguf" -p "$long" --ctx 256
expect_error "bad shape" "multiple of n_head" "$COGUMI" model init "$T/bad.gguf" --n-head 5
expect_error "unknown lora target" "unknown LoRA target module 'qkv'" "$COGUMI" lora init "$T/m.gguf" "$T/l2.gguf" --targets q,qkv
head -c 1000 "$T/m.gguf" >"$T/trunc.gguf"
expect_error "truncated GGUF" "failed to load model '$T/trunc.gguf'" "$COGUMI" info "$T/trunc.gguf"

# Numeric options out of range: an error naming the option, before any work.
G=("$COGUMI" generate -m "$T/m.gguf" -p hi)
expect_bad_option "generate --parallel above --batch" "--parallel" "${G[@]}" --parallel 64 --batch 32
expect_bad_option "generate -n 0" "--max-tokens" "${G[@]}" -n 0
expect_bad_option "generate -n not a number" "--max-tokens" "${G[@]}" -n 1x
expect_bad_option "generate --temp nan" "--temp" "${G[@]}" --temp nan
expect_bad_option "generate --top-p 0" "--top-p" "${G[@]}" --top-p 0
expect_bad_option "generate --repeat-penalty 0" "--repeat-penalty" "${G[@]}" --repeat-penalty 0
expect_bad_option "generate --batch 8" "--batch" "${G[@]}" --batch 8
expect_bad_option "generate --parallel 0" "--parallel" "${G[@]}" --parallel 0
expect_bad_option "generate --ctx -1" "--ctx" "${G[@]}" --ctx -1
expect_bad_option "generate --threads -1" "--threads" "${G[@]}" --threads -1
expect_bad_option "generate --logprobs -2" "--logprobs" "${G[@]}" --logprobs -2
expect_bad_option "generate --adapter-scale inf" "--adapter-scale" "${G[@]}" --adapter-scale inf
echo '{"prompt": "hi", "max_tokens": 0}' >"$T/zero.jsonl"
expect_bad_option "prompt file max_tokens 0" "zero.jsonl:1: field 'max_tokens'" "$COGUMI" generate -m "$T/m.gguf" --prompts "$T/zero.jsonl"
E=("$COGUMI" eval -m "$T/m.gguf" --bench gsm8k=datasets/gsm8k/test.jsonl --limit 2 -o "$T/bad_run")
expect_bad_option "eval --chunk 0" "--chunk" "${E[@]}" --chunk 0
expect_bad_option "eval --timeout 0" "--timeout" "${E[@]}" --timeout 0
expect_bad_option "eval --pass-k x" "--pass-k" "${E[@]}" --pass-k x
expect_bad_option "eval --pass-k above --samples" "--pass-k 5" "${E[@]}" --pass-k 5
expect_bad_option "eval -n 0" "--max-tokens" "${E[@]}" -n 0
expect_bad_option "eval --samples 0" "--samples" "${E[@]}" --samples 0
expect_bad_option "eval --shots -1" "--shots" "${E[@]}" --shots -1
expect_bad_option "eval --limit -1" "--limit" "${E[@]}" --limit -1
expect_bad_option "eval --workers -1" "--workers" "${E[@]}" --workers -1
expect_bad_option "eval --parallel 300" "--parallel" "${E[@]}" --parallel 300
expect_bad_option "failures cluster -k -1" "-k" "$COGUMI" failures cluster "$T/bad_run" -m "$T/m.gguf" -k -1
expect_bad_option "nano data --n-test 0" "--n-test" "$COGUMI" nano data -o "$T/bad_nano" --n-test 0
expect_bad_option "nano base --lr 0" "--lr" "$COGUMI" nano base --dir "$T/bad_nano" --lr 0
expect_bad_option "nano loop --rank 0" "--rank" "$COGUMI" nano loop --dir "$T/bad_nano" --rank 0
expect_bad_option "nano loop --replay -1" "--replay" "$COGUMI" nano loop --dir "$T/bad_nano" --replay -1
check "no run was started by a rejected option" test ! -e "$T/bad_run/items.jsonl"
# Code to run and no sandbox: said before the model loads or anything is generated.
expect_bad_option "eval without a sandbox fails first" "the sandbox can't run here" env PATH=/nonexistent \
  "$COGUMI" eval -m "$T/m.gguf" --bench humaneval=datasets/humaneval/HumanEval.jsonl.gz --limit 2 -n 4 -o "$T/nosbx"
check "nothing generated without a sandbox" test ! -e "$T/nosbx/items.jsonl"

# Eval on the real GSM8K file, a failure extraction and a LoRA trained on it, end to end.
"$COGUMI" eval -m "$T/m.gguf" --bench gsm8k=datasets/gsm8k/test.jsonl --limit 6 -n 8 -o "$T/run" >"$T/eval.txt" 2>&1
check "eval writes items and a summary" test -s "$T/run/items.jsonl" -a -s "$T/run/summary.json"
check "eval prints a table" grep -q "gsm8k" "$T/eval.txt"
expect_bad_option "eval --resume refuses other settings" "max_tokens" "$COGUMI" eval -m "$T/m.gguf" --bench gsm8k=datasets/gsm8k/test.jsonl --limit 6 -n 9 -o "$T/run" --resume
check "a refused resume keeps the run" test "$(wc -l <"$T/run/items.jsonl")" -eq 6
"$COGUMI" failures extract "$T/run" -o "$T/fail.jsonl" --hard "$T/hard.jsonl" >/dev/null
check "failures extract writes training JSONL, asked as the eval asked" python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert r and all(x["prompt"].startswith("Question: ") and "####" in x["completion"] for x in r)' "$T/fail.jsonl"
"$COGUMI" failures extract "$T/run" -o "$T/fail_q.jsonl" --form question >/dev/null
check "failures extract --form question writes the plan's form" python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1])]; assert r and all("instruction" in x and "####" in x["output"] for x in r)' "$T/fail_q.jsonl"
"$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/fix.gguf" --lora-rank 4 --max-steps 3 --seq-len 96 --batch 2 >"$T/train.txt" 2>&1
check "train writes an adapter llama.cpp loads" "$COGUMI" generate -m "$T/m.gguf" --lora fix="$T/fix.gguf" --adapter fix -p hi -n 2 -q
# Patch 0020: attention's products skip their masked half; the adapter is byte for byte the one trained without.
"$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/causal.gguf" --lora-rank 4 --max-steps 3 --seq-len 96 --batch 2 --cpu >/dev/null 2>&1
GGML_COGUMI_CAUSAL=0 "$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/plain.gguf" --lora-rank 4 --max-steps 3 --seq-len 96 --batch 2 --cpu >/dev/null 2>&1
check "skipping attention's masked half trains the same adapter" cmp "$T/causal.gguf" "$T/plain.gguf"
# --f32-weights (the old switch) is --base-weights's alias: on holds the base in F32, and giving both is refused.
"$COGUMI" model quantize "$T/m.gguf" "$T/m16.gguf" --type f16 >/dev/null
"$COGUMI" train -m "$T/m16.gguf" -d "$T/fail.jsonl" -o "$T/f32w.gguf" --lora-rank 4 --max-steps 1 --seq-len 96 --batch 2 --f32-weights on --cpu >/dev/null 2>&1
check "train --f32-weights on holds an F16 base in F32" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["base_weights"] == "f32"' "$T/f32w.gguf.summary.json"
"$COGUMI" train -m "$T/m16.gguf" -d "$T/fail.jsonl" -o "$T/bf16w.gguf" --lora-rank 4 --max-steps 1 --seq-len 96 --batch 2 --base-weights bf16 --cpu >/dev/null 2>&1
check "train --base-weights bf16 holds an F16 base in BF16" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["base_weights"] == "bf16"' "$T/bf16w.gguf.summary.json"
"$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/bw.gguf" --max-steps 1 --base-weights bf16 --f32-weights on >"$T/bw.txt" 2>&1 && echo "exit 0" >>"$T/bw.txt"
check "train refuses --base-weights with --f32-weights by name" grep -qE -- '--(base-weights excludes --f32-weights|f32-weights excludes --base-weights)' "$T/bw.txt"
# MAML keeps no checkpoints and has no memory estimate: --resume/--dry-run are refused with it, not ignored.
"$COGUMI" train --maml -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/maml.gguf" --resume >"$T/maml.txt" 2>&1 && echo "exit 0" >>"$T/maml.txt"
check "train --maml refuses --resume by name" grep -qE -- '--(maml excludes --resume|resume excludes --maml)' "$T/maml.txt"
# Each mode's settings only with that mode (session 34: they were ignored unchecked), and --dry-run checks the
# options before its estimate reads them; numeric options out of range or NaN are refused by name.
expect_bad_option "train --maml refuses an SFT setting by name" "--batch is not a --maml setting" "$COGUMI" train --maml -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/maml.gguf" --batch -5
expect_bad_option "train refuses a --maml setting without --maml" "--shots is a --maml setting" "$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/x.gguf" --shots 3
expect_bad_option "train --dry-run checks --lora-rank first" "--lora-rank" "$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/x.gguf" --lora-rank 0 --dry-run --checkpoint-blocks auto
expect_bad_option "lora init refuses a NaN --std-a" "--std-a" "$COGUMI" lora init "$T/m.gguf" "$T/x.gguf" --std-a nan
expect_bad_option "lora merge refuses an infinite --scale" "--scale" "$COGUMI" lora merge "$T/m.gguf" "$T/fix.gguf" "$T/x.gguf" --scale inf
expect_bad_option "model init refuses --n-embd 0" "--n-embd" "$COGUMI" model init "$T/x.gguf" --n-embd 0
expect_bad_option "model init refuses a negative --std" "--std" "$COGUMI" model init "$T/x.gguf" --std -1
expect_bad_option "router eval refuses --limit -1" "--limit" "$COGUMI" router eval "$T/none.json" --data a=x.jsonl --limit -1
# A training run killed with SIGKILL resumes from its last checkpoint and finishes; the log holds every step once.
"$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/kill.gguf" --lora-rank 4 --max-steps 200 --seq-len 160 --batch 2 --save-steps 5 >/dev/null 2>&1 &
pid=$!
# Up to 60 s for the first checkpoint (step 5): a loaded 2-core machine can take seconds to load and step.
for _ in $(seq 600); do [ -s "$T/kill.gguf.ckpt.gguf" ] && break; sleep 0.1; done
sleep 0.5
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check "killed run left a checkpoint and no adapter" test -s "$T/kill.gguf.ckpt.gguf" -a ! -e "$T/kill.gguf"
"$COGUMI" train -m "$T/m.gguf" -d "$T/fail.jsonl" -o "$T/kill.gguf" --lora-rank 4 --max-steps 200 --seq-len 160 --batch 2 --save-steps 5 --resume >"$T/resume.txt" 2>&1
check "killed run resumes and finishes" test -s "$T/kill.gguf" -a -s "$T/kill.gguf.summary.json" -a -s "$T/kill.gguf.loss.svg"
check "resumed log has every step once" python3 -c 'import json,sys; s=[json.loads(l)["step"] for l in open(sys.argv[1])]; assert s==list(range(1,201)), (len(s), s[:3])' "$T/kill.gguf.log.jsonl"
"$COGUMI" failures cluster "$T/run" -m "$T/m.gguf" -k 2 -o "$T/clusters" >/dev/null 2>&1
check "failures cluster writes clusters and reports" test -s "$T/clusters/clusters.jsonl" -a -s "$T/clusters/report.html" -a -s "$T/clusters/report.md"
"$COGUMI" eval compare "$T/run" "$T/run" >"$T/cmp.txt"
check "compare of a run with itself is all ties" grep -q "TOTAL" "$T/cmp.txt"

# The nano curriculum, evaluated through the normal benchmark paths (all four domains, code in the sandbox).
"$COGUMI" nano data -o "$T/nano" --n-train 20 --n-dev 5 --n-test 8 >/dev/null
check "nano data writes four domains" test -s "$T/nano/math/test.jsonl" -a -s "$T/nano/code/test.jsonl" -a -s "$T/nano/reasoning/reasoning_test.csv" -a -s "$T/nano/automation/test.jsonl"
"$COGUMI" eval -m "$T/m.gguf" --bench gsm8k="$T/nano/math/test.jsonl" --bench humaneval="$T/nano/code/test.jsonl" \
  --bench mmlu="$T/nano/reasoning/reasoning_test.csv" --bench bfcl="$T/nano/automation/test.jsonl" -n 8 -o "$T/nano_run" --json >"$T/nano_eval.json" 2>/dev/null
check "tool-call items record their ground truth as the reference" python3 -c 'import json,sys; r=[json.loads(l) for l in open(sys.argv[1]) if json.loads(l)["benchmark"]=="bfcl"]; assert r and all(x["reference"] for x in r)' "$T/nano_run/items.jsonl"
check "eval reads every nano domain" python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert sorted(s["benchmarks"])==["bfcl","gsm8k","humaneval","mmlu"], s["benchmarks"].keys(); assert all(b["n"]==8 for b in s["benchmarks"].values())' "$T/nano_eval.json"

expect_error "nano loop names an unknown modifier domain" "unknown modifier domain 'maths'" "$COGUMI" nano loop --dir "$T/nl" --base "$T/m.gguf" --data "$T/nano" --modifiers math,maths
# The shipped nano system answers from a fresh clone: the router picks the math modifier and says so.
"$COGUMI" ask --json -p "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?" >"$T/ask.json" 2>/dev/null
check "ask routes a math question through the shipped nano system" python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read()); assert r["choice"]=="math" and r["probabilities"]["math"]>0.9 and "####" in r["text"], r' "$T/ask.json"
expect_error "ask names an unknown choice" "no choice named 'poetry'" "$COGUMI" ask --choice poetry -p "hi"

# Few-shot: a bank from the nano training split; a query gets solved examples in the eval's form, the
# same from exact search; a bad bank line and an out-of-range option are named.
"$COGUMI" fewshot build -o "$T/fewshot/bank.jsonl" --data math=gsm8k:"$T/nano/math/train.jsonl" >/dev/null 2>&1
"$COGUMI" fewshot query "$T/fewshot/bank.jsonl" --domain math --ask-as gsm8k -k 2 --json -p "Ann has 3 boxes of pens. Each box holds 4 pens. How many pens does Ann have?" >"$T/fs.json" 2>/dev/null
"$COGUMI" fewshot query "$T/fewshot/bank.jsonl" --domain math --ask-as gsm8k -k 2 --json --exact -p "Ann has 3 boxes of pens. Each box holds 4 pens. How many pens does Ann have?" >"$T/fs_exact.json" 2>/dev/null
check "fewshot query returns solved examples in the eval's form" python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert len(r)==2 and all(x["prompt"].startswith("Question: ") and "####" in x["completion"] for x in r), r' "$T/fs.json"
check "fewshot exact search agrees" cmp -s "$T/fs.json" "$T/fs_exact.json"
printf '{"domain":"math","prompt":"Question: 1?\\nAnswer:","completion":" 1"}\n{"domain":"math","prompt":"p"}\n' >"$T/badbank.jsonl"
expect_error "fewshot names the bad bank line" "badbank.jsonl:2: missing field 'completion'" "$COGUMI" fewshot query "$T/badbank.jsonl" --domain math -p x
expect_bad_option "fewshot -k out of range" "-k" "$COGUMI" fewshot query "$T/badbank.jsonl" --domain math -p x -k 99

"$COGUMI" --help >/dev/null && grep -q -- "--max-tokens" <<<"$("$COGUMI" generate --help)"
check "help on subcommands" test $? -eq 0

finish
