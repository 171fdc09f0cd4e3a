// A bounded load on `cogumi serve` from a second process: CLIENTS concurrent clients, each
// sending streaming chat completions one after another for SECONDS, reading every SSE event.
// A request counts as an error unless it answers 200 with text/event-stream, every event is a
// JSON chunk of the same id, the routing decision rides on the first chunk, and the stream ends
// with [DONE]. Prints one JSON summary line; exits 1 on any error.
// Usage: node load_client.mjs BASE_URL CLIENTS SECONDS [MAX_TOKENS]
const [base, clientsArg, secondsArg, maxTokensArg] = process.argv.slice(2);
const clients = Number(clientsArg), seconds = Number(secondsArg), maxTokens = Number(maxTokensArg ?? 16);
if (!base || !(clients >= 1 && clients <= 1024) || !(seconds > 0 && seconds <= 600) ||
    !(maxTokens >= 1 && maxTokens <= 4096)) {
  console.error("usage: node load_client.mjs BASE_URL CLIENTS(1..1024) SECONDS(0..600] [MAX_TOKENS(1..4096)]");
  process.exit(2);
}
const questions = [
  "Sam has 30 cards. He gives 11 away. How many cards does Sam have now?",
  "Write a Python function that returns the sum of a list.",
  "Which planet is closest to the sun? A. Venus B. Mercury C. Mars D. Earth",
  "Get the weather in Paris.",
];
const stats = { requests: 0, ok: 0, errors: 0, chunks: 0, ttft_ms: [], latency_ms: [], first_errors: [] };
const fail = (why) => {
  stats.errors++;
  if (stats.first_errors.length < 5) stats.first_errors.push(why);
};

async function one(i) {
  const t0 = performance.now();
  stats.requests++;
  let res;
  try {
    res = await fetch(`${base}/v1/chat/completions`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "nano", stream: true, max_tokens: maxTokens,
                             messages: [{ role: "user", content: questions[i % questions.length] }] }),
    });
  } catch (e) {
    return fail(`fetch: ${e.cause?.code ?? e.message}`);
  }
  if (res.status !== 200) return fail(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
  if (!(res.headers.get("content-type") ?? "").startsWith("text/event-stream"))
    return fail(`content-type ${res.headers.get("content-type")}`);
  const decoder = new TextDecoder();
  let buf = "", id = null, done = false, first = true, ttft = null;
  try {
    for await (const bytes of res.body) {
      buf += decoder.decode(bytes, { stream: true });
      let at;
      while ((at = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, at);
        buf = buf.slice(at + 2);
        if (!event.startsWith("data: ")) return fail(`not an SSE data event: ${event.slice(0, 80)}`);
        const data = event.slice(6);
        if (data === "[DONE]") { done = true; continue; }
        const chunk = JSON.parse(data);
        if (chunk.error) return fail(`error event: ${JSON.stringify(chunk.error)}`);
        if (id === null) id = chunk.id;
        if (chunk.id !== id) return fail(`chunk id ${chunk.id} != ${id}`);
        if (first && !chunk.cogumi?.choice) return fail("first chunk without the routing decision");
        if (!first && ttft === null) ttft = performance.now() - t0;
        first = false;
        stats.chunks++;
      }
    }
  } catch (e) {
    return fail(`stream: ${e.message}`);
  }
  if (!done) return fail("stream ended without [DONE]");
  stats.ok++;
  stats.latency_ms.push(performance.now() - t0);
  if (ttft !== null) stats.ttft_ms.push(ttft);
}

const end = performance.now() + seconds * 1000;
await Promise.all(Array.from({ length: clients }, async (_, c) => {
  for (let i = c; performance.now() < end; i += clients) await one(i);
}));
const pct = (xs, p) => xs.length ? Math.round([...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]) : null;
console.log(JSON.stringify({
  clients, seconds, requests: stats.requests, ok: stats.ok, errors: stats.errors, chunks: stats.chunks,
  requests_per_s: +(stats.ok / seconds).toFixed(2),
  latency_ms: { p50: pct(stats.latency_ms, 0.5), p99: pct(stats.latency_ms, 0.99) },
  ttft_ms: { p50: pct(stats.ttft_ms, 0.5), p99: pct(stats.ttft_ms, 0.99) },
  first_errors: stats.first_errors,
}));
process.exit(stats.errors || !stats.ok ? 1 : 0);
