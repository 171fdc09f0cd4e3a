// The metrics page: polls GET /metrics (Prometheus text), keeps the last five minutes of
// scrapes in memory and charts request rate, latency, tokens and routing from them.
// ?interval=MS sets the polling period (default 2000).
import { parseMetrics, quantileBetween, rate, sum, sumBy } from './prom.js';
import { drawLineChart, formatValue } from './charts.js';

const WINDOW_MS = 5 * 60 * 1000;
const params = new URLSearchParams(location.search);
const INTERVAL_MS = Math.max(200, Number(params.get('interval')) || 2000);
const scrapes = [];  // [{t, m}] oldest first

const $ = (id) => document.getElementById(id);

// One line per series from consecutive scrapes: f(before, after, dtSeconds) -> value | null.
function between(name, f) {
  const points = [];
  for (let i = 1; i < scrapes.length; i++) {
    const a = scrapes[i - 1];
    const b = scrapes[i];
    points.push([b.t, f(a.m, b.m, (b.t - a.t) / 1000)]);
  }
  return { name, points };
}

function counterRate(name, where) {
  return (a, b, dt) => rate(sum(a, name, where), sum(b, name, where), dt);
}

function meanBetween(name) {
  return (a, b) => {
    const n = sum(b, `${name}_count`) - sum(a, `${name}_count`);
    const s = sum(b, `${name}_sum`) - sum(a, `${name}_sum`);
    return n > 0 ? s / n : null;
  };
}

function routingSeries() {
  const choices = new Set();
  for (const { m } of scrapes) for (const c of Object.keys(sumBy(m, 'cogumi_routed_total', 'choice'))) choices.add(c);
  return [...choices].sort().map((c) => ({
    name: c,
    points: scrapes.map(({ t, m }) => [t, sum(m, 'cogumi_routed_total', { choice: c })]),
  }));
}

function drawCharts() {
  // The x axis spans what was scraped so far (at least 30 s), up to the five minutes kept.
  const now = scrapes[scrapes.length - 1].t;
  const span = Math.min(WINDOW_MS, Math.max(30000, now - scrapes[0].t));
  const opts = { now, windowMs: Math.ceil(span / 5000) * 5000 };
  drawLineChart($('chart-requests'), [
    between('all', counterRate('cogumi_requests_total')),
    between('errors', counterRate('cogumi_requests_total', { status: /^[45]/ })),
  ], { ...opts, unit: '/s' });
  drawLineChart($('chart-latency'), [
    between('mean', meanBetween('cogumi_request_duration_seconds')),
    between('p95', (a, b) => quantileBetween(a, b, 'cogumi_request_duration_seconds', 0.95)),
    between('first token (mean)', meanBetween('cogumi_time_to_first_token_seconds')),
  ], { ...opts, unit: 's' });
  drawLineChart($('chart-tokens'), [
    between('generated', counterRate('cogumi_completion_tokens_total')),
    between('prompt', counterRate('cogumi_prompt_tokens_total')),
  ], { ...opts, unit: '/s' });
  drawLineChart($('chart-routing'), routingSeries(), opts);
}

function drawTiles(m) {
  const tiles = [
    ['requests', sum(m, 'cogumi_requests_total')],
    ['in flight', sum(m, 'cogumi_requests_in_flight')],
    ['queue', sum(m, 'cogumi_queue_depth')],
    ['KV cache', `${formatValue(100 * sum(m, 'cogumi_kv_cache_usage_ratio'))}%`],
    ['escalations', sum(m, 'cogumi_escalations_total')],
    ['thumbs up', sum(m, 'cogumi_feedback_total', { score: 'up' })],
    ['thumbs down', sum(m, 'cogumi_feedback_total', { score: 'down' })],
    ['errors', sum(m, 'cogumi_errors_total')],
    ['memory', `${formatValue(sum(m, 'process_resident_memory_bytes'))}B`],
  ];
  const box = $('tiles');
  box.replaceChildren(...tiles.map(([label, v]) => {
    const d = document.createElement('div');
    d.className = 'tile';
    d.dataset.metric = label;
    const b = document.createElement('b');
    b.textContent = typeof v === 'number' ? formatValue(v) : v;
    const s = document.createElement('span');
    s.textContent = label;
    d.append(b, s);
    return d;
  }));
}

async function poll() {
  const status = $('scrape-status');
  try {
    const res = await fetch('/metrics', { cache: 'no-store' });
    if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
    const m = parseMetrics(await res.text());
    const t = Date.now();
    scrapes.push({ t, m });
    while (scrapes.length > 2 && scrapes[0].t < t - WINDOW_MS - INTERVAL_MS) scrapes.shift();
    drawTiles(m);
    drawCharts();
    status.textContent = `scraped ${new Date(t).toLocaleTimeString()} (${m.samples.length} samples, every ${INTERVAL_MS / 1000}s)`;
    status.className = 'muted';
    document.body.dataset.scrapes = String(scrapes.length);
  } catch (e) {
    status.textContent = `metrics unavailable: ${e.message}`;
    status.className = 'error';
  } finally {
    setTimeout(poll, INTERVAL_MS);
  }
}

poll();
