// Drives Debian's chromium (headless, through playwright-core) against a live edge-host serving
// the real edgelog.wasm, and asserts what a user of the web console sees after events were
// published over HTTP. Run by tests/console.rs; by hand:
//   node tests/console/console.spec.mjs --url http://127.0.0.1:3000 [--auth-url URL --tokens publish,read,admin]
//     [--dead-lettered N] [--screenshot out.png]
// --url is a fresh service (access control off) into which N events were dead-lettered by the
// caller; --auth-url (optional) is a fresh service with the three token groups set.
// Exits non-zero on the first failed check; it skips nothing.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    'auth-url': { type: 'string' },
    tokens: { type: 'string' },
    'dead-lettered': { type: 'string', default: '0' },
    screenshot: { type: 'string' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
assert.ok(args.url, '--url is required');
const DEAD = Number(args['dead-lettered']);

let checks = 0;
function ok(what) {
  checks += 1;
  console.log('ok ' + checks + ' - ' + what);
}

/** Polls `probe` until it returns a truthy value; fails with `what` and the last value after `ms`. */
async function until(what, probe, ms = 20000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e.message;
    }
    if (Date.now() > deadline) assert.fail(what + ' (last seen: ' + JSON.stringify(last) + ')');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function publish(base, events, token) {
  const headers = { 'content-type': 'application/json' };
  if (token) headers.authorization = 'Bearer ' + token;
  const res = await fetch(new URL('publish/batch', base), { method: 'POST', headers, body: JSON.stringify({ events }) });
  const body = await res.json();
  assert.equal(res.status, 200, 'publish answered ' + res.status + ' ' + JSON.stringify(body));
  return body;
}

const ev = (topic, id, minute, source = 'checkout') => ({
  topic, event_id: id, source,
  timestamp: '2026-11-23T10:' + String(minute).padStart(2, '0') + ':00Z',
  payload: { n: minute, note: '<b>not html</b>' },
});

const text = (page, sel) => page.locator(sel).textContent().then((t) => t.trim());
const count = (page, sel) => text(page, sel).then((t) => Number(t.replace(/,/g, '')));
const eventIds = (page) => page.locator('#events tbody tr[data-event-id]').evaluateAll((rows) => rows.map((r) => r.dataset.eventId));
const sorted = (a) => [...a].sort();

/** Waits until the number shown in `sel` is `n`; on failure says what was shown. */
async function untilCount(page, sel, n, what) {
  let shown;
  await until(what + ': ' + sel + ' = ' + n, async () => (shown = await text(page, sel)).replace(/,/g, '') === String(n))
    .catch((e) => assert.fail(e.message + ', shown: ' + shown));
}

async function showEvents(page, { topic = '', since = '', until: to = '', limit = '20', q = '', level = '' } = {}) {
  await page.getByLabel('Search', { exact: true }).fill(q);
  await page.locator('#f-level').selectOption({ value: level });
  await page.getByLabel('Topic', { exact: true }).fill(topic);
  await page.getByLabel('From (UTC)').fill(since);
  await page.getByLabel('Until (UTC)').fill(to);
  await page.getByLabel('Per page').fill(limit);
  await page.getByRole('button', { name: 'Show' }).click();
}

async function openService(context) {
  const base = new URL(args.url.replace(/\/?$/, '/'));
  // 12 orders at 10:00..10:11, 3 audit events, then two resends: 17 received, 15 stored, 2 duplicates.
  const orders = Array.from({ length: 12 }, (_, i) => ev('orders', 'ord-' + String(i + 1).padStart(2, '0'), i));
  const audit = [1, 2, 3].map((i) => ev('audit', 'aud-' + i, 30 + i, 'iam'));
  assert.deepEqual(await publish(base, [...orders, ...audit]).then((b) => [b.processed, b.duplicates]), [15, 0]);
  assert.deepEqual(await publish(base, orders.slice(0, 2)).then((b) => [b.processed, b.duplicates]), [0, 2]);
  ok('published 17 events over HTTP (15 new, 2 resent)');

  // Non-browser clients keep the JSON summary at the same URL.
  for (const accept of ['application/json', '*/*']) {
    const summary = await fetch(base, { headers: { accept } }).then((r) => r.json());
    assert.equal(summary.service, 'Log Aggregator');
    assert.equal(summary.status, 'running');
  }
  ok('GET / with Accept: application/json or */* is the JSON summary');

  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => { if (m.type() === 'error') problems.push('console error: ' + m.text()); });
  const res = await page.goto(base.href);
  assert.match(res.headers()['content-type'], /^text\/html/);
  assert.equal(await page.title(), 'edgelog console');
  ok('a browser at / gets the console page');

  await untilCount(page, '#c-received', 17 + DEAD, 'received = 17 published + dead-lettered');
  assert.equal(await count(page, '#c-stored'), 15);
  assert.equal(await count(page, '#c-duplicates'), 2);
  assert.equal(await count(page, '#c-queued'), 0);
  assert.equal(await count(page, '#c-dead'), DEAD);
  assert.match(await text(page, '#health'), /^healthy/);
  ok('counters: received ' + (17 + DEAD) + ', stored 15, duplicates 2, queued 0, dead-lettered ' + DEAD);

  const row = async (topic) => page.locator(`#topics tbody tr[data-topic="${topic}"] td`).allTextContents();
  await until('topic rows', async () => (await row('orders')).length && (await row('audit')).length);
  assert.deepEqual((await row('orders')).slice(0, 4), ['orders', '14', '12', '2']);
  assert.deepEqual((await row('audit')).slice(0, 4), ['audit', '3', '3', '0']);
  assert.equal((await row('audit'))[5], '2026-11-23 10:33:00');
  ok('topic table: orders 14/12/2, audit 3/3/0 with its last event time');

  await untilCount(page, '#dl-pending', DEAD ? 1 : 0, 'dead letters pending');
  assert.equal(await page.locator('#dead-letters tbody tr').count(), DEAD ? 1 : 0);
  ok('queue 0 and ' + (DEAD ? 1 : 0) + ' dead letter(s) listed');

  const all = [...orders, ...audit].map((e) => e.event_id);
  await until('all published events listed', async () => (await eventIds(page)).length === 15);
  assert.deepEqual(sorted(await eventIds(page)), sorted(all));
  assert.equal(await page.locator('#events tbody code').first().textContent().then((t) => t.includes('<b>not html</b>')), true);
  assert.equal(await page.locator('#events tbody b').count(), 0, 'payload text must not become markup');
  ok('latest events list every published event id; payloads shown as text');

  await showEvents(page, { topic: 'audit' });
  await until('topic filter narrows to audit', async () => JSON.stringify(sorted(await eventIds(page))) === JSON.stringify(['aud-1', 'aud-2', 'aud-3']));
  ok('topic filter shows only that topic');

  await showEvents(page, { topic: 'orders', since: '2026-11-23T10:03:00', until: '2026-11-23T10:06:00' });
  await until('time range narrows to 10:03 <= t < 10:06', async () => JSON.stringify(sorted(await eventIds(page))) === JSON.stringify(['ord-04', 'ord-05', 'ord-06']));
  ok('time range (since inclusive, until exclusive) narrows the list');

  // Cursor paging: 15 events, 4 per page = 4 pages (4, 4, 4, 3), each shown once, then Older is off.
  await page.getByLabel('Live refresh').uncheck();
  await showEvents(page, { limit: '4' });
  const seen = [];
  for (let p = 1; p <= 4; p++) {
    await until('page ' + p, async () => (await text(page, '#page')) === 'page ' + p && (await eventIds(page)).length === (p < 4 ? 4 : 3));
    seen.push(...(await eventIds(page)));
    if (p < 4) await page.getByRole('button', { name: 'Older' }).click();
  }
  assert.equal(await page.getByRole('button', { name: 'Older' }).isDisabled(), true);
  assert.deepEqual(sorted(seen), sorted(all), 'every event once across the pages');
  await page.getByRole('button', { name: 'Newest' }).click();
  await until('back on page 1', async () => (await text(page, '#page')) === 'page 1' && (await eventIds(page))[0] === seen[0]);
  ok('cursor paging walks 4 pages with each event exactly once, and back to the newest');

  // Live refresh: counters and the sparkline follow new traffic without a reload.
  await page.getByLabel('Live refresh').check();
  await showEvents(page, { limit: '10' });
  // Three waves of traffic, each waited for on screen, so the sparkline has several points.
  let sent = 0;
  for (const wave of [4, 9, 2]) {
    await publish(base, Array.from({ length: wave }, (_, i) => ev('payments', 'pay-' + (sent + i), sent + i, 'billing')));
    sent += wave;
    await untilCount(page, '#c-received', 17 + sent + DEAD, 'received follows new events');
  }
  await until('payments topic appears', async () => (await row('payments'))[1] === String(sent));
  await until('sparkline drawn', async () => (await page.locator('#spark polyline').getAttribute('points')).split(' ').length >= 3);
  assert.match(await text(page, '#rate'), /^Rate: [\d.,]+ events\/s now, peak [\d.,]+ events\/s/);
  ok('live refresh: counters, topics and the rate sparkline update');

  // Records from log shippers (OTLP, Loki push) read as log lines: severity, message, attributes.
  const otlp = {
    resourceLogs: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'checkout-api' } }] },
      scopeLogs: [{
        scope: { name: 'http' },
        logRecords: [{
          timeUnixNano: '1795428000000000000', severityNumber: 17, severityText: 'ERROR',
          body: { stringValue: 'payment <b>declined</b>' },
          attributes: [{ key: 'order.id', value: { stringValue: 'ord-7' } }],
        }],
      }],
    }],
  };
  const post = (path, body) => fetch(new URL(path, base), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal((await post('v1/logs', otlp)).status, 200);
  const loki = { streams: [{ stream: { service_name: 'checkout-api', level: 'warn' }, values: [['1795428060000000000', 'retrying payment']] }] };
  assert.equal((await post('loki/api/v1/push', loki)).status, 204);
  await showEvents(page, { topic: 'checkout-api' });
  const logCells = () => page.locator('#events tbody td.log').evaluateAll((tds) => tds
    .map((td) => [td.querySelector('.sev')?.textContent, td.querySelector('.message')?.textContent, td.querySelector('.attrs')?.textContent ?? ''])
    .sort((a, b) => a[1].localeCompare(b[1])));
  await until('log records shown as log lines', async () => (await logCells()).length === 2);
  assert.deepEqual(await logCells(), [['ERROR', 'payment <b>declined</b>', 'order.id=ord-7'], ['warn', 'retrying payment', '']]);
  assert.equal(await page.locator('#events tbody b').count(), 0, 'log text must not become markup');
  ok('OTLP and Loki records show severity, message and attributes, not a wall of JSON');
  await exploreEvents(page, base);

  if (args.screenshot) {
    mkdirSync(dirname(args.screenshot), { recursive: true });
    await page.screenshot({ path: args.screenshot, fullPage: true });
    ok('screenshot saved to ' + args.screenshot);
  }
  assert.deepEqual(problems, [], 'no script errors or CSP violations');
  ok('no script errors or CSP violations');
  await page.close();
}

/** Search, level colours, the volume chart (drag to select), an event's JSON, following live. */
async function exploreEvents(page, base) {
  const at = (minute) => '2026-11-23T10:' + String(minute).padStart(2, '0') + ':00Z';
  const checkout = [
    { level: 'error', message: 'payment failed: ERR_CONN_RESET on req-7f3a9c', minute: 40 },
    { level: 'WARNING', message: 'gateway slow, retry ok', minute: 41 },
    { level: 'info', message: 'order placed', minute: 42 },
    { level: 'fatal', message: 'checkout down: db timeout', minute: 47 },
    { level: 'debug', message: 'cart loaded', minute: 47 },
  ].map((c, i) => ({ topic: 'checkout', event_id: 'co-' + i, source: 'web', level: c.level, timestamp: at(c.minute), payload: { message: c.message, note: '<i>text</i>' } }));
  await publish(base, checkout);

  await showEvents(page, { q: 'conn_reset' });
  await until('search finds the identifier substring', async () => JSON.stringify(await eventIds(page)) === '["co-0"]');
  assert.equal(await text(page, '#events tbody tr[data-event-id="co-0"] .badge'), 'error');
  assert.match(await page.locator('#events tbody .badge').first().getAttribute('class'), /lv-error/);
  await showEvents(page, { topic: 'checkout', q: 'checkout -"db timeout"' });
  await until('an excluded phrase', async () => (await eventIds(page)).length === 0);
  ok('search: an identifier substring finds its event (level badge "error"); an excluded phrase removes the rest');

  await showEvents(page, { topic: 'checkout', level: 'warn' });
  await until('warn and above, newest event time first', async () => JSON.stringify(await eventIds(page)) === '["co-3","co-1","co-0"]');
  ok('level filter "warn and above" lists fatal, warn, error in event-time order');

  await showEvents(page, { since: '2026-11-23T10:00:00', until: '2026-11-23T11:00:00', limit: '50' });
  await until('one bar per minute', async () => (await page.locator('#volume .bars > g').count()) === 60);
  await until('stacked level colours', async () => (await page.locator('#volume rect.lv-fatal').count()) === 1 && (await page.locator('#volume rect.lv-none').count()) > 0);
  assert.match(await text(page, '#volume-caption'), /^[\d,]+ event\(s\) in this range, 1 min per bar/);
  ok('volume chart: 60 one-minute bars, stacked by level colour');

  // Drag across the bars of 10:40 .. 10:42: the time range follows, and so does the list.
  const box = await page.locator('#volume').boundingBox();
  const x = (i) => box.x + ((i + 0.5) / 60) * box.width;
  await page.mouse.move(x(40), box.y + box.height / 2);
  await page.mouse.down();
  await page.mouse.move(x(41), box.y + box.height / 2, { steps: 4 });
  await page.mouse.move(x(42), box.y + box.height / 2, { steps: 4 });
  await page.mouse.up();
  // (Chromium shows a whole minute without its seconds.)
  const range = async () => [await page.getByLabel('From (UTC)').inputValue(), await page.getByLabel('Until (UTC)').inputValue()].map((v) => v.slice(0, 16)).join(' ');
  await until('range from the drag', async () => (await range()) === '2026-11-23T10:40 2026-11-23T10:43');
  await until('list narrowed to the dragged range', async () => JSON.stringify(await eventIds(page)) === '["co-2","co-1","co-0"]');
  ok('dragging across 10:40-10:42 sets the range to 10:40-10:43 and narrows the list');

  await page.locator('#events tbody tr[data-event-id="co-1"]').click();
  await until('detail open', () => page.locator('#detail').isVisible());
  const shown = JSON.parse(await text(page, '#detail-json'));
  assert.equal(shown.event_id, 'co-1');
  assert.equal(shown.level, 'warn');
  assert.deepEqual(shown.payload, { message: 'gateway slow, retry ok', note: '<i>text</i>' });
  assert.match(await page.locator('#detail-json').textContent(), /\n {2}"event_id": "co-1",\n/);
  assert.equal(await page.locator('#detail i').count(), 0, 'payload text must not become markup');
  await page.getByRole('button', { name: 'Copy JSON' }).click();
  await until('copied or selected', async () => /Copied|Selected/.test(await text(page, '#detail-note')));
  await page.getByRole('button', { name: 'Close' }).click();
  await until('detail closed', async () => !(await page.locator('#detail').isVisible()));
  ok('a click on an event opens its whole JSON, pretty and copyable, as text');

  await showEvents(page, { topic: 'checkout', limit: '10' });
  await until('checkout listed', async () => (await eventIds(page)).length === 5);
  await page.getByLabel('Follow new events').check();
  await until('following', async () => /Following/.test(await text(page, '#follow-status')));
  await publish(base, [{ topic: 'elsewhere', event_id: 'x-1', source: 'web', timestamp: at(50) },
    { topic: 'checkout', event_id: 'co-live', source: 'web', level: 'error', timestamp: at(44), payload: { message: 'live one' } }]);
  await until('a new event arrives on top without reloading', async () => (await eventIds(page))[0] === 'co-live');
  assert.equal((await eventIds(page)).includes('x-1'), false, 'the filter applies to the tail');
  ok('follow mode shows a newly published event on top (and only what the filter matches)');
  await showEvents(page, { since: '2026-11-23T10:00:00', until: '2026-11-23T11:00:00', limit: '12' });
  await page.getByLabel('Follow new events').uncheck();
  await until('volume for the screenshot', async () => (await page.locator('#volume rect.lv-error').count()) >= 1);
}

async function authService(context) {
  const base = new URL(args['auth-url'].replace(/\/?$/, '/'));
  const [publishToken, readToken, adminToken] = (args.tokens || '').split(',');
  assert.ok(publishToken && readToken && adminToken, '--tokens publish,read,admin');
  await publish(base, [ev('secure', 'sec-1', 1), ev('secure', 'sec-2', 2)], publishToken);

  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  await page.goto(base.href);
  await until('token form shown', () => page.locator('#token-form').isVisible());
  assert.match(await text(page, '#token-reason'), /requires an access token/);
  assert.equal(await text(page, '#c-received'), '–');
  ok('with access control on, the console asks for a token and shows no counters');

  await page.getByLabel('Access token (read or admin)').fill('wrong-token');
  await page.getByRole('button', { name: 'Use token' }).click();
  await until('wrong token rejected', async () => (await page.locator('#token-form').isVisible()) && /not accepted/.test(await text(page, '#token-reason')));
  ok('an unknown token is refused and the form asks again');

  await page.getByLabel('Access token (read or admin)').fill(readToken);
  await page.getByRole('button', { name: 'Use token' }).click();
  await untilCount(page, '#c-received', 2, 'counters with the read token');
  assert.equal(await page.locator('#token-form').isVisible(), false);
  assert.deepEqual(sorted(await until('events listed', async () => { const ids = await eventIds(page); return ids.length === 2 && ids; })), ['sec-1', 'sec-2']);
  await until('dead letters need admin', async () => /needs an admin token/.test(await text(page, '#dl-note')));
  assert.equal(await page.evaluate(() => sessionStorage.getItem('edgelog-token')), readToken);
  ok('a read token shows counters and events (kept in sessionStorage); dead letters ask for admin');

  await page.getByRole('button', { name: 'Enter an admin token' }).click();
  await page.getByLabel('Access token (read or admin)').fill(adminToken);
  await page.getByRole('button', { name: 'Use token' }).click();
  await until('dead letters with the admin token', async () => (await text(page, '#dl-note')) === 'No dead letters.');
  assert.equal(await count(page, '#c-stored'), 2);
  await page.reload();
  await untilCount(page, '#c-received', 2, 'token survives a reload');
  ok('an admin token lists dead letters and also reads; it survives a reload');
  assert.deepEqual(problems, []);
  await page.close();
}

// A fresh profile per run; playwright takes it as userDataDir (it refuses a --user-data-dir flag).
const profile = mkdtempSync(join(tmpdir(), 'edgelog-chromium-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timezoneId: 'UTC',
    locale: 'en-US',
  });
  await openService(context);
  if (args['auth-url']) await authService(context);
  console.log(checks + ' passed, 0 failed');
} catch (e) {
  console.error('not ok ' + (checks + 1) + ' - ' + (e.stack || e));
  process.exitCode = 1;
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
}
