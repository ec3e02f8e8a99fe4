// A small hand-written SVG line chart: time on x (the last `windowMs`), values on y from 0,
// one polyline per series (broken where samples are missing), a legend and an accessible
// description with the latest values.

import { h, svg } from './dom.js';

const PAD = { top: 12, right: 12, bottom: 24, left: 52 };
let chartCounter = 0;

const TICKS = 4;

/** 1, 2, 2.5, 5 × 10^n at or above `value` (a grid step). */
function niceCeil(value) {
  if (!(value > 0)) return 0.25;
  const exponent = Math.floor(Math.log10(value));
  const base = 10 ** exponent;
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * base) return step * base;
  }
  return 10 * base;
}

/**
 * `series`: `[{label, points: [{t, v}]}]` with `t` in ms and `v` a number or null (a gap).
 * Options: `windowMs` (x span ending at `now`), `gapMs` (a longer pause between samples
 * breaks the line), `format` (y values → text), `title`, `width`, `height`.
 */
export function lineChart({ series, windowMs = 5 * 60_000, now = Date.now(), gapMs = 6000, format = String, title = '', width = 560, height = 180 }) {
  const id = `chart-${++chartCounter}`;
  const innerW = width - PAD.left - PAD.right;
  const innerH = height - PAD.top - PAD.bottom;
  const start = now - windowMs;
  let max = 0;
  for (const s of series) {
    for (const p of s.points) if (p.t >= start && Number.isFinite(p.v) && p.v > max) max = p.v;
  }
  const step = niceCeil(max / TICKS);
  const top = step * TICKS;
  const x = (t) => PAD.left + ((t - start) / windowMs) * innerW;
  const y = (v) => PAD.top + innerH - (v / top) * innerH;

  const grid = [];
  for (let i = 0; i <= TICKS; i += 1) {
    const value = step * i;
    const yy = y(value);
    grid.push(svg('line', { class: 'chart-grid', x1: PAD.left, x2: PAD.left + innerW, y1: yy, y2: yy }));
    grid.push(svg('text', { class: 'chart-tick', x: PAD.left - 6, y: yy + 4, 'text-anchor': 'end' }, format(value)));
  }
  const minutes = Math.round(windowMs / 60_000);
  const every = minutes > 6 ? Math.ceil(minutes / 5) : 1;
  for (let m = 0; m <= minutes; m += every) {
    const xx = x(now - m * 60_000);
    grid.push(svg('text', { class: 'chart-tick', x: xx, y: height - 6, 'text-anchor': m === 0 ? 'end' : 'middle' }, m === 0 ? 'now' : `−${m} min`));
  }

  const lines = series.map((s, index) => {
    let d = '';
    let previous = null;
    let last = null;
    for (const p of s.points) {
      if (p.t < start || !Number.isFinite(p.v)) {
        previous = null;
        continue;
      }
      const command = previous && p.t - previous.t <= gapMs ? 'L' : 'M';
      d += `${command}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
      previous = p;
      last = p;
    }
    return svg(
      'g',
      { class: `chart-series series-${index}` },
      d ? svg('path', { d, class: 'chart-line' }) : null,
      last ? svg('circle', { cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 3, class: 'chart-dot' }) : null,
    );
  });

  const latest = series.map((s) => {
    const last = [...s.points].reverse().find((p) => Number.isFinite(p.v));
    return `${s.label}: ${last ? format(last.v) : 'no data'}`;
  });
  const chart = svg(
    'svg',
    { class: 'chart', viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-labelledby': `${id}-t ${id}-d`, preserveAspectRatio: 'xMidYMid meet' },
    svg('title', { id: `${id}-t` }, title),
    svg('desc', { id: `${id}-d` }, `Last ${minutes} minutes. Latest: ${latest.join(', ')}.`),
    svg('rect', { class: 'chart-bg', x: PAD.left, y: PAD.top, width: innerW, height: innerH }),
    grid,
    lines,
  );
  const legend = h(
    'ul',
    { class: 'chart-legend' },
    series.map((s, index) => h('li', { class: `series-${index}` }, h('span', { class: 'swatch', 'aria-hidden': 'true' }), latest[index])),
  );
  return h('figure', { class: 'chart-figure' }, title ? h('figcaption', null, title) : null, chart, legend);
}
