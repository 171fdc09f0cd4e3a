// The chat page: streams answers from /v1/chat/completions, shows the router's view of each
// answer, lets the user override the modifier, switch the mode and rate answers, and keeps the
// conversation in the server's session memory (its id in localStorage, so a reload restores it).
import { ApiError, callJson, setApiKey, streamChat } from './api.js';
import { renderDecision } from './decision.js';

const SESSION_KEY = 'cogumi.session';
const PREFS_KEY = 'cogumi.prefs';
const NO_MEMORY_TURNS = 7;  // messages sent as context when the server keeps no session memory

const $ = (id) => document.getElementById(id);
const state = {
  model: null,         // the routed system's model id (from /v1/models)
  session: null,       // the session id in the server's memory (null: none yet)
  memory: true,        // false when the server keeps no session memory
  messages: [],        // the conversation so far: [{role, content}]
  busy: null,          // the AbortController of the answer streaming now
};

function setStatus(text, kind = '') {
  const el = $('status');
  el.textContent = text;
  el.className = `status ${kind}`;
}

function prefs() {
  try { return JSON.parse(localStorage.getItem(PREFS_KEY)) || {}; } catch { return {}; }
}

function savePrefs() {
  const mode = document.querySelector('input[name=mode]:checked').value;
  localStorage.setItem(PREFS_KEY, JSON.stringify({ mode, choice: $('override').value }));
}

// /v1/models lists the routed system, the base and each modifier; the system is the entry the
// server marks as such (or, failing that, the first).
function classifyModels(list) {
  const kindOf = (m) => (m.cogumi && (m.cogumi.kind || m.cogumi.type)) || m.kind || '';
  const system = list.find((m) => kindOf(m) === 'system') || list[0];
  const choices = list.filter((m) => m !== system)
    .map((m) => ({ id: m.id, name: (m.cogumi && m.cogumi.choice) || m.id, kind: kindOf(m) }));
  return { system, choices };
}

async function loadModels() {
  const { data } = await callJson('/v1/models');
  if (!data || !data.length) throw new Error('the server lists no models');
  const { system, choices } = classifyModels(data);
  state.model = system.id;
  $('system-name').textContent = system.id;
  const select = $('override');
  for (const c of choices) {
    const opt = document.createElement('option');
    opt.value = c.name;
    opt.textContent = c.kind ? `${c.name} (${c.kind})` : c.name;
    select.append(opt);
  }
  const p = prefs();
  if (p.choice && [...select.options].some((o) => o.value === p.choice)) select.value = p.choice;
  if (p.mode) {
    const radio = document.querySelector(`input[name=mode][value="${p.mode}"]`);
    if (radio) radio.checked = true;
  }
}

function scrollToEnd() {
  const main = $('messages');
  main.scrollTop = main.scrollHeight;
}

function addMessage(role, content) {
  $('empty').hidden = true;
  const article = document.createElement('article');
  article.className = `msg ${role}`;
  const bubble = document.createElement('div');
  bubble.className = 'bubble';
  const text = document.createElement('div');
  text.className = 'content';
  text.textContent = content;
  bubble.append(text);
  article.append(bubble);
  $('messages').append(article);
  scrollToEnd();
  return article;
}

async function rate(article, score) {
  const turnId = Number(article.dataset.turnId);
  const buttons = article.querySelectorAll('.thumb');
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await callJson('/v1/feedback', { turn_id: turnId, score });
    showFeedback(article, score);
    setStatus(score > 0 ? 'Thanks: marked as a good answer.' : 'Thanks: marked as a bad answer.');
  } catch (e) {
    setStatus(`Feedback not stored: ${e.message}`, 'error');
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function showFeedback(article, score) {
  for (const b of article.querySelectorAll('.thumb'))
    b.setAttribute('aria-pressed', String(Number(b.dataset.score) === score));
  article.dataset.feedback = String(score || '');
}

// A thumb drawn in SVG (emoji fonts are not everywhere); CSS turns it down for the down button.
function thumbIcon() {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', 'M2 10h4v11H2zM8 21h9.5a2 2 0 0 0 2-1.6l1.4-7A2 2 0 0 0 19 10h-5.5l.9-4.3'
    + 'A1.8 1.8 0 0 0 12.7 4L8 9.5z');
  svg.append(path);
  return svg;
}

// The thumbs under an answer; only answers recorded in session memory (a turn id) can be rated.
function addFeedback(article, turnId, score) {
  if (!turnId) return;
  article.dataset.turnId = String(turnId);
  const bar = document.createElement('div');
  bar.className = 'feedback';
  for (const [s, label] of [[1, 'Good answer'], [-1, 'Bad answer']]) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `thumb ${s > 0 ? 'up' : 'down'}`;
    b.dataset.score = String(s);
    b.title = label;
    b.setAttribute('aria-label', label);
    b.setAttribute('aria-pressed', 'false');
    b.append(thumbIcon());
    b.addEventListener('click', () => rate(article, s));
    bar.append(b);
  }
  article.querySelector('.bubble').append(bar);
  showFeedback(article, score || 0);
}

function finishAnswer(article, cogumi, feedback) {
  if (cogumi) renderDecision(article, cogumi);
  addFeedback(article, cogumi && cogumi.turn_id, feedback);
}

async function ensureSession() {
  if (state.session || !state.memory) return;
  try {
    const s = await callJson('/v1/sessions', { metadata: { client: 'web' } });
    state.session = s.id;
    localStorage.setItem(SESSION_KEY, s.id);
  } catch (e) {
    if (!(e instanceof ApiError) || e.status !== 503) throw e;
    state.memory = false;  // answers still work; nothing is remembered across reloads
    setStatus('This server keeps no session memory: history and feedback are off.', 'warn');
  }
}

function buildRequest() {
  const cogumi = { mode: document.querySelector('input[name=mode]:checked').value };
  if (state.session) cogumi.session = state.session;
  const choice = $('override').value;
  if (choice) cogumi.choice = choice;
  // With a session the server's memory holds the conversation and puts as much of it in the
  // prompt as the system allows: send only the new question. Without one, the last few turns.
  const messages = state.session ? state.messages.slice(-1) : state.messages.slice(-NO_MEMORY_TURNS);
  return { model: state.model, messages, cogumi };
}

async function send(text) {
  try {
    await ensureSession();
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) askForKey(`Not authorized: ${e.message}`);
    else setStatus(`Cannot start a session: ${e.message}`, 'error');
    $('input').value = text;  // not sent: keep it
    return;
  }
  state.messages.push({ role: 'user', content: text });
  addMessage('user', text);
  const article = addMessage('assistant', '');
  article.classList.add('streaming');
  article.dataset.state = 'streaming';
  const content = article.querySelector('.content');
  const started = performance.now();
  state.busy = new AbortController();
  setBusy(true);
  try {
    const r = await streamChat(buildRequest(), {
      signal: state.busy.signal,
      onDelta: (delta, so_far) => {
        if (so_far.chunks === 1) article.dataset.firstChunkMs = String(Math.round(performance.now() - started));
        content.textContent += delta;
        article.dataset.chunks = String(so_far.chunks);
        scrollToEnd();
      },
    });
    article.dataset.chunks = String(r.chunks);
    article.dataset.state = 'done';
    state.messages.push({ role: 'assistant', content: r.text });
    finishAnswer(article, r.cogumi, 0);
    setStatus('');
  } catch (e) {
    article.dataset.state = 'error';
    const aborted = e.name === 'AbortError';
    content.textContent += aborted ? ' [stopped]' : '';
    if (!aborted) {
      const err = document.createElement('p');
      err.className = 'error';
      err.textContent = e.message;
      article.querySelector('.bubble').append(err);
    }
    state.messages.pop();  // the question goes unanswered: don't send it as context again
    if (e instanceof ApiError && e.status === 401) askForKey(`Not authorized: ${e.message}`);
    else setStatus(aborted ? 'Stopped.' : `Request failed: ${e.message}`, aborted ? '' : 'error');
  } finally {
    article.classList.remove('streaming');
    state.busy = null;
    setBusy(false);
  }
}

function setBusy(busy) {
  const b = $('send');
  b.textContent = busy ? 'Stop' : 'Send';
  b.classList.toggle('stop', busy);
  document.body.dataset.busy = busy ? 'true' : 'false';
}

// Shows the stored conversation of the session kept in localStorage.
async function restore() {
  const id = localStorage.getItem(SESSION_KEY);
  if (!id) return;
  let s;
  try {
    s = await callJson(`/v1/sessions/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
      localStorage.removeItem(SESSION_KEY);  // forgotten by the server (a new memory file)
      return;
    }
    if (e instanceof ApiError && e.status === 503) { state.memory = false; return; }
    throw e;
  }
  state.session = s.id;
  for (const t of s.turns) {
    if (t.role !== 'user' && t.role !== 'assistant') continue;
    state.messages.push({ role: t.role, content: t.content });
    const article = addMessage(t.role, t.content);
    if (t.role === 'assistant') {
      article.dataset.state = 'done';
      finishAnswer(article, t.cogumi ? { ...t.cogumi, turn_id: t.id } : { turn_id: t.id }, t.feedback);
    }
  }
  document.body.dataset.restored = String(s.turns.length);
}

function newChat() {
  if (state.busy) state.busy.abort();
  localStorage.removeItem(SESSION_KEY);
  state.session = null;
  state.messages = [];
  for (const a of $('messages').querySelectorAll('article')) a.remove();
  $('empty').hidden = false;
  setStatus('');
}

function wire() {
  $('composer').addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (state.busy) { state.busy.abort(); return; }
    const text = $('input').value.trim();
    if (!text) return;
    $('input').value = '';
    send(text);
  });
  $('input').addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      if (!state.busy) $('composer').requestSubmit();
    }
  });
  $('override').addEventListener('change', savePrefs);
  for (const r of document.querySelectorAll('input[name=mode]')) r.addEventListener('change', savePrefs);
  $('new-chat').addEventListener('click', newChat);
}

// A server started with --api-key answers 401 until the page sends a key: ask for it once, keep
// it in localStorage, start again.
function askForKey(message) {
  setStatus(message, 'error');
  const form = $('key-form');
  form.hidden = false;
  form.onsubmit = (ev) => {
    ev.preventDefault();
    setApiKey($('key-input').value.trim());
    form.hidden = true;
    start();
  };
  $('key-input').focus();
}

async function start() {
  try {
    if (!state.model) await loadModels();
    await restore();
    setStatus('');
    document.body.dataset.ready = 'true';
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) askForKey(`Not authorized: ${e.message}`);
    else setStatus(`Cannot reach the server: ${e.message}`, 'error');
  }
}

function main() {
  wire();
  start();
}

main();
