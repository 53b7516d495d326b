// Chart history for the overview and a queue's page. The UI asks the API for the last
// minute of samples as RabbitMQ's UI does (HISTORY_QUERY); when the answer carries
// ``samples`` (RabbitMQ 3.10's ``*_details.samples``) the charts draw them at once and
// merge them into what was kept; when it does not, a point is recorded at each refresh
// from the current values, as before. Points: {t, ready, unacked, total, publish, deliver,
// ack, redeliver}; a point may carry only the lengths or only the rates (RabbitMQ samples
// them at different instants).

export const HISTORY_QUERY = 'lengths_age=60&lengths_incr=5&msg_rates_age=60&msg_rates_incr=5';
const KEEP_MS = 10 * 60 * 1000;
const KEPT_QUEUES = 8; // queue histories kept in sessionStorage, the most recent ones

// chart key, API field
const LENGTHS = [['ready', 'messages_ready'], ['unacked', 'messages_unacknowledged'], ['total', 'messages']];
const RATES = [['publish', 'publish'], ['deliver', 'deliver_get'], ['ack', 'ack'], ['redeliver', 'redeliver']];

function samplesOf(details) {
  const samples = details?.samples;
  return Array.isArray(samples) ? samples.filter((s) => Number.isFinite(s?.timestamp) && Number.isFinite(s?.sample)) : [];
}

/**
 * Points from the API's samples: ``lengths`` holds messages_ready/_unacknowledged/messages
 * with their ``_details`` (an overview's queue_totals, or a queue), ``stats`` is a
 * message_stats whose counters' samples become rates. [] when the API sent no samples.
 */
export function samplePoints(lengths, stats) {
  const byTime = new Map();
  const at = (t) => {
    if (!byTime.has(t)) byTime.set(t, { t });
    return byTime.get(t);
  };
  for (const [key, field] of LENGTHS) {
    for (const s of samplesOf(lengths?.[`${field}_details`])) at(s.timestamp)[key] = s.sample;
  }
  const rateTimes = new Set();
  const missing = [];
  for (const [key, field] of RATES) {
    const samples = samplesOf(stats?.[`${field}_details`]).sort((a, b) => a.timestamp - b.timestamp);
    if (!samples.length) missing.push(key);
    for (let i = 1; i < samples.length; i += 1) {
      const dt = samples[i].timestamp - samples[i - 1].timestamp;
      if (dt <= 0) continue;
      // a counter's samples are totals: the rate is the increase over the interval
      at(samples[i].timestamp)[key] = Math.max(0, ((samples[i].sample - samples[i - 1].sample) * 1000) / dt);
      rateTimes.add(samples[i].timestamp);
    }
  }
  if (!byTime.size) return [];
  // A counter the API leaves out has not moved (RabbitMQ omits what never happened).
  const zeroAt = rateTimes.size ? [...rateTimes] : [...byTime.keys()];
  for (const key of missing) for (const t of zeroAt) at(t)[key] = 0;
  return [...byTime.values()].sort((a, b) => a.t - b.t);
}

/** One point from the current values (the API sent no samples). */
export function currentPoint(lengths, stats, t) {
  const point = { t };
  for (const [key, field] of LENGTHS) point[key] = lengths?.[field] ?? 0;
  for (const [key, field] of RATES) point[key] = stats?.[`${field}_details`]?.rate ?? 0;
  return point;
}

/** The kept points with the new answer merged in; ``now`` for a point of current values. */
export function merge(points, lengths, stats, now) {
  const fresh = samplePoints(lengths, stats);
  let merged;
  if (fresh.length) {
    // the samples replace what was kept from their first instant on
    const first = fresh[0].t;
    merged = points.filter((p) => p.t < first).concat(fresh);
  } else {
    merged = points.filter((p) => p.t < now).concat([currentPoint(lengths, stats, now)]);
  }
  const last = merged[merged.length - 1].t;
  return merged.filter((p) => p.t >= last - KEEP_MS);
}

function load(key) {
  try {
    const points = JSON.parse(sessionStorage.getItem(key));
    return Array.isArray(points) ? points : [];
  } catch {
    return [];
  }
}

function save(key, points) {
  try {
    sessionStorage.setItem(key, JSON.stringify(points));
  } catch {
    // storage full: the charts keep working for this page, without keeping the history
  }
}

/** A history kept in sessionStorage under ``key``: points(), and record(lengths, stats). */
export function historyStore(key) {
  let memory = []; // when sessionStorage refuses to keep them
  const points = () => {
    const stored = load(key);
    return stored.length ? stored : memory;
  };
  return {
    points,
    record(lengths, stats, now = Date.now()) {
      memory = merge(points(), lengths, stats, now);
      save(key, memory);
      return memory;
    },
    clear() {
      memory = [];
      sessionStorage.removeItem(key);
    },
  };
}

const QUEUE_KEYS = 'leveret.history.queues';

/** A queue's history; only the few queues looked at last keep theirs. */
export function queueHistory(vhost, name) {
  const key = `leveret.history.queue.${JSON.stringify([vhost, name])}`;
  let keys = [];
  try {
    keys = JSON.parse(sessionStorage.getItem(QUEUE_KEYS)) || [];
  } catch {
    keys = [];
  }
  keys = [key, ...keys.filter((k) => k !== key)];
  for (const old of keys.slice(KEPT_QUEUES)) sessionStorage.removeItem(old);
  save(QUEUE_KEYS, keys.slice(0, KEPT_QUEUES));
  return historyStore(key);
}

export function clearQueueHistories() {
  let keys = [];
  try {
    keys = JSON.parse(sessionStorage.getItem(QUEUE_KEYS)) || [];
  } catch {
    keys = [];
  }
  for (const key of keys) sessionStorage.removeItem(key);
  sessionStorage.removeItem(QUEUE_KEYS);
}
