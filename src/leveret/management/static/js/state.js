// What every page shares: who is logged in, the latest /api/overview, the vhosts, and the
// overview's history for the charts (kept in sessionStorage so a reload keeps the curves).

import { get } from './api.js';

const HISTORY = 'leveret.history';
const KEEP_MS = 10 * 60 * 1000;

export const session = {
  user: null, // /api/whoami
  overview: null,
  vhosts: [],
  alarms: [], // active resource alarms: "memory", "disk"
  refreshedAt: null,
};

export function isAdmin() {
  return session.user?.tags?.includes('administrator');
}

export function canSeeAll() {
  const tags = session.user?.tags || [];
  return tags.includes('administrator') || tags.includes('monitoring');
}

export function vhostNames() {
  return session.vhosts.map((v) => v.name);
}

export function history() {
  try {
    return JSON.parse(sessionStorage.getItem(HISTORY)) || [];
  } catch {
    return [];
  }
}

function record(overview, at) {
  const stats = overview.message_stats || {};
  const totals = overview.queue_totals || {};
  const rate = (name) => stats[`${name}_details`]?.rate ?? 0;
  const points = history().filter((p) => p.t >= at - KEEP_MS);
  points.push({
    t: at,
    publish: rate('publish'),
    deliver: rate('deliver_get'),
    ack: rate('ack'),
    redeliver: rate('redeliver'),
    ready: totals.messages_ready ?? 0,
    unacked: totals.messages_unacknowledged ?? 0,
    total: totals.messages ?? 0,
  });
  sessionStorage.setItem(HISTORY, JSON.stringify(points));
}

/** Fetch the overview, vhosts and alarms (every refresh), record a chart sample. */
export async function refreshSession() {
  const [overview, vhosts, health] = await Promise.all([
    get('/overview'), get('/vhosts?columns=name,description,tags'),
    get('/health/checks/alarms', { accept: [503] }), // 503 lists the alarms in effect
  ]);
  const at = Date.now();
  session.overview = overview;
  session.vhosts = vhosts;
  session.alarms = (health.alarms || []).map((a) => a.resource);
  session.refreshedAt = at;
  record(overview, at);
}

export function clearSession() {
  session.user = null;
  session.overview = null;
  session.vhosts = [];
  session.alarms = [];
  sessionStorage.removeItem(HISTORY);
}
