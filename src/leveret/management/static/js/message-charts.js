// The two charts the overview and a queue's page share: queued messages (ready, unacked,
// total) and message rates (publish, deliver/get, ack, redeliver), fed by history.js.

import { lineChart } from './chart.js';
import { num, rate } from './format.js';

export const RATE_SERIES = [
  { key: 'publish', label: 'Publish', color: 'var(--c-publish)' },
  { key: 'deliver', label: 'Deliver/get', color: 'var(--c-deliver)' },
  { key: 'ack', label: 'Ack', color: 'var(--c-ack)' },
  { key: 'redeliver', label: 'Redeliver', color: 'var(--c-redeliver)' },
];
export const DEPTH_SERIES = [
  { key: 'ready', label: 'Ready', color: 'var(--c-ready)' },
  { key: 'unacked', label: 'Unacked', color: 'var(--c-unacked)' },
  { key: 'total', label: 'Total', color: 'var(--c-total)' },
];

export function depthChart({ title = 'Queued messages', series = DEPTH_SERIES } = {}) {
  return lineChart({ title, series, format: (v) => num(Math.round(v)) });
}

export function rateChart({ title = 'Message rates' } = {}) {
  return lineChart({ title, series: RATE_SERIES, format: (v, axis) => (axis ? num(v) : rate(v)) });
}
