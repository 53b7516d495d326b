// Numbers, rates, sizes and times as people read them.

const integer = new Intl.NumberFormat('en-US');
const decimal = new Intl.NumberFormat('en-US', { maximumFractionDigits: 1 });

export function num(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return '–';
  return integer.format(value);
}

export function rate(value) {
  if (value === undefined || value === null) return '–';
  if (value === 0) return '0/s';
  if (Math.abs(value) >= 1000) return `${compact(value)}/s`;
  return `${decimal.format(value)}/s`;
}

export function compact(value) {
  const abs = Math.abs(value);
  if (abs >= 1e9) return `${decimal.format(value / 1e9)}G`;
  if (abs >= 1e6) return `${decimal.format(value / 1e6)}M`;
  if (abs >= 1e4) return `${decimal.format(value / 1e3)}k`;
  return decimal.format(value);
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(value) {
  if (value === undefined || value === null) return '–';
  let v = value;
  let unit = 0;
  while (Math.abs(v) >= 1024 && unit < UNITS.length - 1) {
    v /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? v : decimal.format(v)} ${UNITS[unit]}`;
}

export function byteRate(value) {
  return value === undefined || value === null ? '–' : `${bytes(value)}/s`;
}

export function duration(ms) {
  if (ms === undefined || ms === null) return '–';
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s % 60}s`;
  return `${s}s`;
}

export function clock(ms) {
  return new Date(ms).toLocaleTimeString('en-GB', { hour12: false });
}

export function dateTime(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(ms)}`;
}

/** The rate in a RabbitMQ ``<name>_details`` object, or undefined. */
export function rateOf(stats, name) {
  return stats?.[`${name}_details`]?.rate;
}

/** An AMQP field value for display. */
export function fieldValue(value) {
  if (value === null || value === undefined) return '';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}
