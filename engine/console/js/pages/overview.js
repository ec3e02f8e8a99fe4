// Overview: live figures from `GET /metrics` (polled every 2 s) and this project's counts
// from the API. Rates are computed between consecutive scrapes; the history of the last
// minutes lives in this module, so it survives a visit to another page.

import { h, replace } from '../dom.js';
import { api, fetchMetricsText } from '../api.js';
import { Scrape, rate } from '../metrics.js';
import { lineChart } from '../chart.js';
import { pageHeader, errorBox, messageArea } from '../ui.js';

const POLL_MS = 2000;
const WINDOW_MS = 5 * 60_000;
const OUTCOMES = ['ok', 'timeout', 'offline', 'invalid', 'unknown', 'busy', 'cancelled', 'unavailable'];
const MESSAGE_STATUSES = ['accepted', 'pending', 'delivered', 'failed', 'timeout', 'evicted'];

/** `{t, calls, failed, p50, p99, mean, pushFailures}` per scrape, the last WINDOW_MS. */
const history = [];
let lastScrape = null;

function ms(seconds) {
  return Number.isFinite(seconds) ? seconds * 1000 : null;
}

function formatMs(value) {
  if (!Number.isFinite(value)) return '—';
  if (value >= 100) return `${Math.round(value)} ms`;
  if (value >= 1) return `${value.toFixed(1)} ms`;
  return `${value.toFixed(2)} ms`;
}

function formatRate(value) {
  if (!Number.isFinite(value)) return '—';
  if (value === 0) return '0';
  return value >= 10 ? value.toFixed(0) : value.toFixed(value >= 1 ? 1 : 2);
}

function count(value) {
  return value === null || value === undefined || Number.isNaN(value) ? '—' : Math.round(value).toLocaleString();
}

/** Adds a scrape to the history (rates against the previous one). */
function record(scrape) {
  // Rates only between consecutive polls: after a pause (another page, a hidden tab) the
  // first scrape starts the line again instead of drawing an average over the pause.
  const previous = lastScrape && scrape.at - lastScrape.at <= POLL_MS * 3 ? lastScrape : null;
  lastScrape = scrape;
  const command = { kind: 'command' };
  const all = rate(previous, scrape, 'ringiot_device_calls_total', command);
  const ok = rate(previous, scrape, 'ringiot_device_calls_total', { kind: 'command', outcome: 'ok' });
  // Mean round trip of the calls answered since the previous scrape.
  let mean = null;
  if (previous) {
    const sum = scrape.sum('ringiot_device_call_round_trip_seconds_sum', command) - previous.sum('ringiot_device_call_round_trip_seconds_sum', command);
    const n = scrape.sum('ringiot_device_call_round_trip_seconds_count', command) - previous.sum('ringiot_device_call_round_trip_seconds_count', command);
    if (n > 0 && sum >= 0) mean = (sum / n) * 1000;
  }
  history.push({
    t: scrape.at,
    calls: all,
    failed: all === null || ok === null ? null : Math.max(0, all - ok),
    // Percentiles of the last one to two minutes (each shard's current and previous minute).
    p50: ms(scrape.value('ringiot_device_call_round_trip_recent_seconds', { kind: 'command', quantile: '0.5' })),
    p99: ms(scrape.value('ringiot_device_call_round_trip_recent_seconds', { kind: 'command', quantile: '0.99' })),
    mean,
    pushFailures: rate(previous, scrape, 'ringiot_push_failed_attempts_total'),
    pushSent: rate(previous, scrape, 'ringiot_push_sent_total'),
  });
  while (history.length && history[0].t < scrape.at - WINDOW_MS) history.shift();
}

function card(label, value, detail, props = {}) {
  return h('div', { ...props, class: ['card', 'stat', props.class] }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value), detail ? h('div', { class: 'stat-detail' }, detail) : null);
}

function points(key) {
  return history.map((s) => ({ t: s.t, v: s[key] }));
}

/** Recent push health: failing when attempts failed within the last 30 s and none was sent. */
function pushHealth() {
  const recent = history.filter((s) => s.t >= Date.now() - 30_000);
  const failures = recent.reduce((n, s) => n + (s.pushFailures || 0), 0);
  const sent = recent.reduce((n, s) => n + (s.pushSent || 0), 0);
  if (failures > 0 && sent === 0) return ['FAILING', 'bad'];
  if (failures > 0) return ['RETRYING', 'warn'];
  return ['OK', 'ok'];
}

function renderMetrics(scrape, parts) {
  const devices = scrape.sum('ringiot_devices');
  const online = scrape.sum('ringiot_devices_online');
  const latest = history[history.length - 1] || {};
  replace(
    parts.cards,
    card('Devices (all projects)', count(devices), `${count(online)} online`, { testid: 'overview-devices' }),
    card('MQTT connections', count(scrape.sum('ringiot_mqtt_connections')), `${count(scrape.sum('ringiot_mqtt_connections_waiting'))} waiting for CONNECT`),
    card('Command calls', `${formatRate(latest.calls)}/s`, `${count(scrape.sum('ringiot_device_calls_waiting'))} waiting for an answer`),
    card('Command round trip', formatMs(latest.p99), `p50 ${formatMs(latest.p50)} · p99, last 1–2 min`, { testid: 'overview-round-trip' }),
  );

  replace(
    parts.charts,
    lineChart({
      title: 'Command calls per second',
      series: [
        { label: 'all', points: points('calls') },
        { label: 'not ok', points: points('failed') },
      ],
      windowMs: WINDOW_MS,
      gapMs: POLL_MS * 3,
      format: formatRate,
    }),
    lineChart({
      title: 'Command round trip (ms)',
      series: [
        { label: 'p50', points: points('p50') },
        { label: 'p99', points: points('p99') },
        { label: 'mean of the last 2 s', points: points('mean') },
      ],
      windowMs: WINDOW_MS,
      gapMs: POLL_MS * 3,
      format: (v) => formatMs(v).replace(' ms', ''),
    }),
  );

  const outcomeRows = OUTCOMES.map((outcome) => {
    const match = { kind: 'command', outcome };
    const total = scrape.sum('ringiot_device_calls_total', match);
    const r = rate(parts.previous, scrape, 'ringiot_device_calls_total', match);
    return h('tr', null, h('th', { scope: 'row' }, outcome), h('td', { class: 'num' }, count(total)), h('td', { class: 'num' }, formatRate(r)));
  });
  replace(parts.outcomes, h('table', { class: 'table compact' }, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Outcome'), h('th', { scope: 'col', class: 'num' }, 'Total'), h('th', { scope: 'col', class: 'num' }, 'Per second'))), h('tbody', null, outcomeRows)));

  const byStatus = scrape.by('ringiot_messages_total', 'status');
  const maxMessages = Math.max(1, ...MESSAGE_STATUSES.map((s) => byStatus.get(s) || 0));
  replace(
    parts.messages,
    h(
      'ul',
      { class: 'bars' },
      MESSAGE_STATUSES.map((status) => {
        const value = byStatus.get(status) || 0;
        const bar = h('span', { class: ['bar-fill', `tone-${status}`] });
        bar.style.width = `${(value / maxMessages) * 100}%`;
        return h('li', { class: 'bar-row' }, h('span', { class: 'bar-label' }, status), h('span', { class: 'bar-track', 'aria-hidden': 'true' }, bar), h('span', { class: 'bar-value' }, count(value)));
      }),
    ),
    h('p', { class: 'muted' }, `${count(scrape.sum('ringiot_messages_kept'))} kept in device histories, ${count(scrape.sum('ringiot_messages_pending'))} cached for delivery.`),
  );

  const [health, tone] = pushHealth();
  replace(
    parts.pushes,
    h('p', null, 'Push delivery: ', h('span', { class: ['badge', `badge-${tone}`], testid: 'push-health' }, health)),
    h(
      'dl',
      { class: 'deflist' },
      h('dt', null, 'Sent'),
      h('dd', null, count(scrape.sum('ringiot_push_sent_total'))),
      h('dt', null, 'Failed attempts (retried)'),
      h('dd', null, `${count(scrape.sum('ringiot_push_failed_attempts_total'))} (${formatRate(latest.pushFailures)}/s now)`),
      h('dt', null, 'Dropped (outbox full)'),
      h('dd', null, count(scrape.sum('ringiot_push_dropped_total'))),
      h('dt', null, 'Queued'),
      h('dd', null, count(scrape.sum('ringiot_push_queued'))),
    ),
  );

  const uplink = scrape.by('ringiot_device_uplink_total', 'kind');
  replace(parts.uplink, h('dl', { class: 'deflist' }, [...uplink.entries()].flatMap(([kind, value]) => [h('dt', null, kind), h('dd', null, count(value))])));
  replace(parts.updated, `Updated ${new Date(scrape.at).toLocaleTimeString()} · every ${POLL_MS / 1000} s`);
}

export function render(ctx) {
  const parts = {
    updated: h('span', { class: 'muted', 'aria-live': 'off' }, 'Waiting for /metrics…'),
    cards: h('div', { class: 'cards' }),
    project: h('div', { class: 'cards' }),
    charts: h('div', { class: 'charts' }),
    outcomes: h('div'),
    messages: h('div'),
    pushes: h('div'),
    uplink: h('div'),
    previous: null,
  };
  const problems = messageArea();
  replace(
    ctx.root,
    pageHeader('Overview', { subtitle: parts.updated }),
    problems.el,
    h('section', { 'aria-label': 'This project' }, h('h2', null, 'This project'), parts.project),
    h('section', { 'aria-label': 'Engine' }, h('h2', null, 'Engine'), parts.cards, parts.charts),
    h(
      'div',
      { class: 'grid-2' },
      h('section', { class: 'panel' }, h('h2', null, 'Command outcomes'), parts.outcomes),
      h('section', { class: 'panel' }, h('h2', null, 'Messages by status'), parts.messages),
      h('section', { class: 'panel' }, h('h2', null, 'Push notifications'), parts.pushes),
      h('section', { class: 'panel' }, h('h2', null, 'Device uplink'), parts.uplink),
    ),
  );

  ctx.poll(
    async (run) => {
      const text = await fetchMetricsText(ctx.signal);
      if (run.stale) return;
      const scrape = new Scrape(text);
      parts.previous = lastScrape && scrape.at - lastScrape.at <= POLL_MS * 3 ? lastScrape : null;
      record(scrape);
      renderMetrics(scrape, parts);
      problems.clear();
    },
    POLL_MS,
    (error) => problems.error(error),
  );

  ctx.poll(
    async (run) => {
      const [devices, products] = await Promise.all([
        api.get('devices', { query: { limit: 1 }, signal: ctx.signal }),
        api.get('products', { query: { limit: 1 }, signal: ctx.signal }),
      ]);
      if (run.stale) return;
      replace(
        parts.project,
        card('Devices', h('a', { href: '#/devices' }, count(devices.page.count)), 'registered in this project', { testid: 'project-devices' }),
        card('Products', h('a', { href: '#/products' }, count(products.page.count)), 'product models'),
      );
    },
    10_000,
    (error) => replace(parts.project, errorBox(error)),
  );
}
