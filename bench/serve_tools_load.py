#!/usr/bin/env python3
"""Long streams decoding while chat requests with tools keep arriving, against one running server.

STREAMS streamed chat requests (no tools, ignore_eos, TOKENS answer tokens each) start together; while they run,
a second client sends chat requests with two tools (max_tokens 1: nearly all their cost is the prompt: the
model's Jinja template rendered with the tools, tokenized, then its prefill) at RATE per second. Prints one
Markdown row: the streams' generated tokens/s (all streams' completion tokens over the time from the first send
to the last byte) and the tool requests' latency p50/p90.
  serve_tools_load.py --label L --url http://127.0.0.1:PORT --streams 4 --tokens 256 --rate 10
"""
import argparse
import http.client
import json
import statistics
import threading
import time
import urllib.parse

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
     "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "set_timer", "description": "Start a timer",
     "parameters": {"type": "object", "properties": {"minutes": {"type": "integer"}}, "required": ["minutes"]}}},
]


def post(url, body, stream):
    u = urllib.parse.urlparse(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    c.request("POST", "/v1/chat/completions", json.dumps(body), {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        raise RuntimeError(f"HTTP {r.status}: {r.read()[:300]!r}")
    if not stream:
        out = json.loads(r.read())
        c.close()
        return out
    usage = None
    for line in r:
        line = line.strip()
        if line.startswith(b"data: ") and line != b"data: [DONE]":
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                usage = chunk["usage"]
    c.close()
    return usage


def history(turns):
    msgs = []
    for t in range(turns):
        msgs.append({"role": "user", "content": f"Question {t}: what is the weather in Paris tomorrow morning?"})
        msgs.append({"role": "assistant", "content": f"Answer {t}: sunny, 21 degrees, a light wind."})
    return msgs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rate", type=float, default=10.0, help="tool requests per second (0: none)")
    ap.add_argument("--turns", type=int, default=8, help="earlier exchanges in each tool request")
    a = ap.parse_args()
    if not (1 <= a.streams <= 256 and 1 <= a.tokens <= 4096 and 0 <= a.rate <= 1000 and 0 <= a.turns <= 100):
        raise SystemExit("streams 1..256, tokens 1..4096, rate 0..1000, turns 0..100")
    for _ in range(50):  # the server is up
        try:
            post(a.url, {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1}, False)
            break
        except OSError:
            time.sleep(0.2)
    done = threading.Event()
    usages, errors, tool_lat = [], [], []

    def stream(i):
        body = {"messages": [{"role": "user", "content": f"Tell me a long story, number {i}."}],
                "max_tokens": a.tokens, "ignore_eos": True, "stream": True,
                "stream_options": {"include_usage": True}}
        try:
            usages.append(post(a.url, body, True))
        except Exception as e:  # noqa: BLE001 (counted and printed)
            errors.append(str(e))

    def tools():
        k, t0 = 0, time.monotonic()
        while not done.is_set():
            k += 1
            body = {"messages": history(a.turns) + [{"role": "user", "content": f"And in Oslo, day {k}?"}],
                    "tools": TOOLS, "max_tokens": 1}
            s = time.monotonic()
            try:
                post(a.url, body, False)
                tool_lat.append(time.monotonic() - s)
            except Exception as e:  # noqa: BLE001
                errors.append(str(e))
            wait = t0 + k / a.rate - time.monotonic()
            if wait > 0:
                done.wait(wait)

    t0 = time.monotonic()
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(a.streams)]
    for t in threads:
        t.start()
    sender = threading.Thread(target=tools) if a.rate > 0 else None
    if sender:
        sender.start()
    for t in threads:
        t.join()
    secs = time.monotonic() - t0
    done.set()
    if sender:
        sender.join()
    gen = sum(u["completion_tokens"] for u in usages if u)
    lat = sorted(tool_lat)
    p = (lambda q: f"{lat[min(len(lat) - 1, int(q * len(lat)))] * 1000:.0f}") if lat else (lambda q: "-")
    print(f"| {a.label} | {a.streams} | {gen / secs:.1f} | {len(lat)} | {p(0.5)} | {p(0.9)} | {len(errors)} |")
    if errors:
        print("errors:", errors[:3])


if __name__ == "__main__":
    main()
