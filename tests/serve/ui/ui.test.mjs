// The web UI end to end, as a user drives it: a real `cogumi serve` of the shipped nano system on
// a free loopback port (its session memory in a temporary directory), Debian's Chromium headless
// through playwright-core. The steps run in order on one page, like one user's visit.
//
// Environment: COGUMI_BIN (the cogumi binary; default build/bin/cogumi), COGUMI_CHROMIUM
// (default /usr/bin/chromium). A missing binary, browser or npm package fails with the reason.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../../..');
const BIN = process.env.COGUMI_BIN || path.join(REPO, 'build/bin/cogumi');
const CHROMIUM = process.env.COGUMI_CHROMIUM || '/usr/bin/chromium';
const WAIT = { timeout: 90000 };  // one answer on a busy 2-core machine

const MATH_Q = 'Sam has 30 cards. He gives 11 away. How many cards does Sam have now?';
const MATH_Q2 = 'A baker makes 12 loaves and sells 5. How many loaves are left?';
const MATH_Q3 = 'Tom has 7 apples and buys 8 more. How many apples does Tom have?';
const COMPLAINT = 'No, that is wrong. Try again.';

let server;       // the cogumi serve child process
let keyed;        // a second one, started with --api-key
let serverLog = '';
let base;         // http://127.0.0.1:PORT
let tmp;
let system;       // the system file both servers serve
let browser;
let page;
const answers = [];  // what the page showed: {turnId, text, choice}
let firstBars = 0;   // probability bars of the first answer

// The nano system with its session memory moved into `dir` (the shipped file keeps it in runs/).
function systemIn(dir) {
  const models = path.join(REPO, 'models');
  for (const name of fs.readdirSync(models)) fs.symlinkSync(path.join(models, name), path.join(dir, name));
  const file = path.join(dir, 'ui-system.yaml');
  const yaml = fs.readFileSync(path.join(models, 'nano-system.yaml'), 'utf8');
  const moved = yaml.replace(/^memory:.*$/m, 'memory: sessions.db');
  assert.notEqual(moved, yaml, 'models/nano-system.yaml has no memory: line to move');
  fs.writeFileSync(file, moved);
  return file;
}

async function stopServer(child) {
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

function startServer(system, extraArgs = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '-s', system, '--host', '127.0.0.1', '--port', '0', ...extraArgs],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';  // this server's stdout
    const timer = setTimeout(() => reject(new Error(`cogumi serve did not start in 120 s:\n${serverLog}`)), 120000);
    child.stdout.on('data', (d) => {
      serverLog += d;
      out += d;
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(out);
      if (m) { clearTimeout(timer); resolve({ child, url: m[1] }); }
    });
    child.stderr.on('data', (d) => { serverLog += d; });
    child.on('error', (e) => { clearTimeout(timer); reject(new Error(`cannot run ${BIN}: ${e.message}`)); });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`cogumi serve exited (${code}) before listening:\n${serverLog}`)); });
  });
}

async function api(p, body) {
  const res = await fetch(base + p, body === undefined ? {} : {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
  });
  const json = await res.json();
  assert.equal(res.status, 200, `${p}: ${JSON.stringify(json)}`);
  return json;
}

// Types a question, sends it, and waits until its answer has finished streaming. Returns the
// answer's <article> and the lengths its text had each time the page changed it.
async function ask(question) {
  const n = await page.locator('article.msg.assistant').count();
  await page.evaluate(() => {
    window.uiLengths = [];
    if (window.uiSeen) return;
    window.uiSeen = new MutationObserver(() => {
      const a = [...document.querySelectorAll('article.msg.assistant')].pop();
      if (a && a.dataset.state === 'streaming') window.uiLengths.push(a.querySelector('.content').textContent.length);
    });
    window.uiSeen.observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
  });
  await page.fill('#input', question);
  await page.press('#input', 'Enter');
  const article = page.locator('article.msg.assistant').nth(n);
  await article.and(page.locator('[data-state="done"], [data-state="error"]')).waitFor(WAIT);
  const error = await article.locator('.error').allTextContents();
  assert.equal(await article.getAttribute('data-state'), 'done', `the answer failed: ${error.join(' ')}\n${serverLog}`);
  const lengths = await page.evaluate(() => window.uiLengths);
  const text = await article.locator('.content').textContent();
  const choice = await article.locator('.route').getAttribute('data-choice');
  const turnId = Number(await article.getAttribute('data-turn-id'));
  answers.push({ turnId, text, choice });
  return { article, lengths, text, choice, turnId };
}

before(async () => {
  assert.ok(fs.existsSync(BIN), `no cogumi binary at ${BIN} (build it, or set COGUMI_BIN)`);
  assert.ok(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (scripts/deps.sh --test installs Debian's chromium)`);
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    assert.fail(`playwright-core is not installed in ${HERE} (scripts/deps.sh --test runs npm ci there): ${e.message}`);
  }
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cogumi-ui-'));
  system = systemIn(tmp);
  ({ child: server, url: base } = await startServer(system));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await browser.newPage();
  page.on('pageerror', (e) => { serverLog += `\n[page error] ${e.message}`; });
});

after(async () => {
  if (browser) await browser.close();
  await stopServer(server);
  await stopServer(keyed);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('an answer streams in and shows the router\'s view', async () => {
  await page.goto(`${base}/`);
  await page.locator('body[data-ready="true"]').waitFor(WAIT);
  assert.equal(await page.title(), 'Cogumi chat');
  // A slow link (600 B/s down, through Chromium's network emulation) spreads the stream's pieces
  // over separate reads, as on a real network, so the growing answer shows in the DOM (at 2 KB/s a CI run
  // under load once saw a 21-character answer arrive in two reads).
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: 600, uploadThroughput: -1 });
  const { article, lengths, text, choice } = await ask(MATH_Q);
  await cdp.send('Network.emulateNetworkConditions',
    { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });

  assert.ok(text.length > 0, 'the answer is empty');
  const chunks = Number(await article.getAttribute('data-chunks'));
  assert.ok(chunks > 1, `the answer arrived in ${chunks} chunk(s), not streamed`);
  const partial = new Set(lengths.filter((n) => n > 0 && n < text.length));
  assert.ok(partial.size >= 2, `the page showed ${partial.size} partial answer(s) (lengths seen: ${lengths})`);
  const firstChunkMs = await article.getAttribute('data-first-chunk-ms');
  assert.ok(firstChunkMs !== null && firstChunkMs !== '' && Number(firstChunkMs) >= 0,
    `no first chunk recorded (data-first-chunk-ms=${firstChunkMs})`);

  // The routing panel: one bar per router choice, the chosen one marked, probabilities sum to 1.
  assert.equal(choice, 'math', 'the router should send a word problem to the math modifier');
  const bars = article.locator('.route .probs li');
  const probs = await bars.evaluateAll((lis) => lis.map((li) => [li.dataset.choice, Number(li.dataset.probability)]));
  const names = probs.map((p) => p[0]);
  for (const c of ['math', 'code']) assert.ok(names.includes(c), `no bar for ${c}: ${names}`);
  assert.equal(new Set(names).size, names.length, `a choice has two bars: ${names}`);
  assert.ok(Math.abs(probs.reduce((s, p) => s + p[1], 0) - 1) < 1e-3, `probabilities ${probs} do not sum to 1`);
  assert.equal(probs[0][0], 'math', 'bars are sorted, the most probable first');
  firstBars = probs.length;
  assert.equal(await article.locator('.route .probs li.chosen').getAttribute('data-choice'), 'math');
  assert.match(await article.locator('.route-conf').textContent(), /^confidence (\d+(\.\d)?|>99\.9)%/);
  // Fast, as the switch says, unless the runtime escalated it (then the panel says so).
  const escalated = await article.locator('.route').getAttribute('data-escalated') === 'true';
  assert.equal(await article.locator('.route .tag.escalated').count(), escalated ? 1 : 0);
  if (!escalated) assert.equal(await article.locator('.route .tag.mode').textContent(), 'fast');
  assert.equal(await article.locator('.route').getAttribute('data-overridden'), 'false');
});

test('overriding the modifier changes the answer\'s choice', async () => {
  // Every model the server lists besides the routed system can be picked, and "auto".
  const models = (await api('/v1/models')).data.filter((m) => m.cogumi?.kind !== 'system').map((m) => m.id);
  const options = await page.locator('#override option').evaluateAll((os) => os.map((o) => o.value));
  assert.deepEqual(options, ['', ...models]);
  await page.selectOption('#override', 'code');
  const { article, choice } = await ask(MATH_Q2);
  assert.equal(choice, 'code', 'the override named code: the answer must come from code');
  assert.equal(await article.locator('.route').getAttribute('data-overridden'), 'true');
  assert.equal(await article.locator('.route .tag.overridden').textContent(), 'manual override');
  await page.selectOption('#override', '');  // back to the router
});

test('the mode switch asks in accurate mode', async () => {
  await page.click('#mode label:has(input[value=accurate])');
  const { article, choice } = await ask(MATH_Q3);
  assert.equal(choice, 'math');
  assert.equal(await article.locator('.route .tag.mode').textContent(), 'accurate');
  assert.match(await article.locator('.route-conf').textContent(), /\(\d+\/\d+ samples agree\)/);
  await page.click('#mode label:has(input[value=fast])');
});

test('a complaint about the last answer escalates, and the panel says so', async () => {
  const { article, choice } = await ask(COMPLAINT);
  assert.equal(choice, 'math', 'a complaint stays with the answer it complains about');
  const route = article.locator('.route');
  assert.equal(await route.getAttribute('data-escalated'), 'true');
  assert.equal(await route.locator('.tag.escalated').textContent(), 'escalated by detector');
  assert.equal(await route.locator('.tag.mode').textContent(), 'accurate');
  assert.match(await route.locator('.note').textContent(), /complaint about the previous answer/);
});

test('thumbs are stored in session memory', async () => {
  const session = await page.evaluate(() => localStorage.getItem('cogumi.session'));
  assert.ok(session, 'no session id in localStorage');
  const first = page.locator('article.msg.assistant').nth(0);
  const second = page.locator('article.msg.assistant').nth(1);
  await first.locator('.thumb.up').click();
  await first.locator('.thumb.up[aria-pressed="true"]').waitFor(WAIT);
  await second.locator('.thumb.down').click();
  await second.locator('.thumb.down[aria-pressed="true"]').waitFor(WAIT);

  const s = await api(`/v1/sessions/${session}`);
  const byId = Object.fromEntries(s.turns.map((t) => [t.id, t]));
  assert.equal(byId[answers[0].turnId].feedback, 1, 'thumbs up not stored');
  assert.equal(byId[answers[1].turnId].feedback, -1, 'thumbs down not stored');
  assert.equal(byId[answers[2].turnId].feedback, null);
  assert.equal(byId[answers[0].turnId].content, answers[0].text, 'the stored answer differs from the one shown');
});

test('a reload shows the history with its decisions and thumbs', async () => {
  await page.reload();
  await page.locator('body[data-ready="true"]').waitFor(WAIT);
  const shown = await page.locator('article.msg').evaluateAll((as) => as.map((a) => ({
    role: a.classList.contains('user') ? 'user' : 'assistant',
    text: a.querySelector('.content').textContent,
    choice: a.querySelector('.route')?.dataset.choice,
    feedback: a.dataset.feedback,
  })));
  assert.deepEqual(shown.map((m) => m.role), Array(4).fill(['user', 'assistant']).flat());
  assert.deepEqual(shown.filter((m) => m.role === 'user').map((m) => m.text), [MATH_Q, MATH_Q2, MATH_Q3, COMPLAINT]);
  const restored = shown.filter((m) => m.role === 'assistant');
  assert.deepEqual(restored.map((m) => m.text), answers.map((a) => a.text));
  assert.deepEqual(restored.map((m) => m.choice), ['math', 'code', 'math', 'math']);
  assert.deepEqual(restored.map((m) => m.feedback), ['1', '-1', '', '']);
  const bars = await page.locator('article.msg.assistant').nth(0).locator('.route .probs li').count();
  assert.equal(bars, firstBars, 'the restored answer lost its probability bars');
  assert.equal(await page.locator('article.msg.assistant').nth(1).locator('.route .tag.overridden').count(), 1);
  assert.equal(await page.locator('article.msg.assistant').nth(3).locator('.route .tag.escalated').textContent(),
    'escalated by detector');
});

test('the metrics page draws live charts from /metrics', async () => {
  await page.click('nav a[href="/dashboard"]');
  await page.waitForURL(`${base}/dashboard`);
  await page.goto(`${base}/dashboard?interval=300`);
  await page.waitForFunction(() => Number(document.body.dataset.scrapes) >= 4, null, WAIT);
  const status = await page.locator('#scrape-status').textContent();
  assert.match(status, /^scraped /, status);
  // Requests per second: a line through every interval since the page opened.
  const points = Number(await page.locator('#chart-requests svg path.series[data-series="all"]').getAttribute('data-points'));
  assert.ok(points >= 3, `the request-rate chart drew ${points} point(s)`);
  // Routing: a line per choice that answered above, its last value the count so far.
  const routing = Object.fromEntries(await page.locator('#chart-routing svg path.series')
    .evaluateAll((ps) => ps.map((p) => [p.dataset.series, Number(p.dataset.last)])));
  assert.equal(routing.math, 3, `routing lines: ${JSON.stringify(routing)}`);
  assert.equal(routing.code, 1, `routing lines: ${JSON.stringify(routing)}`);
  const tiles = await page.locator('.tile[data-metric="thumbs up"] b').textContent();
  assert.equal(tiles, '1', 'the thumbs-up tile should count the one thumbs up given');
});

test('a server started with --api-key asks for the key, then answers', async () => {
  let url;
  ({ child: keyed, url } = await startServer(system, ['--api-key', 'sesame']));
  await page.goto(`${url}/`);
  const form = page.locator('#key-form');
  await form.waitFor({ state: 'visible', ...WAIT });
  assert.match(await page.locator('#status').textContent(), /^Not authorized/);
  await page.fill('#key-input', 'sesame');
  await form.locator('button').click();
  await page.locator('body[data-ready="true"]').waitFor(WAIT);
  assert.equal(await form.isHidden(), true);
  const { text, choice } = await ask(MATH_Q);
  assert.ok(text.length > 0);
  assert.equal(choice, 'math');
  assert.equal(await page.evaluate(() => localStorage.getItem('cogumi.apiKey')), 'sesame');
});
