#!/usr/bin/env python3
"""The summary of bench/mixed_lora_rounds.sh: per stream count and setting, the median base and mixed tok/s over the
rounds, mixed as a share of the median of every listed run's base, each run's own mixed/base, the same for the decode
steps alone (an estimate: a wave's wall time, streams x TG / tok/s, less its TTFT p50, since every prompt of a wave is
taken before its first decode step), and the output hashes.

Each file is one run of bench/mixed_lora_bench.sh (its results.jsonl) named [PREFIX-]TAG-rN.jsonl, where TAG names the
setting (mixed_lora_rounds.sh writes OUT/TAG-rN.jsonl; a prefix such as a- or b- tells sessions of rounds apart).
Usage: bench/mixed_lora_rounds.py FILE.jsonl...
  e.g. bench/mixed_lora_rounds.py bench/results/mixed-lora-gpu/session27/rounds/*FUSE_ADD*.jsonl
"""
import json
import os
import re
import statistics
import sys


def main(files):
    if not files:
        sys.exit(__doc__)
    runs = {}  # (streams, tag) -> [(base tok/s, mixed tok/s, mixed hash, decode-only mixed/base)]
    tags = []
    for path in files:
        m = re.fullmatch(r"(?:[a-z]-)?(.+)-r(\d+)\.jsonl", os.path.basename(path))
        if not m:
            sys.exit(f"{path}: not named [PREFIX-]TAG-rN.jsonl")
        tag = m.group(1)
        if tag not in tags:
            tags.append(tag)
        by = {}
        with open(path) as f:
            for n, line in enumerate(f, 1):
                try:
                    d = json.loads(line)
                    decode_s = d["streams"] * d["tg"] / d["tok_s"] - d["ttft_p50_ms"] / 1000
                    by[(d["streams"], d["setup"])] = (d["tok_s"], d["output_sha256"], decode_s)
                except (ValueError, KeyError) as e:
                    sys.exit(f"{path}:{n}: not a mixed_lora_bench result ({e})")
        for (streams, setup), (_, _, _) in by.items():
            if setup == "base" and (streams, "mixed") in by:
                base, mixed = by[(streams, "base")], by[(streams, "mixed")]
                runs.setdefault((streams, tag), []).append((base[0], mixed[0], mixed[1], base[2] / mixed[2]))
    print("| streams | setting | runs | base tok/s | mixed tok/s | mixed / base (all base runs) | each run's mixed / base |"
          " decode steps only, each run's | mixed hashes |")
    print("|---:|---|---:|---:|---:|---:|---|---|---|")
    for streams in sorted({s for s, _ in runs}):
        all_base = statistics.median(r[0] for (s, _), rs in runs.items() if s == streams for r in rs)
        for tag in tags:
            rs = runs.get((streams, tag))
            if not rs:
                continue
            base = statistics.median(r[0] for r in rs)
            mixed = statistics.median(r[1] for r in rs)
            each = ", ".join(f"{100 * r[1] / r[0]:.1f}" for r in rs)
            decode = ", ".join(f"{100 * r[3]:.1f}" for r in rs)
            hashes = ",".join(sorted({r[2] for r in rs}))
            print(f"| {streams} | {tag} | {len(rs)} | {base:.1f} | {mixed:.1f} | {100 * mixed / all_base:.1f}% | {each} | {decode} | {hashes} |")


if __name__ == "__main__":
    main(sys.argv[1:])
