// Prometheus text format (0.0.4) as served by `GET /metrics`: a parser, and sums over the
// samples of one metric whose labels match.

const SAMPLE = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$/;
const LABEL = /([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?\s*/gy;

function unescapeLabel(value) {
  return value.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
}

function parseValue(text) {
  if (text === 'NaN') return NaN;
  if (text === '+Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  const value = Number(text);
  return Number.isNaN(value) ? NaN : value;
}

/** `[{name, labels: {…}, value}]` of every sample line; comments and bad lines are skipped. */
export function parsePrometheus(text) {
  const samples = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const [, name, labelText, valueText] = match;
    const labels = {};
    if (labelText) {
      LABEL.lastIndex = 0;
      let label;
      while (LABEL.lastIndex < labelText.length && (label = LABEL.exec(labelText))) {
        labels[label[1]] = unescapeLabel(label[2]);
      }
    }
    samples.push({ name, labels, value: parseValue(valueText) });
  }
  return samples;
}

/** A parsed scrape with lookups. */
export class Scrape {
  constructor(text, at = Date.now()) {
    this.at = at;
    this.samples = parsePrometheus(text);
  }

  /** Samples of `name` whose labels include every pair of `match`. */
  select(name, match = {}) {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }

  /** Sum of the matching samples (NaN ones skipped); null when there is none. */
  sum(name, match = {}) {
    const found = this.select(name, match).filter((s) => !Number.isNaN(s.value));
    return found.length ? found.reduce((total, s) => total + s.value, 0) : null;
  }

  /** The one value of a series (NaN when the series says NaN), or null when absent. */
  value(name, match = {}) {
    const found = this.select(name, match);
    return found.length ? found[0].value : null;
  }

  /** `{labelValue: sum}` of `name` grouped by `label`, in first-seen order. */
  by(name, label, match = {}) {
    const groups = new Map();
    for (const s of this.select(name, match)) {
      if (Number.isNaN(s.value)) continue;
      const key = s.labels[label];
      groups.set(key, (groups.get(key) || 0) + s.value);
    }
    return groups;
  }
}

/** Per-second rate of a counter between two scrapes, or null. */
export function rate(previous, current, name, match = {}) {
  if (!previous || !current) return null;
  const a = previous.sum(name, match);
  const b = current.sum(name, match);
  const seconds = (current.at - previous.at) / 1000;
  if (a === null || b === null || seconds <= 0) return null;
  // A restart resets counters: no rate across it.
  return b >= a ? (b - a) / seconds : null;
}
