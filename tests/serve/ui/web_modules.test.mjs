// The web UI's pure modules under node: the Prometheus text parser and the quantities the
// metrics page charts (web/prom.js), and the server-sent-event splitter the chat reads answers
// with (web/api.js). The pages load them as they are; node imports the same files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../web');
// web/ has no package.json saying "module": import each file's text as an ES module.
const load = (name) => import(`data:text/javascript;base64,${fs.readFileSync(path.join(WEB, name)).toString('base64')}`);
const { parseMetrics, sum, sumBy, rate, quantileBetween } = await load('prom.js');
const { SseParser } = await load('api.js');

const SCRAPE_1 = `# HELP cogumi_requests_total HTTP requests answered, by status code
# TYPE cogumi_requests_total counter
cogumi_requests_total{endpoint="/v1/chat/completions",model="nano",status="200"} 10
cogumi_requests_total{endpoint="/v1/chat/completions",model="nano",status="400"} 2
cogumi_requests_total{endpoint="/v1/models",model="",status="200"} 1 1700000000000
# TYPE cogumi_routed_total counter
cogumi_routed_total{choice="math"} 4
cogumi_routed_total{choice="code \\"quoted\\", a\\\\b\\nc"} 1
# TYPE cogumi_request_duration_seconds histogram
cogumi_request_duration_seconds_bucket{le="0.1"} 2
cogumi_request_duration_seconds_bucket{le="1"} 6
cogumi_request_duration_seconds_bucket{le="+Inf"} 6
cogumi_request_duration_seconds_sum 2.5
cogumi_request_duration_seconds_count 6
process_start_time_seconds 1.7e+09
odd_values{k="x"} NaN
`;

const SCRAPE_2 = SCRAPE_1
  .replace('status="200"} 10', 'status="200"} 40')
  .replace('{le="0.1"} 2', '{le="0.1"} 2')
  .replace('{le="1"} 6', '{le="1"} 16')
  .replace('{le="+Inf"} 6', '{le="+Inf"} 26')
  .replace('_sum 2.5', '_sum 32.5')
  .replace('_count 6', '_count 26');

test('parses samples, labels with escapes, timestamps and special values', () => {
  const m = parseMetrics(SCRAPE_1);
  assert.equal(m.types.cogumi_requests_total, 'counter');
  assert.equal(m.types.cogumi_request_duration_seconds, 'histogram');
  assert.equal(m.help.cogumi_requests_total, 'HTTP requests answered, by status code');
  assert.equal(sum(m, 'cogumi_requests_total'), 13);
  assert.equal(sum(m, 'cogumi_requests_total', { status: /^[45]/ }), 2);
  assert.equal(sum(m, 'cogumi_requests_total', { endpoint: '/v1/models' }), 1);
  assert.deepEqual(Object.keys(sumBy(m, 'cogumi_routed_total', 'choice')).sort(),
    ['code "quoted", a\\b\nc', 'math']);
  assert.equal(sum(m, 'process_start_time_seconds'), 1.7e9);
  assert.ok(Number.isNaN(sum(m, 'odd_values')));
});

test('names the line of malformed input', () => {
  assert.throws(() => parseMetrics('ok 1\nbroken{a="x"} notanumber\n'), /line 2: bad value/);
  assert.throws(() => parseMetrics('x{a="unterminated} 1\n'), /line 1: label a: unterminated/);
  assert.throws(() => parseMetrics('x{a=1} 1\n'), /line 1: label a: value not quoted/);
});

test('rates, and a counter reset is no rate', () => {
  assert.equal(rate(10, 40, 2), 15);
  assert.equal(rate(40, 3, 2), null);  // the server restarted
  assert.equal(rate(1, 2, 0), null);
});

test('histogram quantiles between two scrapes, interpolated in the buckets', () => {
  const a = parseMetrics(SCRAPE_1);
  const b = parseMetrics(SCRAPE_2);
  // Between the scrapes: 20 observations, 0 at <= 0.1, 10 in (0.1, 1], 10 above 1.
  assert.equal(quantileBetween(a, b, 'cogumi_request_duration_seconds', 0.25), 0.1 + 0.9 * 0.5);
  assert.equal(quantileBetween(a, b, 'cogumi_request_duration_seconds', 0.95), 1);  // in +Inf: the top finite bound
  assert.equal(quantileBetween(a, a, 'cogumi_request_duration_seconds', 0.5), null);  // nothing observed
  assert.equal(quantileBetween(a, b, 'no_such_histogram', 0.5), null);
});

test('server-sent events split across reads, with CRLF line ends', () => {
  const sse = new SseParser();
  assert.deepEqual(sse.push('data: {"a":'), []);
  assert.deepEqual(sse.push('1}\r\n\r\ndata: {"b":2}\n\n: a comment\n\nda'), ['{"a":1}', '{"b":2}']);
  assert.deepEqual(sse.push('ta: [DONE]\n\n'), ['[DONE]']);
  assert.deepEqual(sse.push('event: x\ndata: one\ndata: two\n\n'), ['one\ntwo']);
});
