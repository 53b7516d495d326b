// What every page shares: who is logged in, the latest /api/overview, the vhosts, and the
// overview's history for the charts (the API's samples of the last minute when it has
// them, kept in sessionStorage so a reload keeps the curves).

import { get } from './api.js';
import { clearQueueHistories, HISTORY_QUERY, historyStore } from './history.js';

const overviewHistory = historyStore('leveret.history');

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
  return overviewHistory.points();
}

/** Fetch the overview, vhosts and alarms (every refresh), record the chart history. */
export async function refreshSession() {
  const [overview, vhosts, health] = await Promise.all([
    get(`/overview?${HISTORY_QUERY}`), get('/vhosts?columns=name,description,tags'),
    get('/health/checks/alarms', { accept: [503] }), // 503 lists the alarms in effect
  ]);
  const at = Date.now();
  session.overview = overview;
  session.vhosts = vhosts;
  session.alarms = (health.alarms || []).map((a) => a.resource);
  session.refreshedAt = at;
  overviewHistory.record(overview.queue_totals, overview.message_stats, at);
}

export function clearSession() {
  session.user = null;
  session.overview = null;
  session.vhosts = [];
  session.alarms = [];
  overviewHistory.clear();
  clearQueueHistories();
}
