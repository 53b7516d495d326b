// The application shell: login gate, sidebar navigation, hash routing, the refresh loop
// (every 5 s by default) and the alarms banner.

import { credentials, forgetCredentials, get, whenLoginFails } from './api.js';
import { fill, h } from './dom.js';
import { clock, num } from './format.js';
import { loginPage } from './pages/login.js';
import { routes } from './routes.js';
import { canSeeAll, clearSession, isAdmin, refreshSession, session } from './state.js';
import { icon } from './icons.js';
import { errorPanel, loading } from './ui.js';

const INTERVALS = [[5000, 'Every 5 s'], [10000, 'Every 10 s'], [30000, 'Every 30 s'], [0, 'Paused']];
const INTERVAL_KEY = 'leveret.refresh';

const NAV = [
  { id: 'overview', label: 'Overview', href: '#/overview' },
  { id: 'queues', label: 'Queues', href: '#/queues', total: 'queues' },
  { id: 'exchanges', label: 'Exchanges', href: '#/exchanges', total: 'exchanges' },
  { id: 'connections', label: 'Connections', href: '#/connections', total: 'connections' },
  { id: 'channels', label: 'Channels', href: '#/channels', total: 'channels' },
  { section: 'Admin' },
  { id: 'users', label: 'Users', href: '#/users', admin: true },
  { id: 'vhosts', label: 'Virtual hosts', href: '#/vhosts', admin: true },
  { id: 'limits', label: 'Limits', href: '#/limits', admin: true },
  { id: 'policies', label: 'Policies', href: '#/policies' },
  { id: 'shovels', label: 'Shovels', href: '#/shovels', monitor: true },
  { id: 'definitions', label: 'Definitions', href: '#/definitions', admin: true },
];

const shell = {
  root: null, main: null, nav: null, alarms: null, status: null, user: null,
  page: null, // the mounted page: {refresh, unmount}
  token: 0, // bumped on every navigation, so a slow page load cannot land on a newer page
  timer: null,
  busy: false,
  offline: false,
};

function logo() {
  return h('span', { class: 'logo', 'aria-hidden': 'true' }, h('img', { src: 'favicon.svg', alt: '', width: 28, height: 28 }));
}

function buildShell() {
  const interval = Number(localStorage.getItem(INTERVAL_KEY) ?? 5000);
  const intervalSelect = h('select', {
    'aria-label': 'Auto-refresh', class: 'refresh-select',
    onchange: () => {
      localStorage.setItem(INTERVAL_KEY, intervalSelect.value);
      schedule();
    },
  }, INTERVALS.map(([ms, label]) => h('option', { value: ms, selected: ms === interval }, label)));
  shell.status = h('span', { class: 'refresh-status', 'aria-live': 'off' });
  shell.nav = h('nav', { class: 'nav', 'aria-label': 'Main' });
  shell.user = h('div', { class: 'user-box' });
  shell.alarms = h('div', { class: 'alarms', 'aria-live': 'assertive' });
  shell.main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  shell.root = h('div', { class: 'shell' },
    h('button', { class: 'skip-link', type: 'button', onclick: () => shell.main.focus() }, 'Skip to content'),
    h('aside', { class: 'sidebar' },
      h('a', { class: 'brand', href: '#/overview' }, logo(), h('span', { class: 'brand-name' }, 'leveret'),
        h('span', { class: 'brand-sub' }, 'management')),
      shell.nav,
      shell.user),
    h('div', { class: 'content' },
      h('div', { class: 'topbar' },
        h('div', { class: 'topbar-node', id: 'node-name' }),
        h('div', { class: 'topbar-refresh' }, shell.status, intervalSelect,
          h('button', {
            class: 'btn btn-ghost btn-small', type: 'button', title: 'Refresh now', 'aria-label': 'Refresh now',
            onclick: () => tick(),
          }, h('span', { 'aria-hidden': 'true' }, '↻'), ' Refresh'))),
      shell.alarms,
      shell.main));
  fill(document.getElementById('app'), shell.root, h('div', { id: 'toasts', class: 'toasts' }));
  drawUser();
}

function drawNav(active) {
  const totals = session.overview?.object_totals || {};
  fill(shell.nav, NAV.filter((item) => (!item.admin || isAdmin()) && (!item.monitor || canSeeAll())).map((item) => {
    if (item.section) return h('div', { class: 'nav-section' }, item.section);
    const current = item.id === active;
    return h('a', { class: ['nav-item', current && 'active'], href: item.href, 'aria-current': current ? 'page' : null,
      dataset: { nav: item.id }, 'data-focus-key': `nav-${item.id}` },
      h('span', { class: 'nav-icon' }, icon(item.id)),
      h('span', { class: 'nav-label' }, item.label),
      item.total && totals[item.total] !== undefined ? h('span', { class: 'nav-count' }, num(totals[item.total])) : null);
  }));
}

function drawUser() {
  const user = session.user;
  fill(shell.user,
    h('div', { class: 'user-name' }, h('span', { class: 'avatar', 'aria-hidden': 'true' }, (user?.name || '?').slice(0, 1).toUpperCase()),
      h('div', {}, h('div', { class: 'user-login', dataset: { user: user?.name } }, user?.name),
        h('div', { class: 'user-tags' }, (user?.tags || []).join(', ') || 'no tags'))),
    h('button', { class: 'btn btn-ghost btn-small', type: 'button', onclick: logout }, 'Log out'));
}

function drawStatus() {
  const overview = session.overview;
  const nodeName = document.getElementById('node-name');
  if (overview && nodeName) {
    fill(nodeName, h('span', { class: 'status-dot', 'aria-hidden': 'true' }),
      h('strong', {}, overview.node),
      h('span', { class: 'muted' }, `cluster ${overview.cluster_name} · ${overview.product_name} ${overview.product_version}`));
  }
  if (shell.offline) {
    fill(shell.status, h('span', { class: 'offline' }, 'Broker unreachable; retrying'));
  } else if (session.refreshedAt) {
    fill(shell.status, `Updated ${clock(session.refreshedAt)}`);
  }
}

function drawAlarms(alarms) {
  if (!alarms.length) {
    fill(shell.alarms);
    return;
  }
  const words = { memory: 'memory high watermark reached', disk: 'free disk space below the limit' };
  fill(shell.alarms, h('div', { class: 'alarm-banner', role: 'alert' },
    h('strong', {}, 'Resource alarm: '),
    alarms.map((a) => words[a] || a).join('; '),
    '. Publishers are blocked until it clears.'));
}

async function tick() {
  if (shell.busy || !credentials()) return;
  shell.busy = true;
  try {
    await refreshSession();
    shell.offline = false;
    drawAlarms(session.alarms);
    if (shell.page?.refresh) await shell.page.refresh();
  } catch (exc) {
    shell.offline = exc.status === 0;
    if (!shell.offline) console.warn('refresh failed', exc);
  } finally {
    shell.busy = false;
    drawNav(shell.activeNav);
    drawStatus();
  }
}

function schedule() {
  clearInterval(shell.timer);
  const ms = Number(localStorage.getItem(INTERVAL_KEY) ?? 5000);
  if (ms > 0) shell.timer = setInterval(tick, ms);
}

function parseRoute() {
  const hash = location.hash.replace(/^#/, '') || '/overview';
  for (const route of routes) {
    const match = route.pattern.exec(hash);
    if (match) return { route, params: match.slice(1).map(decodeURIComponent) };
  }
  return { route: null, params: [] };
}

async function navigate() {
  if (!credentials() || location.hash === '#/login') {
    showLogin();
    return;
  }
  if (!shell.root || !document.body.contains(shell.root)) {
    const ok = await startSession();
    if (!ok) return;
  }
  shell.token += 1;
  const token = shell.token;
  shell.page?.unmount?.();
  shell.page = null;
  const { route, params } = parseRoute();
  shell.activeNav = route?.nav;
  drawNav(shell.activeNav);
  if (!route) {
    document.title = 'Not found · leveret';
    fill(shell.main, h('div', { class: 'empty' }, h('div', { class: 'empty-title' }, 'No such page'),
      h('p', {}, h('a', { href: '#/overview' }, 'Back to the overview'))));
    return;
  }
  document.title = `${route.title(params)} · leveret`;
  fill(shell.main, loading());
  const mount = async () => {
    try {
      const page = await route.mount(params);
      if (token !== shell.token) {
        page.unmount?.();
        return;
      }
      shell.page = page;
      fill(shell.main, page.el);
    } catch (exc) {
      if (token === shell.token) fill(shell.main, errorPanel(exc, mount));
    }
  };
  await mount();
}

/** Check the stored credentials and build the shell; false (and the login page) if refused. */
async function startSession() {
  try {
    session.user = await get('/whoami');
    await refreshSession();
  } catch (exc) {
    if (exc.status === 401) {
      forgetCredentials();
      showLogin(exc.message);
      return false;
    }
    buildShell();
    fill(shell.main, errorPanel(exc, () => navigate()));
    return false;
  }
  buildShell();
  drawStatus();
  drawAlarms(session.alarms);
  schedule();
  return true;
}

function showLogin(message) {
  clearInterval(shell.timer);
  shell.page?.unmount?.();
  shell.page = null;
  shell.root = null;
  document.title = 'Log in · leveret';
  fill(document.getElementById('app'), loginPage({
    message,
    onLogin: (user) => {
      session.user = user;
      const target = sessionStorage.getItem('leveret.after-login') || '#/overview';
      sessionStorage.removeItem('leveret.after-login');
      if (location.hash === target) navigate(); else location.hash = target;
    },
  }));
}

function logout() {
  forgetCredentials();
  clearSession();
  location.hash = '#/login';
}

whenLoginFails(() => {
  forgetCredentials();
  clearSession();
  showLogin('Your session ended: the broker no longer accepts these credentials.');
});

window.addEventListener('hashchange', navigate);
if (!credentials() && location.hash && location.hash !== '#/login') {
  sessionStorage.setItem('leveret.after-login', location.hash);
}
navigate();
