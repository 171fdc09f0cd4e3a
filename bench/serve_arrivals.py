#!/usr/bin/env python3
"""Client side of bench/serve_arrivals.sh: N streamed /v1/completions requests sent at seeded
Poisson arrival times, each for one of four adapters, and one table row of time to first token,
latency and throughput. The same seed gives every server the same requests at the same offsets."""
import argparse
import json
import random
import statistics
import sys
import threading
import time
import urllib.request

PROMPTS = [  # one per adapter, in the order of ADAPTERS in serve_arrivals.sh
    "Question: Sam has 30 cards. He gives 11 away. How many cards does Sam have now?\nAnswer:",
    "def add_numbers(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n",
    "Which of these is a mammal?\nA. shark\nB. whale\nC. trout\nD. eel\nAnswer:",
    "Send an email to Pete about the meeting tomorrow at 10.\nCall:",
]
COGUMI_MODELS = ["math", "code", "reasoning-modifier", "automation-modifier"]


def wait_healthy(url, seconds=120):
    for _ in range(seconds * 4):
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except Exception:
            pass
        time.sleep(0.25)
    sys.exit(f"{url} did not become healthy in {seconds} s")


def body(kind, adapter, tokens):
    b = {"prompt": PROMPTS[adapter], "max_tokens": tokens, "temperature": 0.0, "ignore_eos": True, "stream": True,
         "stream_options": {"include_usage": True}}
    if kind == "cogumi":
        b["model"] = COGUMI_MODELS[adapter]
    else:  # llama-server: every adapter loaded at scale 0, this one at 1
        b["lora"] = [{"id": i, "scale": 1.0 if i == adapter else 0.0} for i in range(len(PROMPTS))]
        b["cache_prompt"] = False
    return json.dumps(b).encode()


def send(url, data, out):
    req = urllib.request.Request(url + "/v1/completions", data=data, headers={"Content-Type": "application/json"})
    t0 = time.monotonic()
    first = None
    pieces = 0
    with urllib.request.urlopen(req, timeout=600) as r:
        for line in r:
            line = line.strip()
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            ev = json.loads(line[6:])
            text = "".join(c.get("text") or "" for c in ev.get("choices", []))
            if text and first is None:
                first = time.monotonic()
            pieces += 1 if text else 0
            usage = ev.get("usage")
            if usage:
                out["tokens"] = usage.get("completion_tokens", 0)
    out.update(sent=t0, ttft=(first or time.monotonic()) - t0, end=time.monotonic())


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--kind", choices=["cogumi", "llama"], required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--rate", type=float, required=True)
    ap.add_argument("--tokens", required=True)
    ap.add_argument("--seed", type=int, required=True)
    a = ap.parse_args()
    lo, hi = (int(x) for x in a.tokens.split(".."))
    if not (1 <= lo <= hi <= 900) or a.n < 1 or a.rate <= 0:
        sys.exit("serve_arrivals: need 1 <= MIN <= MAX <= 900 tokens, N >= 1, RATE > 0")
    wait_healthy(a.url)
    rng = random.Random(a.seed)
    plan, t = [], 0.0
    for i in range(a.n):
        plan.append((t, i % len(PROMPTS), rng.randint(lo, hi)))
        t += rng.expovariate(a.rate)
    results = [dict(tokens=0) for _ in plan]
    threads = []
    start = time.monotonic()
    for (at, adapter, tokens), out in zip(plan, results):
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        th = threading.Thread(target=send, args=(a.url, body(a.kind, adapter, tokens), out))
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    if any("end" not in r for r in results):
        sys.exit(f"{a.label}: {sum('end' not in r for r in results)} requests failed")
    want = sum(tokens for _, _, tokens in plan)
    got = sum(r["tokens"] for r in results)
    if got != want:  # a server that stopped early would look faster
        sys.exit(f"{a.label}: {got} tokens generated, {want} asked (ignore_eos)")
    ttft = [r["ttft"] for r in results]
    lat = [r["end"] - r["sent"] for r in results]
    wall = max(r["end"] for r in results) - min(r["sent"] for r in results)
    print(f"| {a.label} | {a.n} | {pct(ttft, 50):.3f} | {pct(ttft, 90):.3f} | {pct(lat, 50):.2f} | "
          f"{pct(lat, 90):.2f} | {got / wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
