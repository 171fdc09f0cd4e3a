// Line charts drawn as SVG: time on x (the last `windowMs`, ticks every 5 s to 10 min), one line per series, a y axis
// rounded up to a readable maximum, a legend with each series' latest value.

const SVG = 'http://www.w3.org/2000/svg';
const COLORS = ['#2563eb', '#c2410c', '#15803d', '#7c3aed', '#b91c1c', '#0e7490', '#a16207', '#be185d'];
const W = 640;
const H = 220;
const PAD = { left: 52, right: 12, top: 12, bottom: 26 };

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// The smallest 1, 2 or 5 times a power of ten at or above v (a readable axis maximum).
export function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function formatValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  const a = Math.abs(v);
  if (a >= 1e9) return `${(v / 1e9).toFixed(1)}G`;
  if (a >= 1e6) return `${(v / 1e6).toFixed(1)}M`;
  if (a >= 1e4) return `${(v / 1e3).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 1) return String(Number(v.toFixed(2)));
  return String(Number(v.toPrecision(2)));
}

// A tick step for an x axis `windowMs` wide: at most 6 ticks.
function tickStep(windowMs) {
  for (const s of [5, 10, 15, 30, 60, 120, 300]) if (windowMs / (s * 1000) <= 6) return s * 1000;
  return 600000;
}

function formatAgo(ms) {
  if (ms === 0) return 'now';
  return ms % 60000 === 0 ? `-${ms / 60000}m` : `-${ms / 1000}s`;
}

// Draws `series` ([{name, points: [[timeMs, value | null]]}]) into `figure`, replacing what it
// drew before. A null value breaks the line (no data for that interval).
export function drawLineChart(figure, series, { now = Date.now(), windowMs = 300000, unit = '' } = {}) {
  figure.querySelector('svg')?.remove();
  figure.querySelector('.legend')?.remove();
  const t0 = now - windowMs;
  const values = series.flatMap((s) => s.points.map((p) => p[1]))
    .filter((v) => v !== null && Number.isFinite(v));
  const yMax = niceMax(1.05 * Math.max(0, ...values));
  const x = (t) => PAD.left + ((t - t0) / windowMs) * (W - PAD.left - PAD.right);
  const y = (v) => H - PAD.bottom - (v / yMax) * (H - PAD.top - PAD.bottom);

  const svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'linechart', role: 'img' });
  svg.append(svgEl('title', {}, figure.querySelector('figcaption')?.textContent || 'chart'));
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4;
    svg.append(svgEl('line', { x1: PAD.left, x2: W - PAD.right, y1: y(v), y2: y(v), class: 'grid' }));
    svg.append(svgEl('text', { x: PAD.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' },
      `${formatValue(v)}${unit}`));
  }
  const step = tickStep(windowMs);
  for (let ago = 0; ago <= windowMs; ago += step) {
    svg.append(svgEl('text', { x: x(now - ago), y: H - 8, class: 'axis', 'text-anchor': 'middle' },
      formatAgo(ago)));
  }
  series.forEach((s, i) => {
    let d = '';
    let pen = false;
    let drawn = 0;
    for (const [t, v] of s.points) {
      if (t < t0 || v === null || !Number.isFinite(v)) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      drawn += 1;
    }
    const path = svgEl('path', { d: d || 'M0,0', class: 'series', stroke: COLORS[i % COLORS.length] });
    path.dataset.series = s.name;
    path.dataset.points = String(drawn);
    const last = [...s.points].reverse().find((p) => p[1] !== null);
    if (last) path.dataset.last = String(last[1]);
    svg.append(path);
  });
  figure.append(svg);

  const legend = document.createElement('div');
  legend.className = 'legend';
  series.forEach((s, i) => {
    const item = document.createElement('span');
    const swatch = document.createElement('i');
    swatch.style.background = COLORS[i % COLORS.length];
    const last = [...s.points].reverse().find((p) => p[1] !== null);
    item.append(swatch, `${s.name} ${last ? formatValue(last[1]) + unit : '–'}`);
    legend.append(item);
  });
  figure.append(legend);
}
