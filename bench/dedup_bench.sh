#!/usr/bin/env bash
# cogumi data dedup throughput: MinHash signatures, LSH and decontamination on a synthetic set of
# N records (default 200,000) of realistic lengths, built from the nano curriculum's training
# records (prompt + completion; 1-4 items per record, 30-600 words) with planted duplicates:
# 10% near duplicates of an earlier record (one word in 60 replaced: Jaccard
# 0.6-0.95, reported by true Jaccard), 5% exact copies
# after normalization (case and spacing changed), and 50 GSM8K test questions embedded.
#
#   bench/dedup_bench.sh [N] [THREADS]       (on the shared machine: under flock /tmp/cogumi-cpu.lock)
#
# Prints the command's summary, its report's counts and timings, peak RSS, and the recall of the
# planted near duplicates and contaminated records.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
n="${1:-200000}"
threads="${2:-2}"
bin="${COGUMI_BIN:-$root/build/bin/cogumi}"
work="${DEDUP_BENCH_DIR:-/tmp/cogumi-dedup-bench}"
mkdir -p "$work"
[ -f "$work/nano/mix/train.jsonl" ] || "$bin" nano data -o "$work/nano" --n-train 5000 > /dev/null
python3 - "$work" "$n" "$root/datasets/gsm8k/test.jsonl" <<'EOF'
import json, random, sys
work, n, gsm = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(7)
src = [json.loads(l) for l in open(f"{work}/nano/mix/train.jsonl")]
texts = [r["prompt"] + r["completion"] for r in src]
tests = [json.loads(l)["question"] for l in open(gsm)]
recs, planted = [], {"near": [], "near_of": [], "exact": [], "contaminated": []}
while len(recs) < n:
    i, u = len(recs), rng.random()
    if i > 100 and u < 0.10:
        j = rng.randrange(i)
        w = recs[j].split(" ")
        if len(w) < 40:
            continue
        for _ in range(max(1, len(w) // 60)):  # Jaccard about 0.85 (one edit kills up to 5 shingles)
            w[rng.randrange(len(w))] = "edited%d" % rng.randrange(10**9)
        recs.append(" ".join(w)); planted["near"].append(i); planted["near_of"].append(j)
    elif i > 100 and u < 0.15:
        recs.append("  ".join(recs[rng.randrange(i)].upper().split())); planted["exact"].append(i)
    elif i > 100 and u < 0.15 + 50.0 / n:
        recs.append(rng.choice(texts) + " " + rng.choice(tests)); planted["contaminated"].append(i)
    else:
        k = rng.randint(1, 4)
        recs.append("\n\n".join(rng.choice(texts) for _ in range(k)) + " id%d" % rng.randrange(10**12))
with open(f"{work}/in.jsonl", "w") as f:
    for i, t in enumerate(recs):
        f.write(json.dumps({"messages": [{"role": "user", "content": "Continue."}, {"role": "assistant", "content": t}]}) + "\n")
json.dump(planted, open(f"{work}/planted.json", "w"))
words = sum(len(t.split()) for t in recs) / len(recs)
print(f"{n} records, {words:.0f} words on average, {len(planted['near'])} near / {len(planted['exact'])} exact / "
      f"{len(planted['contaminated'])} contaminated planted; {sum(len(t) for t in recs) / 1e6:.0f} MB of text")
EOF
/usr/bin/time -f "peak RSS %M KB, wall %e s, user %U s" "$bin" data dedup "$work/in.jsonl" -o "$work/out.jsonl" \
  --report "$work/report.json" --removed "$work/removed.jsonl" --threads "$threads" -b "gsm8k=$root/datasets/gsm8k/test.jsonl" -q
python3 - "$work" <<'EOF'
import json, sys
work = sys.argv[1]
rep, planted = json.load(open(f"{work}/report.json")), json.load(open(f"{work}/planted.json"))
line = lambda s: int(s.rsplit(":", 1)[1]) - 1
removed = {line(r["record"]): r["reason"] for r in map(json.loads, open(f"{work}/removed.jsonl"))}
contam = {line(r["record"]) for r in rep["decontamination"]["records"]}
# The planted pairs' true Jaccard over word 5-gram shingles, normalized as cogumi does.
import re
msgs = {}
want = {i for i in planted["near"]} | {p for p in planted["near_of"]}
with open(f"{work}/in.jsonl") as f:
    for i, l in enumerate(f):
        if i in want:
            msgs[i] = json.loads(l)["messages"][1]["content"]
def shingles(t):
    w = re.findall(r"[0-9a-z\u0080-\U0010ffff]+", t.lower())
    return {" ".join(w[k:k + 5]) for k in range(max(1, len(w) - 4))}
buckets = {"J>=0.85": [0, 0], "0.75<=J<0.85": [0, 0], "0.6<=J<0.75": [0, 0], "J<0.6": [0, 0]}
for i, j in zip(planted["near"], planted["near_of"]):
    a, b = shingles(msgs[i]), shingles(msgs[j])
    jac = len(a & b) / len(a | b)
    key = "J>=0.85" if jac >= 0.85 else "0.75<=J<0.85" if jac >= 0.75 else "0.6<=J<0.75" if jac >= 0.6 else "J<0.6"
    buckets[key][0] += i in removed
    buckets[key][1] += 1
print("planted near duplicates removed, by true Jaccard: " + ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in buckets.items()))
near = sum(1 for i in planted["near"] if i in removed)
exact = sum(1 for i in planted["exact"] if removed.get(i) == "exact")
cont = sum(1 for i in planted["contaminated"] if i in contam)
print(f"removed {rep['removed']}; planted found: near {near}/{len(planted['near'])}, exact {exact}/{len(planted['exact'])}, "
      f"contaminated {cont}/{len(planted['contaminated'])}")
print(f"timing {rep['timing_s']}; scan {rep['records_per_second_scan']:.0f} records/s; "
      f"{rep['minhash']['bands']} bands x {rep['minhash']['rows']} rows, P(candidate | J={rep['minhash']['threshold']}) = "
      f"{rep['minhash']['candidate_probability_at_threshold']}")
EOF
