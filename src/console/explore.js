// edgelog console, exploring events (inlined after console.js, same script): level colours,
// the volume chart (stacked by level; drag across it to select a time range), following new
// events with the live tail, and an event's whole JSON. Publisher data is only ever text.
'use strict';

const LEVELS = ['none', 'trace', 'debug', 'info', 'warn', 'error', 'fatal']; // bottom to top
const SVG = 'http://www.w3.org/2000/svg';
const follow = { on: false, seq: 0, cursor: null };
const volume = { buckets: [], step: 0, drag: null, seq: 0 };

/** A coloured badge with the level's name (`–` without one). */
function levelBadge(level) {
  const span = document.createElement('span');
  const known = LEVELS.includes(level) && level !== 'none';
  span.className = 'badge lv-' + (known ? level : 'none');
  span.textContent = known ? level : '–';
  return span;
}

/** `2026-11-23T10:00:00.000000Z` as the value of a datetime-local input (UTC). */
const localInput = (iso) => iso.slice(0, 19);

/** Loads /volume for the current filter (topic, level, q; the time range or the last hour). */
async function loadVolume() {
  const seq = ++volume.seq;
  const q = new URLSearchParams();
  for (const name of ['topic', 'level', 'q', 'since', 'until']) {
    if (events.filter.has(name)) q.set(name, events.filter.get(name));
  }
  const r = await api('volume?' + q);
  if (seq !== volume.seq) return;
  if (r.status !== 200 || !r.body || !Array.isArray(r.body.buckets)) {
    volume.buckets = [];
    drawVolume();
    text('volume-caption', 'Volume unavailable: ' + errorText(r));
    return;
  }
  volume.buckets = r.body.buckets;
  volume.step = r.body.step_seconds;
  drawVolume();
  const minutes = volume.step / 60;
  const step = minutes % 1440 === 0 ? minutes / 1440 + ' d' : minutes % 60 === 0 ? minutes / 60 + ' h' : minutes + ' min';
  text('volume-from', r.body.since.replace('T', ' ').replace(/\.\d+Z$/, ''));
  text('volume-to', r.body.until.replace('T', ' ').replace(/\.\d+Z$/, ''));
  text('volume-caption', (r.body.total ? num(r.body.total) + ' event(s)' : 'No events') +
    ' in this range, ' + step + ' per bar' + (r.body.total ? '; drag across the chart to narrow the time range.' : '.'));
}

/** Stacked bars, one per bucket, one rectangle per level; a tooltip per bar. */
function drawVolume() {
  const g = $('volume').querySelector('.bars');
  g.replaceChildren();
  const n = volume.buckets.length;
  if (!n) return;
  const peak = Math.max(1, ...volume.buckets.map((b) => b.count));
  const width = 1000 / n;
  volume.buckets.forEach((b, i) => {
    let y = 100;
    const bar = document.createElementNS(SVG, 'g');
    const title = document.createElementNS(SVG, 'title');
    title.textContent = b.start.replace('T', ' ').replace(/\.\d+Z$/, '') + ': ' + b.count + ' event(s)' +
      LEVELS.filter((l) => b.levels[l]).map((l) => ', ' + l + ' ' + b.levels[l]).join('');
    bar.append(title);
    for (const level of LEVELS) {
      const c = b.levels[level] || 0;
      if (!c) continue;
      const h = (c / peak) * 96;
      y -= h;
      const rect = document.createElementNS(SVG, 'rect');
      rect.setAttribute('class', 'lv-' + level);
      rect.setAttribute('x', (i * width + width * 0.08).toFixed(2));
      rect.setAttribute('width', Math.max(0.5, width * 0.84).toFixed(2));
      rect.setAttribute('y', y.toFixed(2));
      rect.setAttribute('height', h.toFixed(2));
      bar.append(rect);
    }
    g.append(bar);
  });
}

/** The bucket under a pointer position (clamped to the chart). */
function bucketAt(clientX) {
  const box = $('volume').getBoundingClientRect();
  const n = volume.buckets.length;
  const i = Math.floor(((clientX - box.left) / box.width) * n);
  return Math.min(n - 1, Math.max(0, i));
}

function showSelection(a, b) {
  const sel = $('volume').querySelector('.sel');
  const n = volume.buckets.length || 1;
  sel.setAttribute('x', ((Math.min(a, b) * 1000) / n).toFixed(2));
  sel.setAttribute('width', (((Math.abs(b - a) + 1) * 1000) / n).toFixed(2));
}

$('volume').addEventListener('pointerdown', (e) => {
  if (!volume.buckets.length) return;
  volume.drag = bucketAt(e.clientX);
  showSelection(volume.drag, volume.drag);
  $('volume').setPointerCapture(e.pointerId);
});
$('volume').addEventListener('pointermove', (e) => {
  if (volume.drag != null) showSelection(volume.drag, bucketAt(e.clientX));
});
$('volume').addEventListener('pointerup', (e) => {
  if (volume.drag == null) return;
  const a = Math.min(volume.drag, bucketAt(e.clientX));
  const b = Math.max(volume.drag, bucketAt(e.clientX));
  volume.drag = null;
  $('volume').querySelector('.sel').setAttribute('width', '0');
  const start = volume.buckets[a].start;
  const end = new Date(Date.parse(volume.buckets[b].start) + volume.step * 1000).toISOString();
  $('f-since').value = localInput(start);
  $('f-until').value = localInput(end);
  firstPage();
});

/** Follows new events: `after=<tail_cursor>&wait=20` in a loop, newest arrivals on top. */
async function followLoop(seq) {
  while (follow.on && seq === follow.seq) {
    const q = new URLSearchParams(events.filter);
    q.delete('order');
    q.set('after', follow.cursor);
    q.set('wait', '20');
    const r = await api('events?' + q);
    if (!follow.on || seq !== follow.seq) return;
    if (r.status !== 200 || !r.body) {
      text('follow-status', 'Following paused: ' + errorText(r) + '; retrying in 5 s.');
      await new Promise((done) => setTimeout(done, 5000));
      continue;
    }
    follow.cursor = r.body.tail_cursor;
    const fresh = (r.body.events || []).filter((e) => !events.shown.has(String(e.id)));
    if (fresh.length) {
      const body = $('events').tBodies[0];
      if (body.rows.length === 1 && !body.rows[0].dataset.eventId) body.replaceChildren();
      for (const e of fresh) body.prepend(eventRow(e));
      const keep = Number(events.filter.get('limit')) || 20;
      while (body.rows.length > keep) {
        events.shown.delete(body.rows[body.rows.length - 1].dataset.id);
        body.deleteRow(-1);
      }
      loadVolume();
    }
    text('follow-status', 'Following new events (newest arrival first) · ' + new Date().toISOString().slice(11, 19) + ' UTC');
  }
}

/** (Re)starts following from the page just shown, if "Follow new events" is on. */
function restartFollow() {
  follow.on = $('f-follow').checked;
  follow.seq += 1;
  if (!follow.on) {
    text('follow-status', '');
    return;
  }
  if (events.page !== 0) {
    events.page = 0;
    loadEvents().then(restartFollow);
    return;
  }
  follow.cursor = events.tail || '0-0';
  text('follow-status', 'Following new events (newest arrival first)…');
  followLoop(follow.seq);
}

$('f-follow').addEventListener('change', restartFollow);
$('older').addEventListener('click', () => {
  // Paging back stops following (it would prepend to an older page).
  if (follow.on) {
    $('f-follow').checked = false;
    restartFollow();
  }
});

/** Opens an event's whole JSON, pretty-printed, with a copy button. */
function openDetail(id) {
  const e = events.shown.get(String(id));
  if (!e) return;
  text('detail-id', e.event_id);
  text('detail-json', JSON.stringify(e, null, 2));
  text('detail-note', '');
  $('detail').showModal();
}

$('events').tBodies[0].addEventListener('click', (e) => {
  const row = e.target.closest('tr[data-id]');
  if (row) openDetail(row.dataset.id);
});
$('events').tBodies[0].addEventListener('keydown', (e) => {
  const row = e.target.closest('tr[data-id]');
  if (row && (e.key === 'Enter' || e.key === ' ')) {
    e.preventDefault();
    openDetail(row.dataset.id);
  }
});
$('detail-close').addEventListener('click', () => $('detail').close());
$('detail-copy').addEventListener('click', async () => {
  const json = $('detail-json').textContent;
  try {
    await navigator.clipboard.writeText(json);
    text('detail-note', 'Copied.');
  } catch (err) {
    // No clipboard permission: select the text so the user can copy it.
    const range = document.createRange();
    range.selectNodeContents($('detail-json'));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
    text('detail-note', 'Selected: press Ctrl+C to copy.');
  }
});

// Start: first load, then the periodic refresh (console.js), following if asked.
refresh().then(restartFollow);
setInterval(() => { if ($('live').checked && !document.hidden) refresh(); }, REFRESH_MS);
