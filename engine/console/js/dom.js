// Safe element building. Every string given here ends up as a text node or an attribute
// value, never as markup: there is no innerHTML anywhere in the console.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Appends children: strings and numbers become text nodes; null, undefined and false are skipped. */
function append(parent, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(parent, child);
    else if (child instanceof Node) parent.appendChild(child);
    else parent.appendChild(document.createTextNode(String(child)));
  }
}

/**
 * Sets properties on an element:
 * - `class`: a string or an array (falsy entries dropped);
 * - `testid`: `data-testid`;
 * - `on`: `{event: handler}` listeners;
 * - `dataset`: `{key: value}` data attributes;
 * - `value`, `checked`, `disabled`, `selected`, `hidden`, `open`: DOM properties;
 * - anything else: an attribute (skipped when null, undefined or false; `true` gives "").
 * `style` and `on…` attributes are refused: the page runs under a strict CSP.
 */
function applyProps(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') {
      const names = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
      if (names) el.setAttribute('class', names);
    } else if (key === 'testid') {
      el.dataset.testid = value;
    } else if (key === 'on') {
      for (const [event, handler] of Object.entries(value)) el.addEventListener(event, handler);
    } else if (key === 'dataset') {
      for (const [name, data] of Object.entries(value)) el.dataset[name] = data;
    } else if (['value', 'checked', 'disabled', 'selected', 'hidden', 'open'].includes(key)) {
      el[key] = value;
    } else if (key === 'style' || key.startsWith('on')) {
      throw new Error(`dom: '${key}' is not allowed; use CSS classes and 'on' listeners`);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** `h('a', {href: '#/x', class: 'link'}, 'text', child)` */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  applyProps(el, props);
  append(el, children);
  return el;
}

/** The same for SVG elements (attributes only). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'style' || key.startsWith('on')) throw new Error(`dom: '${key}' is not allowed`);
    if (key === 'class') el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Removes every child of `el`. */
export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** Parses IoTDA times: T1 `20151212T121212Z` and T2 `2015-12-12T12:12:12.000Z` (both UTC). */
export function parseTime(text) {
  if (typeof text !== 'string' || !text) return null;
  const t1 = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (t1) {
    const [, y, mo, d, hh, mm, ss] = t1.map(Number);
    return new Date(Date.UTC(y, mo - 1, d, hh, mm, ss));
  }
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** A local-time rendering of an IoTDA time, or '—'. */
export function formatTime(text) {
  const date = parseTime(text);
  return date ? date.toLocaleString() : text || '—';
}

/** A `<time>` element in local time, with the raw UTC value as its tooltip. */
export function timeEl(text) {
  const date = parseTime(text);
  if (!date) return h('span', { class: 'muted' }, text || '—');
  return h('time', { datetime: date.toISOString(), title: `${text} (UTC)` }, date.toLocaleString());
}

/** Pretty JSON text (for `<pre>` blocks, rendered as text). */
export function json(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** A short one-line JSON rendering, cut at `max` characters. */
export function shortJson(value, max = 80) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  if (text === undefined) return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** Status → badge colour class. */
const STATUS_TONES = {
  ONLINE: 'ok', DELIVERED: 'ok', Success: 'ok', success: 'ok',
  OFFLINE: 'muted', INACTIVE: 'muted', Waitting: 'muted', Initializing: 'muted',
  PENDING: 'info', Processing: 'info', Stopping: 'info', ACCEPTED: 'info',
  FROZEN: 'warn', PartialSuccess: 'warn', Stopped: 'warn', TIMEOUT: 'warn', ABNORMAL: 'warn',
  FAILED: 'bad', Fail: 'bad', failure: 'bad',
};

/** A coloured status label; the status itself is the text. */
export function badge(status, props = {}) {
  const tone = Object.hasOwn(STATUS_TONES, status) ? STATUS_TONES[status] : 'muted';
  return h('span', { ...props, class: ['badge', `badge-${tone}`, props.class] }, status || '—');
}

/** A `<dl>` of label/value pairs; values may be nodes or strings. */
export function defList(pairs) {
  const dl = h('dl', { class: 'deflist' });
  for (const [label, value] of pairs) {
    if (value === undefined) continue;
    dl.append(h('dt', null, label), h('dd', null, value === null || value === '' ? '—' : value));
  }
  return dl;
}

/** Builds a `#/…` link; path segments are URI-encoded. */
export function hashLink(segments, query) {
  const path = segments.map((s) => encodeURIComponent(s)).join('/');
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') params.set(key, value);
  }
  const search = params.toString();
  return `#/${path}${search ? `?${search}` : ''}`;
}

/** A table with a header row; `rows` are arrays of cells or `<tr>` elements. */
export function table(headers, rows, props = {}) {
  const thead = h('thead', null, h('tr', null, headers.map((title) => h('th', { scope: 'col' }, title))));
  const tbody = h('tbody', null, rows.map((row) => (row instanceof Node ? row : h('tr', null, row.map((cell) => h('td', null, cell))))));
  return h('div', { class: 'table-wrap' }, h('table', { ...props, class: ['table', props.class] }, thead, tbody));
}

/** Copies text to the clipboard; resolves to whether it worked. */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}
