// The router's view of one answer: its choice, the probability of every choice as a bar, the
// confidence, the mode, and whether the answer was escalated or its choice overridden.

// A probability as a percentage; never rounds a non-zero one to 0% or a non-certain one to 100%.
function pct(p) {
  if (p > 0 && p < 0.001) return '<0.1%';
  if (p > 0.999 && p < 1) return '>99.9%';
  return `${(100 * p).toFixed(p === 0 || p === 1 ? 0 : 1)}%`;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function probabilityBars(probabilities, chosen) {
  const list = el('ul', 'probs');
  const entries = Object.entries(probabilities || {}).sort((a, b) => b[1] - a[1]);
  for (const [name, p] of entries) {
    const li = el('li', name === chosen ? 'chosen' : '');
    li.dataset.choice = name;
    li.dataset.probability = String(p);
    const bar = el('span', 'bar');
    const fill = el('span', 'fill');
    fill.style.width = `${Math.max(0, Math.min(1, p)) * 100}%`;
    bar.append(fill);
    bar.setAttribute('role', 'meter');
    bar.setAttribute('aria-valuemin', '0');
    bar.setAttribute('aria-valuemax', '1');
    bar.setAttribute('aria-valuenow', String(p));
    bar.setAttribute('aria-label', `P(${name})`);
    li.append(el('span', 'name', name), bar, el('span', 'p', pct(p)));
    list.append(li);
  }
  return list;
}

// Adds (or replaces) the routing panel of an answer's <article>.
export function renderDecision(article, d) {
  article.querySelector('.route')?.remove();
  const aside = el('aside', 'route');
  aside.setAttribute('aria-label', 'Routing decision');
  aside.dataset.choice = d.choice || '';
  aside.dataset.overridden = String(!!d.overridden);
  aside.dataset.escalated = String(!!d.escalated);

  const head = el('div', 'route-head');
  head.append(el('span', 'label', 'answered by'), el('span', 'badge choice', d.choice || '?'));
  if (d.mode) head.append(el('span', 'tag mode', d.mode));
  if (d.overridden) head.append(el('span', 'tag overridden', 'manual override'));
  if (d.escalated) {
    const by = d.escalated_by ? ` by ${d.escalated_by}` : '';
    head.append(el('span', 'tag escalated', `escalated${by}`));
  }
  aside.append(head);

  if (typeof d.confidence === 'number') {
    let conf = `confidence ${pct(d.confidence)}`;
    if (d.samples > 1) conf += ` (${d.votes}/${d.samples} samples agree)`;
    aside.append(el('div', 'route-conf', conf));
  }
  if (d.escalated_by === 'detector') {
    aside.append(el('p', 'note', 'The question read as a complaint about the previous answer: asked '
      + `again with the same choice${d.mode === 'accurate' ? ', in accurate mode' : ''}.`));
  } else if (d.escalated_by === 'router') {
    aside.append(el('p', 'note', 'The router was unsure (its confidence was under the threshold): escalated.'));
  } else if (d.escalated_by === 'confidence') {
    aside.append(el('p', 'note', 'The fast answer\'s confidence was under the threshold: asked again in accurate mode.'));
  }
  const probs = d.probabilities || {};
  if (Object.keys(probs).length) {
    aside.append(probabilityBars(probs, d.choice));
  } else {
    aside.append(el('p', 'muted', d.overridden ? 'router not consulted: the choice was named'
      : 'no router probabilities for this answer'));
  }
  article.append(aside);
}
