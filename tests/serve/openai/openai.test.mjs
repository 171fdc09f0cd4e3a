// The official `openai` npm client (pinned by this folder's lockfile) against a real
// `cogumi serve` of the shipped nano system on a free loopback port: models, chat (whole and
// streamed), the routing extension, tools, structured output, completions, embeddings, the
// documented errors, batching of concurrent requests, a client that leaves mid-stream, and
// SIGTERM draining a request in flight.
//
// Environment: COGUMI_BIN (default build/bin/cogumi). A missing binary or npm package fails with
// the reason (scripts/deps.sh --test installs the package).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const BIN = process.env.COGUMI_BIN || path.join(REPO, 'build/bin/cogumi');
const KEY = 'sk-cogumi-test';
const LIMITED_KEY = 'sk-cogumi-limited';
const RATE = 40;  // requests per minute per key: the main key stays under it, the limited one goes over

let OpenAI;
try {
  ({ default: OpenAI } = await import('openai'));
} catch (e) {
  throw new Error(`the 'openai' npm package is missing in ${HERE} (run scripts/deps.sh --test): ${e.message}`);
}
assert.ok(fs.existsSync(BIN), `no cogumi binary at ${BIN} (build it, or set COGUMI_BIN)`);

const MATH_Q = 'Sam has 30 cards. He gives 11 away. How many cards does Sam have now?';
const TOOL_Q = 'What is the weather in Paris in celsius?';
const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'Current weather for a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
      required: ['city'],
    },
  },
};

let tmp;
let server;  // {child, url, log(), exited}
let client;

// The nano system with its session memory in `dir` (the shipped file keeps it in runs/).
function systemIn(dir) {
  const models = path.join(REPO, 'models');
  for (const name of fs.readdirSync(models)) fs.symlinkSync(path.join(models, name), path.join(dir, name));
  const yaml = fs.readFileSync(path.join(models, 'nano-system.yaml'), 'utf8');
  const moved = yaml.replace(/^memory:.*$/m, 'memory: sessions.db');
  assert.notEqual(moved, yaml, 'models/nano-system.yaml has no memory: line to move');
  const file = path.join(dir, 'system.yaml');
  fs.writeFileSync(file, moved);
  return file;
}

function startServer(args) {
  return new Promise((resolve, reject) => {
    let log = '';
    const child = spawn(BIN, ['serve', '--host', '127.0.0.1', '--port', '0', ...args],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, COGUMI_API_KEYS: LIMITED_KEY } });
    const s = { child, log: () => log };
    s.exited = new Promise((res) => child.on('exit', (code, signal) => res({ code, signal })));
    const timer = setTimeout(() => reject(new Error(`cogumi serve did not start in 60 s:\n${log}`)), 60000);
    child.stdout.on('data', (d) => {
      log += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(log);
      if (m && !s.url) { clearTimeout(timer); s.url = m[1]; resolve(s); }
    });
    child.stderr.on('data', (d) => { log += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${BIN}: ${e.message}`)); });
    child.on('exit', (code) => { if (!s.url) { clearTimeout(timer); reject(new Error(`cogumi serve exited (${code}):\n${log}`)); } });
  });
}

const health = async () => (await fetch(`${server.url}/health`)).json();

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogumi-openai-'));
  server = await startServer(['-s', systemIn(tmp), '--api-key', KEY, '--rate-limit', String(RATE),
    '--max-body', '65536', '--timeout', '60']);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: KEY, maxRetries: 0, timeout: 60000 });
});

after(async () => {
  if (server && server.child.exitCode === null) { server.child.kill('SIGKILL'); await server.exited; }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('models: the system, the base and every modifier', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const id of ['nano', 'base', 'math', 'code', 'reasoning', 'automation']) assert.ok(ids.includes(id), `${id} not in ${ids}`);
  assert.equal(ids[0], 'nano');
  const math = await client.models.retrieve('math');
  assert.equal(math.id, 'math');
  await assert.rejects(client.models.retrieve('gpt-4o'), (e) => e instanceof OpenAI.NotFoundError);
});

test('chat: the router picks math, the decision comes back in the body and the headers', async () => {
  const { data, response } = await client.chat.completions
    .create({ model: 'nano', messages: [{ role: 'user', content: MATH_Q }] })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.choices.length, 1);
  assert.ok(data.choices[0].message.content.length > 0);
  assert.equal(data.choices[0].finish_reason, 'stop');
  assert.equal(data.cogumi.choice, 'math');
  assert.ok(data.cogumi.probabilities.math > 0.5, JSON.stringify(data.cogumi));
  assert.equal(response.headers.get('x-cogumi-choice'), 'math');
  assert.ok(Number(response.headers.get('x-cogumi-confidence')) > 0.5);
  assert.ok(data.usage.prompt_tokens > 0 && data.usage.completion_tokens > 0);
});

test('chat streaming: the deltas add up to the whole answer; usage at the end', async () => {
  const whole = await client.chat.completions.create({ model: 'math', messages: [{ role: 'user', content: MATH_Q }] });
  const stream = await client.chat.completions.create({
    model: 'math', messages: [{ role: 'user', content: MATH_Q }], stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  let decision = null;
  for await (const chunk of stream) {
    chunks++;
    if (chunk.cogumi) decision = chunk.cogumi;
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks > 3, `only ${chunks} chunks: the answer did not stream`);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, 'stop');
  assert.equal(decision.choice, 'math');
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('a conversation\'s next turn reuses the KV cache of the one before (usage.prompt_tokens_details)', async () => {
  const first = [{ role: 'user', content: MATH_Q }];
  const a = await client.chat.completions.create({ model: 'math', messages: first, max_tokens: 24 });
  const second = [...first, { role: 'assistant', content: a.choices[0].message.content },
    { role: 'user', content: 'And if he then gets 5 more cards, how many does he have?' }];
  const b = await client.chat.completions.create({ model: 'math', messages: second, max_tokens: 24 });
  const cached = b.usage.prompt_tokens_details.cached_tokens;
  assert.ok(cached >= a.usage.prompt_tokens && cached < b.usage.prompt_tokens, JSON.stringify([a.usage, b.usage]));
  assert.equal(typeof a.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('accurate mode streams: the role at once, then the voted answer in pieces equal to the whole answer', async () => {
  const req = { model: 'math', messages: [{ role: 'user', content: MATH_Q }], cogumi: { mode: 'accurate' } };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true });
  let text = '';
  let chunks = 0;
  let first = null;
  let finish = null;
  for await (const chunk of stream) {
    if (!first) first = chunk;
    for (const c of chunk.choices) {
      if (c.delta?.content) chunks++;
      text += c.delta?.content ?? '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(first.choices[0].delta.role, 'assistant');
  assert.equal(first.cogumi.mode, 'accurate');
  assert.ok(chunks > 3, `the voted answer came in ${chunks} content chunks`);
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
});

test('the cogumi extension: a manual override and a session', async () => {
  const r = await client.chat.completions.create({
    model: 'nano', messages: [{ role: 'user', content: MATH_Q }], cogumi: { choice: 'reasoning', session: 'new' },
  });
  assert.equal(r.cogumi.choice, 'reasoning');
  assert.equal(r.cogumi.overridden, true);
  assert.match(r.cogumi.session, /^[0-9a-f]{32}$/);
  assert.ok(r.cogumi.turn_id > 0);

  // Accurate mode: the system's samples vote; a stream gets the winner whole, then the decision.
  const acc = await client.chat.completions.create({ model: 'math', messages: [{ role: 'user', content: MATH_Q }], cogumi: { mode: 'accurate' } });
  assert.equal(acc.cogumi.mode, 'accurate');
  assert.equal(acc.cogumi.samples, 5);
  assert.ok(acc.cogumi.votes >= 1 && acc.cogumi.votes <= 5);
  const stream = await client.chat.completions.create({
    model: 'math', messages: [{ role: 'user', content: MATH_Q }], cogumi: { mode: 'accurate' }, stream: true,
  });
  let text = '';
  let last = null;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta?.content ?? '';
    if (chunk.cogumi) last = chunk.cogumi;
  }
  assert.equal(text, acc.choices[0].message.content);
  assert.equal(last.votes, acc.cogumi.votes);
});

test('tools: the automation modifier answers with a tool call, whole and streamed', async () => {
  const r = await client.chat.completions.create({
    model: 'nano', messages: [{ role: 'user', content: TOOL_Q }], tools: [WEATHER],
  });
  const msg = r.choices[0].message;
  assert.equal(r.cogumi.choice, 'automation');
  assert.equal(r.choices[0].finish_reason, 'tool_calls');
  assert.equal(msg.content, null);
  assert.equal(msg.tool_calls.length, 1);
  assert.equal(msg.tool_calls[0].type, 'function');
  assert.equal(msg.tool_calls[0].function.name, 'get_weather');
  const args = JSON.parse(msg.tool_calls[0].function.arguments);
  assert.equal(typeof args.city, 'string');

  const stream = await client.chat.completions.create({
    model: 'nano', messages: [{ role: 'user', content: TOOL_Q }], tools: [WEATHER], stream: true,
  });
  const calls = [];
  let finish = null;
  for await (const chunk of stream) {
    for (const c of chunk.choices) {
      for (const d of c.delta?.tool_calls ?? []) {
        calls[d.index] ??= { id: '', name: '', arguments: '' };
        if (d.id) calls[d.index].id = d.id;
        if (d.function?.name) calls[d.index].name += d.function.name;
        if (d.function?.arguments) calls[d.index].arguments += d.function.arguments;
      }
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(finish, 'tool_calls');
  assert.equal(calls.length, 1);
  assert.equal(calls[0].name, 'get_weather');
  assert.deepEqual(JSON.parse(calls[0].arguments), args);

  // tool_choice naming a function: even the base alone (no tool-calling modifier) must call it.
  // (maxLength bounds the string: a grammar cannot stop a model that never closes its quotes. The grammar allows
  // one space between tokens: with llama.cpp's newline + 20 spaces the copying base ran out of these 100 tokens.)
  const bounded = structuredClone(WEATHER);
  bounded.function.parameters.properties.city.maxLength = 16;
  const forced = await client.chat.completions.create({
    model: 'base', max_tokens: 100, messages: [{ role: 'user', content: TOOL_Q }], tools: [bounded],
    tool_choice: { type: 'function', function: { name: 'get_weather' } },
  });
  const call = forced.choices[0].message.tool_calls?.[0];
  assert.ok(call, JSON.stringify(forced.choices[0]));
  assert.equal(call.function.name, 'get_weather');
  assert.equal(typeof JSON.parse(call.function.arguments).city, 'string');
});

// A model brought as it is (`serve -m`), with a chat template of its own: Llama 3.1 Instruct's, from the pinned
// llama.cpp (COGUMI_LLAMA_SRC), on random weights and Llama 3's tokenizer. Its tools must reach its prompt in its own
// template's words, a forced call must come back as tool_calls, and a tool's result must be taken in its role.
test('tools on a bare model with its own chat template (Llama 3.1\'s): in the prompt, calls out, results in', async () => {
  const src = process.env.COGUMI_LLAMA_SRC;
  assert.ok(src && fs.existsSync(path.join(src, 'models/templates')), `COGUMI_LLAMA_SRC (${src}) holds no models/templates`);
  const gguf = path.join(tmp, 'llama31-random.gguf');
  const init = spawnSync(BIN, ['model', 'init', gguf, '--type', 'f16', '--vocab', path.join(src, 'models/ggml-vocab-llama-bpe.gguf'),
    '--chat-template', path.join(src, 'models/templates/meta-llama-Llama-3.1-8B-Instruct.jinja')], { encoding: 'utf8' });
  assert.equal(init.status, 0, init.stderr);
  const bare = await startServer(['-m', gguf, '--parallel', '2']);
  try {
    const c = new OpenAI({ baseURL: `${bare.url}/v1`, apiKey: LIMITED_KEY, maxRetries: 0, timeout: 60000 });  // (startServer's key)
    const ask = (extra) => c.chat.completions.create({ model: 'base', max_tokens: 8, messages: [{ role: 'user', content: TOOL_Q }], ...extra });
    const plain = await ask({});
    const withTools = await ask({ tools: [WEATHER] });
    // Llama 3.1's instruction and the function's description: over 100 more prompt tokens
    assert.ok(withTools.usage.prompt_tokens > plain.usage.prompt_tokens + 100,
      `${withTools.usage.prompt_tokens} vs ${plain.usage.prompt_tokens}`);

    // streamed with tools: the text (no call, from random weights) comes in pieces as it grows, and adds up to the
    // whole answer's
    const stream = await ask({ tools: [WEATHER], stream: true });
    let text = '';
    let pieces = 0;
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta?.content;
      if (d) { text += d; pieces += 1; }
    }
    assert.equal(text, withTools.choices[0].message.content);
    assert.ok(pieces > 1, `the answer came in ${pieces} piece(s): ${JSON.stringify(text)}`);

    const bounded = structuredClone(WEATHER);
    bounded.function.parameters.properties.city.maxLength = 8;
    delete bounded.function.parameters.properties.unit;
    const forced = await c.chat.completions.create({
      model: 'base', max_tokens: 60, messages: [{ role: 'user', content: TOOL_Q }], tools: [bounded], tool_choice: 'required',
    });
    assert.equal(forced.choices[0].finish_reason, 'tool_calls', JSON.stringify(forced.choices[0]));
    const call = forced.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    assert.equal(typeof JSON.parse(call.function.arguments).city, 'string');

    const answered = await c.chat.completions.create({
      model: 'base', max_tokens: 8, tools: [bounded], messages: [
        { role: 'user', content: TOOL_Q },
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"celsius": 21}' }],
    });
    assert.equal(typeof answered.choices[0].message.content, 'string');
    assert.ok(answered.usage.prompt_tokens > withTools.usage.prompt_tokens, 'the call and its result are in the prompt');
  } finally {
    bare.child.kill('SIGKILL');
    await bare.exited;
  }
});

test('structured output: json_schema answers parse and validate; json_object parses', async () => {
  const schema = {
    type: 'object',
    properties: {
      answer: { type: 'integer', minimum: 0, maximum: 100 },
      unit: { type: 'string', enum: ['apples', 'pears'] },
    },
    required: ['answer', 'unit'],
    additionalProperties: false,
  };
  for (const model of ['base', 'nano']) {
    const r = await client.chat.completions.create({
      model, max_tokens: 80, messages: [{ role: 'user', content: 'How many apples are left? Answer in JSON.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'count', schema, strict: true } },
    });
    const text = r.choices[0].message.content;
    assert.equal(r.choices[0].finish_reason, 'stop', `${model}: the answer did not end within max_tokens: ${text}`);
    const v = JSON.parse(text);
    assert.deepEqual(Object.keys(v).sort(), ['answer', 'unit']);
    assert.ok(Number.isInteger(v.answer) && v.answer >= 0 && v.answer <= 100, JSON.stringify(v));
    assert.ok(['apples', 'pears'].includes(v.unit));
  }
  // json_object on a request the nano system answers with an object (its automation format): an
  // out-of-domain prompt ("Describe a cat in JSON.") makes the nano base write a key of spaces until
  // max_tokens, valid JSON so far but never closed (finish_reason "length", as with any server).
  const phone = 'You can call these functions:\n[{"description":"Start a phone call with a contact.","name":"call_contact",' +
    '"parameters":{"properties":{"name":{"description":"The contact\'s name.","type":"string"}},"required":["name"],' +
    '"type":"dict"}}]\n\nAnswer each request with one JSON object {"name": ..., "arguments": {...}} and nothing else.' +
    '\n\nRequest: Phone Mia, please.\nCall:';
  const o = await client.chat.completions.create({
    model: 'nano', max_tokens: 80, messages: [{ role: 'user', content: phone }],
    response_format: { type: 'json_object' },
  });
  assert.equal(o.choices[0].finish_reason, 'stop', `json_object: the answer did not end within max_tokens: ${o.choices[0].message.content}`);
  const obj = JSON.parse(o.choices[0].message.content);
  assert.equal(typeof obj, 'object');
  assert.ok(!Array.isArray(obj));
});

test('completions and embeddings', async () => {
  // ignore_eos (as vLLM): exactly max_tokens, whatever the nano base thinks of the prompt.
  const c = await client.completions.create({
    model: 'base', prompt: 'Once upon a time', max_tokens: 8, logprobs: 2, temperature: 1, seed: 3, ignore_eos: true,
  });
  assert.equal(c.usage.completion_tokens, 8);
  assert.equal(c.choices[0].finish_reason, 'length');
  assert.equal(c.object, 'text_completion');
  assert.ok(c.choices[0].text.length > 0);
  assert.equal(c.choices[0].logprobs.tokens.length, c.usage.completion_tokens);
  assert.equal(Object.keys(c.choices[0].logprobs.top_logprobs[0]).length, 2);

  // The client asks for base64 by default and decodes it; ask for floats too and compare.
  const e = await client.embeddings.create({ model: 'nano', input: ['hello world', 'a cat sat'] });
  assert.equal(e.data.length, 2);
  const dim = e.data[0].embedding.length;
  assert.ok(dim > 0 && e.data[1].embedding.length === dim);
  const f = await client.embeddings.create({ model: 'nano', input: ['hello world'], encoding_format: 'float' });
  f.data[0].embedding.forEach((x, i) => assert.ok(Math.abs(x - e.data[0].embedding[i]) < 1e-6));
  const norm = Math.hypot(...e.data[0].embedding);
  assert.ok(Math.abs(norm - 1) < 1e-3, `not L2-normalised: ${norm}`);
});

test('errors in OpenAI\'s shape: 401, 404, 400 (JSON, field, schema, context), 413', async () => {
  const nokey = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'sk-wrong', maxRetries: 0 });
  await assert.rejects(nokey.models.list(), (e) => e instanceof OpenAI.AuthenticationError && e.status === 401);

  await assert.rejects(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found' && /gpt-4o/.test(e.message));
  await assert.rejects(client.chat.completions.create({ model: 'nano', messages: [{ role: 'user', content: 'hi' }], temperature: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  await assert.rejects(client.chat.completions.create({
    model: 'base', messages: [{ role: 'user', content: 'hi' }],
    response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'object', properties: { a: { $ref: '#/$defs/nowhere' } } } } },
  }), (e) => e instanceof OpenAI.BadRequestError && e.code === 'invalid_schema' && e.param === 'response_format');
  await assert.rejects(client.chat.completions.create({ model: 'base', messages: [{ role: 'user', content: 'word '.repeat(9000) }] }),
    (e) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded');

  const post = (body) => fetch(`${server.url}/v1/chat/completions`, {
    method: 'POST', headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' }, body,
  });
  let r = await post('{"model": "nano", "messages": [');
  assert.equal(r.status, 400);
  let err = (await r.json()).error;
  assert.match(err.message, /not valid JSON/);
  assert.equal(err.type, 'invalid_request_error');
  r = await post(JSON.stringify({ model: 'nano', messages: [{ role: 'user', content: 'x'.repeat(70000) }] }));
  assert.equal(r.status, 413);
  err = (await r.json()).error;
  assert.equal(err.code, 'request_too_large');
});

test('rate limit: a key over its requests per minute gets 429 with Retry-After', async () => {
  const limited = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: LIMITED_KEY, maxRetries: 0 });
  let refused = null;
  for (let i = 0; i < RATE + 5 && !refused; i++) {
    try { await limited.models.retrieve('base'); } catch (e) { refused = e; }
  }
  assert.ok(refused instanceof OpenAI.RateLimitError, `no 429 after ${RATE + 5} requests: ${refused}`);
  assert.ok(Number(refused.headers.get('retry-after')) >= 1);
});

test('concurrent requests share engine batches', async () => {
  const before = await health();
  const qs = ['What is 12 + 30?', 'Write a function that adds two numbers.', TOOL_Q,
    'Tom has 7 apples and buys 8 more. How many apples does Tom have?', 'Which is larger?\nA. 3\nB. 9', MATH_Q];
  const rs = await Promise.all(qs.map((q) => client.chat.completions.create({ model: 'nano', messages: [{ role: 'user', content: q }] })));
  assert.equal(rs.length, qs.length);
  const after = await health();
  const batches = after.batches - before.batches;
  assert.ok(batches < qs.length, `${qs.length} concurrent requests ran in ${batches} batches`);
  assert.ok(after.largest_batch >= 2);
  // Requests for different modifiers were among them.
  assert.ok(new Set(rs.map((r) => r.cogumi.choice)).size >= 2, JSON.stringify(rs.map((r) => r.cogumi.choice)));
});

test('a client that leaves mid-stream cancels its generation', async () => {
  const { cancelled } = await health();
  const controller = new AbortController();
  const stream = await client.completions.create(
    { model: 'base', prompt: 'Once upon a time', max_tokens: 1000, stream: true, ignore_eos: true, temperature: 1, seed: 3 },
    { signal: controller.signal });
  let pieces = 0;
  try {
    for await (const chunk of stream) { if (++pieces === 3) controller.abort(); }
  } catch (e) {
    assert.ok(e.name === 'AbortError' || e instanceof OpenAI.APIUserAbortError, String(e));
  }
  assert.ok(pieces >= 3 && pieces < 100, `${pieces} pieces arrived`);
  // 4000 tokens take far longer than this on two cores: only a cancelled generation is done.
  const t0 = Date.now();
  let h = await health();
  while ((h.running > 0 || h.in_flight > 0) && Date.now() - t0 < 5000) {
    await new Promise((r) => setTimeout(r, 100));
    h = await health();
  }
  assert.equal(h.running, 0, `still generating 5 s after the client left: ${JSON.stringify(h)}`);
  // Stopped, not finished: its answer ended as cancelled, short of its 1000 tokens.
  assert.equal(h.cancelled, cancelled + 1);
});

test('a client that leaves before a whole answer cancels its generation', async () => {
  const { cancelled } = await health();
  const controller = new AbortController();
  const pending = client.completions.create(
    { model: 'base', prompt: 'Once upon a time', max_tokens: 1000, ignore_eos: true, temperature: 1, seed: 4 },
    { signal: controller.signal });
  let h = await health();
  for (const t0 = Date.now(); h.running === 0 && Date.now() - t0 < 5000; h = await health()) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(h.running, 1, 'the request never started');
  controller.abort();
  await assert.rejects(pending, (e) => e instanceof OpenAI.APIUserAbortError || e.name === 'AbortError');
  const t0 = Date.now();
  while ((h.running > 0 || h.in_flight > 0) && Date.now() - t0 < 5000) {
    await new Promise((r) => setTimeout(r, 100));
    h = await health();
  }
  assert.equal(h.running, 0, `still generating 5 s after the client left: ${JSON.stringify(h)}`);
  assert.equal(h.in_flight, 0);
  assert.equal(h.cancelled, cancelled + 1);
});

test('SIGTERM drains the request in flight, then the server exits 0', async () => {
  const pending = client.chat.completions.create({ model: 'math', max_tokens: 96, messages: [{ role: 'user', content: MATH_Q }] });
  const t0 = Date.now();
  while ((await health()).in_flight === 0 && Date.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
  server.child.kill('SIGTERM');
  const r = await pending;
  assert.ok(r.choices[0].message.content.length > 0);
  const { code } = await server.exited;
  assert.equal(code, 0, server.log());
  assert.match(server.log(), /SIGTERM: draining/);
});
