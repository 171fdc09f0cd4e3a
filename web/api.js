// The HTTP API the pages use: JSON calls with OpenAI-shaped errors, and chat completions
// streamed over server-sent events.

// An error from the server, with its HTTP status and the field it names (OpenAI's `param`).
export class ApiError extends Error {
  constructor(status, message, param) {
    super(message);
    this.status = status;
    this.param = param || null;
  }
}

const KEY_STORE = 'cogumi.apiKey';

// The API key the user gave for a server started with --api-key ("" = none).
export function apiKey() { return localStorage.getItem(KEY_STORE) || ''; }
export function setApiKey(key) {
  if (key) localStorage.setItem(KEY_STORE, key); else localStorage.removeItem(KEY_STORE);
}

function headers(extra) {
  const key = apiKey();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorOf(res) {
  let body = null;
  try { body = await res.json(); } catch { /* not JSON */ }
  const e = body && body.error;
  const message = (e && e.message) || `${res.status} ${res.statusText}`.trim();
  return new ApiError(res.status, message, e && e.param);
}

// GET (no body) or POST (body given) a JSON endpoint; throws ApiError on a non-2xx answer.
export async function callJson(path, body) {
  const init = body === undefined ? { headers: headers({}) } : {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body),
  };
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

// Splits a server-sent event stream into the `data:` payloads of its events.
export class SseParser {
  constructor() { this.buf = ''; }
  // Feeds decoded text; returns the payloads of the events it completed.
  push(text) {
    this.buf += text.replace(/\r\n?/g, '\n');
    const out = [];
    let at;
    while ((at = this.buf.indexOf('\n\n')) >= 0) {
      const event = this.buf.slice(0, at);
      this.buf = this.buf.slice(at + 2);
      const data = event.split('\n').filter((l) => l.startsWith('data:'))
        .map((l) => l.slice(5).replace(/^ /, '')).join('\n');
      if (data) out.push(data);
    }
    return out;
  }
}

// POSTs a chat completion with stream: true. onDelta(text) gets each piece of content as it
// arrives, onChunk(chunk) every parsed chunk. Resolves with {text, chunks, cogumi} at [DONE];
// `cogumi` is the routing decision the stream carried (its last one).
export async function streamChat(request, { onDelta, onChunk, signal } = {}) {
  const res = await fetch('/v1/chat/completions', {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json', Accept: 'text/event-stream' }),
    body: JSON.stringify({ ...request, stream: true }),
    signal,
  });
  if (!res.ok) throw await errorOf(res);
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  const sse = new SseParser();
  const result = { text: '', chunks: 0, cogumi: null, finish_reason: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const data of sse.push(decoder.decode(value, { stream: true }))) {
      if (data === '[DONE]') return result;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(500, chunk.error.message || 'stream failed');
      if (onChunk) onChunk(chunk);
      if (chunk.cogumi) result.cogumi = chunk.cogumi;
      const choice = chunk.choices && chunk.choices[0];
      if (choice && choice.finish_reason) result.finish_reason = choice.finish_reason;
      const delta = choice && choice.delta && choice.delta.content;
      if (delta) {
        result.text += delta;
        result.chunks += 1;
        if (onDelta) onDelta(delta, result);
      }
    }
  }
  if (!result.finish_reason) throw new ApiError(0, 'the stream ended before the answer was complete');
  return result;
}
