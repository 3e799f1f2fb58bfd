// edgelog console: polls the public API (relative URLs, so it works under any base path) and
// renders what it answers. Every value from the service is written with textContent, never as
// HTML: topics, ids and payloads come from publishers. Fields an older service lacks show as "–".
'use strict';

const REFRESH_MS = 3000;
const SAMPLES = 60; // sparkline window: 60 polls = 3 minutes
const TOKEN_KEY = 'edgelog-token';
const $ = (id) => document.getElementById(id);

const samples = []; // successive {t: ms, received}
const events = { filter: new URLSearchParams(), cursors: [null], page: 0, next: null, seq: 0, tail: null, shown: new Map() };

/** GETs an API path relative to the page; answers {status, body} (body null if not JSON). */
async function api(path) {
  const headers = { accept: 'application/json' };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.authorization = 'Bearer ' + token;
  let res;
  try {
    res = await fetch(path, { headers, cache: 'no-store' });
  } catch (e) {
    return { status: 0, body: { message: 'service unreachable' } };
  }
  let body = null;
  try { body = await res.json(); } catch (e) { /* not JSON */ }
  if ((res.status === 401 || res.status === 403) && !path.startsWith('dead-letters')) {
    askToken(res.status === 401 && !token
      ? 'This service requires an access token: enter a read or admin token.'
      : 'The token was not accepted for reading (' + res.status + '): enter a read or admin token.');
  }
  return { status: res.status, body };
}

const num = (v) => (typeof v === 'number' ? v.toLocaleString('en') : '–');
const text = (id, value) => { $(id).textContent = value; };
const errorText = (r) => 'HTTP ' + r.status + (r.body && r.body.message ? ': ' + r.body.message : '');

function cell(row, value, className) {
  const td = row.insertCell();
  td.textContent = value == null ? '–' : String(value);
  if (className) td.className = className;
  return td;
}

/** A UTC ISO 8601 time shown as `2026-11-23 10:00:00`; the exact value stays in the tooltip. */
function timeCell(row, iso) {
  const td = cell(row, typeof iso === 'string' ? iso.replace('T', ' ').replace(/(\.\d+)?(Z|[+-]00:00)$/, '') : iso, 'time');
  if (iso) td.title = iso;
  return td;
}

function askToken(reason) {
  text('token-reason', reason);
  $('token-form').hidden = false;
}

async function loadHealth() {
  const r = await api('health');
  const h = r.body || {};
  const el = $('health');
  if (h.status) {
    const failing = Object.entries(h.checks || {}).filter(([, v]) => v !== 'ok').map(([k, v]) => k + ': ' + v);
    el.textContent = h.status + (h.store ? ' · store ' + h.store : '') + (failing.length ? ' · ' + failing.join(', ') : '');
  } else {
    el.textContent = 'unreachable (' + errorText(r) + ')';
  }
  el.className = h.status === 'healthy' ? 'ok' : 'bad';
  text('q-size', num(h.queue_size));
  text('dl-pending', num(h.dead_letters));
}

async function loadStats() {
  const r = await api('stats');
  const s = r.body || {};
  if (r.status !== 200) {
    text('meta', 'Counters unavailable: ' + errorText(r));
    if (typeof s.queued === 'number') text('c-queued', num(s.queued));
    return;
  }
  text('c-received', num(s.received));
  text('c-stored', num(s.unique_processed));
  text('c-duplicates', num(s.duplicate_dropped));
  text('c-queued', num(s.queued));
  text('c-dead', num(s.dead_lettered));
  const uptime = s.uptime_human || (typeof s.uptime_seconds === 'number' ? s.uptime_seconds + 's' : '–');
  text('meta', 'store ' + (s.store || '–') + ' · up ' + uptime + (s.started_at ? ' · since ' + s.started_at : ''));
  if (typeof s.received === 'number') {
    samples.push({ t: Date.now(), received: s.received });
    if (samples.length > SAMPLES + 1) samples.shift();
    drawRate();
  }
  renderTopics(s);
}

/** Draws events/s between successive polls as a polyline; the caption carries the figures. */
function drawRate() {
  const rates = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000;
    rates.push(dt > 0 ? Math.max(0, samples[i].received - samples[i - 1].received) / dt : 0);
  }
  if (!rates.length) return;
  if (rates.length === 1) rates.push(rates[0]); // one rate: a flat line across
  const peak = Math.max(...rates);
  const step = 300 / (rates.length - 1); // the window so far fills the width
  const points = rates.map((r, i) => (i * step).toFixed(1) + ',' + (38 - (peak ? (r / peak) * 36 : 0)).toFixed(1));
  $('spark').querySelector('polyline').setAttribute('points', points.join(' '));
  $('spark').querySelector('polygon').setAttribute('points', '0,40 ' + points.join(' ') + ' 300,40');
  const fmt = (r) => (r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString('en'));
  text('rate', 'Rate: ' + fmt(rates[rates.length - 1]) + ' events/s now, peak ' + fmt(peak) + ' events/s over the last ' + Math.round((samples[samples.length - 1].t - samples[0].t) / 1000) + ' s');
}

function renderTopics(s) {
  const body = $('topics').tBodies[0];
  const rows = Array.isArray(s.topic_stats) ? s.topic_stats
    : (s.topics || []).map((topic) => ({ topic }));
  body.replaceChildren();
  const names = $('topic-names');
  names.replaceChildren();
  for (const t of rows) {
    const row = body.insertRow();
    row.dataset.topic = t.topic;
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = t.topic;
    button.title = 'Show the events of this topic';
    button.addEventListener('click', () => { $('f-topic').value = t.topic; firstPage(); });
    row.insertCell().append(button);
    for (const v of [t.received, t.unique_processed, t.duplicate_dropped, t.expired]) cell(row, typeof v === 'number' ? num(v) : null, 'num');
    timeCell(row, t.last_event_at);
    names.append(new Option(t.topic));
  }
  text('topics-note', !rows.length ? 'No topics yet.'
    : !Array.isArray(s.topic_stats) ? 'This service version does not report per-topic counts.'
      : s.topic_stats_truncated ? 'Only the busiest topics are listed.' : '');
}

async function loadDeadLetters() {
  const r = await api('dead-letters?limit=10');
  const body = $('dead-letters').tBodies[0];
  body.replaceChildren();
  const note = $('dl-note');
  note.replaceChildren();
  if (r.status === 401 || r.status === 403) {
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'link';
    button.textContent = 'Enter an admin token';
    button.addEventListener('click', () => askToken('Listing dead letters needs an admin token.'));
    note.append('Listing dead letters needs an admin token. ', button);
    return;
  }
  if (r.status !== 200 || !r.body || !Array.isArray(r.body.dead_letters)) {
    note.textContent = 'Dead letters are not available (' + errorText(r) + ').';
    return;
  }
  for (const d of r.body.dead_letters) {
    const row = body.insertRow();
    cell(row, d.id, 'id');
    for (const v of [d.received, d.reason, d.attempts]) cell(row, v);
    timeCell(row, d.failed_at);
    cell(row, d.status);
  }
  note.textContent = r.body.dead_letters.length ? (r.body.next_cursor != null ? 'Oldest 10 shown.' : '') : 'No dead letters.';
}

/** A datetime-local value (read as UTC) as ISO 8601, or null when empty. */
function utc(value) {
  if (!value) return null;
  return (value.length === 16 ? value + ':00' : value) + 'Z';
}

/** The filter form as query parameters (applied on submit, so live refresh ignores half-typed input). */
function readFilter() {
  const q = new URLSearchParams();
  const search = $('f-q').value.trim();
  if (search) q.set('q', search);
  const topic = $('f-topic').value.trim();
  if (topic) q.set('topic', topic);
  if ($('f-level').value) q.set('level', $('f-level').value);
  q.set('order', $('f-order').value || 'time');
  const since = utc($('f-since').value);
  const until = utc($('f-until').value);
  if (since) q.set('since', since);
  if (until) q.set('until', until);
  q.set('limit', $('f-limit').value || '20');
  return q;
}

// OTLP severity numbers 1-24 in groups of four (SeverityNumber in the OTLP logs data model).
const SEVERITY = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];

/** OTLP severity number → its short name (`INFO`, `WARN2`), or '' when unset. */
function severityName(n) {
  if (typeof n !== 'number' || n < 1 || n > 24) return '';
  const step = (n - 1) % 4;
  return SEVERITY[Math.floor((n - 1) / 4)] + (step ? String(step + 1) : '');
}

/**
 * A log record as a person reads it: severity, message, a few attributes. OTLP records
 * (`/v1/logs`) have `body` and a severity; Loki entries (`/loki/api/v1/push`) have `line` and
 * `labels`. Anything else (edgelog's own events) is null and shown as its JSON.
 */
function logView(p) {
  if (!p || typeof p !== 'object' || Array.isArray(p)) return null;
  if (typeof p.line === 'string' && p.labels && typeof p.labels === 'object') {
    const l = p.labels;
    const m = p.structured_metadata || {};
    const severity = l.level || l.detected_level || l.severity || m.level || m.detected_level || '';
    return { severity: String(severity), message: p.line, extra: p.structured_metadata };
  }
  if ('body' in p && ('severity_number' in p || 'severity_text' in p || p.scope || p.resource)) {
    const severity = p.severity_text || severityName(p.severity_number);
    const message = typeof p.body === 'string' ? p.body : JSON.stringify(p.body ?? null);
    return { severity, message, extra: p.attributes };
  }
  return null;
}

/** The payload column: a log line for log records (full JSON one click away), else the JSON. */
function payloadCell(row, payload) {
  const td = row.insertCell();
  const json = JSON.stringify(payload ?? null);
  const code = document.createElement('code');
  code.textContent = json.length > 200 ? json.slice(0, 200) + '…' : json;
  const log = logView(payload);
  if (!log) {
    td.append(code);
    return;
  }
  td.className = 'log';
  if (log.severity) {
    const sev = document.createElement('span');
    const level = log.severity.toLowerCase().replace(/[^a-z]/g, '');
    sev.className = 'sev sev-' + level;
    sev.textContent = log.severity;
    td.append(sev, ' ');
  }
  const message = document.createElement('span');
  message.className = 'message';
  message.textContent = log.message.length > 300 ? log.message.slice(0, 300) + '…' : log.message;
  td.append(message);
  const pairs = Object.entries(log.extra || {}).slice(0, 6)
    .map(([k, v]) => k + '=' + (typeof v === 'string' ? v : JSON.stringify(v)));
  if (pairs.length) {
    const attrs = document.createElement('div');
    attrs.className = 'muted attrs';
    attrs.textContent = pairs.join('  ·  ');
    td.append(attrs);
  }
  const details = document.createElement('details');
  const summary = document.createElement('summary');
  summary.textContent = 'payload';
  code.textContent = json;
  details.append(summary, code);
  td.append(details);
}

async function loadEvents() {
  const seq = ++events.seq;
  const q = new URLSearchParams(events.filter);
  const before = events.cursors[events.page];
  if (before != null) q.set('before', before);
  const r = await api('events?' + q);
  if (seq !== events.seq) return; // a newer request (filter, paging) has been made meanwhile
  const err = $('events-error');
  err.hidden = r.status === 200;
  if (r.status !== 200) {
    const details = ((r.body && r.body.details) || []).map((d) => (d.field ? d.field + ': ' : '') + d.message);
    err.textContent = 'Events unavailable: ' + errorText(r) + (details.length ? ' (' + details.join('; ') + ')' : '');
    return;
  }
  const body = $('events').tBodies[0];
  body.replaceChildren();
  events.shown.clear();
  for (const e of r.body.events || []) body.append(eventRow(e));
  if (!body.rows.length) cell(body.insertRow(), 'No events match.').colSpan = 6;
  events.tail = r.body.tail_cursor ?? null;
  events.next = r.body.next_cursor ?? null;
  $('older').disabled = events.next == null;
  $('newest').disabled = events.page === 0;
  text('page', 'page ' + (events.page + 1));
}

/** One event as a table row (every value as text); a click opens its full JSON. */
function eventRow(e) {
  const row = document.createElement('tr');
  row.dataset.eventId = e.event_id;
  row.dataset.id = e.id;
  events.shown.set(String(e.id), e);
  timeCell(row, e.timestamp);
  row.insertCell().append(levelBadge(e.level));
  for (const v of [e.topic, e.event_id, e.source]) cell(row, v);
  payloadCell(row, e.payload);
  row.tabIndex = 0;
  row.title = 'Show the whole event';
  return row;
}

async function firstPage() {
  events.filter = readFilter();
  events.cursors = [null];
  events.page = 0;
  await Promise.all([loadEvents(), loadVolume()]);
  restartFollow();
}

async function refresh() {
  const page0 = events.page === 0 && !follow.on;
  await Promise.all([loadHealth(), loadStats(), loadDeadLetters(), page0 ? loadEvents() : null, page0 ? loadVolume() : null]);
}

events.filter = readFilter();

$('filter').addEventListener('submit', (e) => { e.preventDefault(); firstPage(); });
$('older').addEventListener('click', () => {
  events.cursors[events.page + 1] = events.next;
  events.page += 1;
  loadEvents();
});
$('newest').addEventListener('click', () => { events.page = 0; loadEvents(); });
$('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value.trim());
  $('token').value = '';
  $('token-form').hidden = true;
  refresh();
});
$('token-forget').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  refresh();
});

// Started at the end of explore.js (inlined after this file), once its state exists.
