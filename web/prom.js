// Prometheus' text exposition format (0.0.4), parsed, and the sums the dashboard charts: what a
// scrape of /metrics says, and rates between two scrapes.

function parseValue(s, lineNo) {
  if (s === '+Inf' || s === 'Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  const v = Number(s);
  if (s === '' || Number.isNaN(v)) throw new Error(`metrics line ${lineNo}: bad value '${s}'`);
  return v;
}

// Reads `{a="x",b="y"}` starting at text[at] === '{'; returns [labels, index after '}'].
function parseLabels(text, at, lineNo) {
  const labels = {};
  let i = at + 1;
  const fail = (why) => { throw new Error(`metrics line ${lineNo}: ${why}`); };
  for (;;) {
    while (text[i] === ' ' || text[i] === ',') i++;
    if (text[i] === '}') return [labels, i + 1];
    const eq = text.indexOf('=', i);
    if (eq < 0) fail('label without =');
    const name = text.slice(i, eq).trim();
    if (!/^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name)) fail(`bad label name '${name}'`);
    if (text[eq + 1] !== '"') fail(`label ${name}: value not quoted`);
    let v = '';
    for (i = eq + 2; ; i++) {
      if (i >= text.length) fail(`label ${name}: unterminated value`);
      const c = text[i];
      if (c === '"') break;
      if (c === '\\') {
        const n = text[++i];
        v += n === 'n' ? '\n' : n;
      } else {
        v += c;
      }
    }
    labels[name] = v;
    i++;
  }
}

// Returns {samples: [{name, labels, value}], types: {family: type}, help: {family: text}}.
// Throws Error naming the line on malformed input.
export function parseMetrics(text) {
  const samples = [];
  const types = {};
  const help = {};
  const lines = text.split('\n');
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n].trim();
    if (!line) continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)\s*(.*)$/.exec(line);
      if (m && m[1] === 'TYPE') types[m[2]] = m[3];
      if (m && m[1] === 'HELP') help[m[2]] = m[3];
      continue;
    }
    const nameEnd = line.search(/[{\s]/);
    if (nameEnd <= 0) throw new Error(`metrics line ${n + 1}: no value`);
    const name = line.slice(0, nameEnd);
    let labels = {};
    let rest = line.slice(nameEnd);
    if (rest[0] === '{') {
      const [l, end] = parseLabels(line, nameEnd, n + 1);
      labels = l;
      rest = line.slice(end);
    }
    const value = parseValue(rest.trim().split(/\s+/)[0], n + 1);
    samples.push({ name, labels, value });
  }
  return { samples, types, help };
}

const matches = (labels, where) => Object.entries(where || {}).every(([k, v]) =>
  (v instanceof RegExp ? v.test(labels[k] || '') : labels[k] === v));

// The sum of every sample called `name` whose labels match `where` ({label: value | RegExp}).
export function sum(scrape, name, where) {
  let total = 0;
  for (const s of scrape.samples) if (s.name === name && matches(s.labels, where)) total += s.value;
  return total;
}

// Sums of `name` per value of `label`: {value: sum}.
export function sumBy(scrape, name, label, where) {
  const out = {};
  for (const s of scrape.samples) {
    if (s.name !== name || !matches(s.labels, where)) continue;
    const key = s.labels[label] || '';
    out[key] = (out[key] || 0) + s.value;
  }
  return out;
}

// The per-second rate of a counter between two scrapes taken dt seconds apart; null when the
// counter went down (the server restarted) or dt is not positive.
export function rate(before, after, dt) {
  if (!(dt > 0) || after < before) return null;
  return (after - before) / dt;
}

// The q-quantile of the observations a histogram got between two scrapes, interpolated in its
// buckets as Prometheus' histogram_quantile does; null without observations in between.
export function quantileBetween(before, after, name, q, where) {
  const buckets = (scrape) => {
    const byLe = {};
    for (const s of scrape.samples) {
      if (s.name !== `${name}_bucket` || !matches(s.labels, where)) continue;
      byLe[s.labels.le] = (byLe[s.labels.le] || 0) + s.value;
    }
    return byLe;
  };
  const b0 = buckets(before);
  const b1 = buckets(after);
  const les = Object.keys(b1).map((le) => [le, parseValue(le, 0)]).sort((a, b) => a[1] - b[1]);
  if (!les.length) return null;
  const counts = les.map(([le]) => (b1[le] || 0) - (b0[le] || 0));
  const total = counts[counts.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  let prevLe = 0;
  let prevCount = 0;
  for (let i = 0; i < les.length; i++) {
    const le = les[i][1];
    if (counts[i] >= rank) {
      if (le === Infinity) return prevLe;  // above the highest finite bucket
      const inBucket = counts[i] - prevCount;
      return inBucket > 0 ? prevLe + (le - prevLe) * ((rank - prevCount) / inBucket) : le;
    }
    prevLe = le;
    prevCount = counts[i];
  }
  return prevLe;
}
