// Overview: object totals, queued messages and message rates with live charts, the busiest
// queues, and the node (versions, listeners, resources).

import { get, path } from '../api.js';
import { breakable, fill, h } from '../dom.js';
import { bytes, duration, num, rate, rateOf } from '../format.js';
import { depthChart as makeDepthChart, rateChart as makeRateChart } from '../message-charts.js';
import { links } from '../links.js';
import { canSeeAll, history, session } from '../state.js';
import { card, keyValues, pageHeader } from '../ui.js';

const TOTALS = [
  ['connections', 'Connections', links.connections()],
  ['channels', 'Channels', links.channels()],
  ['exchanges', 'Exchanges', links.exchanges()],
  ['queues', 'Queues', links.queues()],
  ['consumers', 'Consumers', links.queues()],
];

function headline(label, key, tone) {
  const value = h('div', { class: 'headline-value' });
  const hint = h('div', { class: 'headline-hint' });
  return {
    el: h('div', { class: ['headline', tone && `tone-${tone}`], dataset: { stat: key } },
      h('div', { class: 'headline-label' }, label), value, hint),
    set(text, hintText) {
      value.textContent = text;
      hint.textContent = hintText || '';
    },
  };
}

function meter(used, limit) {
  if (!limit || limit < 1024 * 1024) return h('span', {}, bytes(used));
  const share = Math.min(1, used / limit);
  const warn = share > 0.8;
  return h('div', { class: 'meter-wrap' },
    h('div', { class: ['meter', warn && 'meter-warn'], role: 'meter', 'aria-valuemin': 0, 'aria-valuemax': 100,
      'aria-valuenow': Math.round(share * 100), 'aria-label': 'share of the limit' },
    h('div', { class: 'meter-fill', style: { width: `${Math.round(share * 100)}%` } })),
    h('span', { class: 'meter-text' }, `${bytes(used)} of ${bytes(limit)}`));
}

const BUSIEST = 6;
const BUSIEST_COLUMNS = 'name,vhost,messages,messages_ready,messages_unacknowledged,'
  + 'message_stats.publish_details,message_stats.deliver_get_details';

function busiestTable(queues) {
  if (!queues.length) return h('div', { class: 'empty empty-small' }, h('div', { class: 'empty-title' }, 'No queues yet'));
  const rateCell = (q, name) => h('td', { class: 'num' }, rate(q.message_stats?.[`${name}_details`]?.rate ?? 0));
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table table-compact', id: 'busiest' },
    h('thead', {}, h('tr', {}, [['Queue'], ['Ready', 1], ['Unacked', 1], ['Incoming', 1], ['Deliver/get', 1]]
      .map(([t, numeric]) => h('th', { scope: 'col', class: numeric ? 'num' : null }, t)))),
    h('tbody', {}, queues.map((q) => h('tr', {},
      h('th', { scope: 'row' }, h('a', { href: links.queue(q.vhost, q.name) }, breakable(q.name)),
        q.vhost !== '/' ? h('span', { class: 'muted small' }, ` ${q.vhost}`) : null),
      h('td', { class: 'num' }, num(q.messages_ready)), h('td', { class: 'num' }, num(q.messages_unacknowledged)),
      rateCell(q, 'publish'), rateCell(q, 'deliver_get'))))));
}

export async function mount() {
  const totals = Object.fromEntries(TOTALS.map(([key, label, href]) => {
    const value = h('span', { class: 'stat-value' }, '–');
    return [key, { value, el: h('a', { class: 'stat stat-link', href, dataset: { stat: key } },
      h('span', { class: 'stat-label' }, label), value) }];
  }));
  const depth = {
    messages_ready: headline('Ready', 'messages_ready', 'ready'),
    messages_unacknowledged: headline('Unacked', 'messages_unacknowledged', 'unacked'),
    messages: headline('Total', 'messages', 'total'),
  };
  const rates = {
    publish: headline('Publish', 'publish', 'publish'),
    deliver_get: headline('Deliver/get', 'deliver_get', 'deliver'),
    ack: headline('Ack', 'ack', 'ack'),
  };
  const depthChart = makeDepthChart();
  const rateChart = makeRateChart();
  const nodeBody = h('div');
  const busiestBody = h('div'); // the queues with the most messages

  const el = h('div', { class: 'page page-overview' },
    pageHeader({ title: 'Overview', kicker: 'Broker' }),
    h('div', { class: 'stats stats-totals' }, Object.values(totals).map((t) => t.el)),
    h('div', { class: 'grid-2' },
      card({ title: 'Queued messages', id: 'queued-title' },
        h('div', { class: 'headlines' }, Object.values(depth).map((d) => d.el)), depthChart.el),
      card({ title: 'Message rates', id: 'rates-title' },
        h('div', { class: 'headlines' }, Object.values(rates).map((d) => d.el)), rateChart.el)),
    h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Busiest queues', actions: [h('a', { href: links.queues(), class: 'card-link' }, 'All queues →')] }, busiestBody),
      card({ title: 'Node' }, nodeBody)));

  async function refresh() {
    const overview = session.overview;
    if (!overview) return;
    const objectTotals = overview.object_totals || {};
    for (const [key, t] of Object.entries(totals)) t.value.textContent = num(objectTotals[key] ?? 0);
    const queued = overview.queue_totals || {};
    for (const [key, d] of Object.entries(depth)) d.set(num(queued[key] ?? 0));
    const stats = overview.message_stats || {};
    for (const [key, d] of Object.entries(rates)) d.set(rate(rateOf(stats, key) ?? 0), `${num(stats[key] ?? 0)} in total`);
    const points = history();
    depthChart.update(points);
    rateChart.update(points);

    const [busiest, node] = await Promise.all([
      get(`/queues?page=1&page_size=${BUSIEST}&sort=messages&sort_reverse=true&columns=${BUSIEST_COLUMNS}`),
      canSeeAll() ? get(path`/nodes/${overview.node}`).catch(() => null) : null,
    ]);
    fill(busiestBody, busiestTable(busiest.items));
    const listeners = (overview.listeners || []).map((l) => `${l.protocol} ${l.ip_address}:${l.port}`).join(', ');
    fill(nodeBody, keyValues([
      ['Name', overview.node],
      ['Product', `${overview.product_name} ${overview.product_version}`],
      ['API compatibility', `RabbitMQ ${overview.rabbitmq_version} management API`],
      ['Runtime', overview.erlang_full_version || overview.erlang_version],
      ['Listeners', listeners || null],
      node && ['Uptime', duration(node.uptime)],
      node && ['Memory', meter(node.mem_used, node.mem_limit)],
      node && ['Disk', `${bytes(node.disk_free)} free (alarm below ${bytes(node.disk_free_limit)})`],
      node && ['File descriptors', `${num(node.fd_used)} of ${num(node.fd_total)}`],
      node && ['Data directory', node.db_dir || 'none (nothing kept on disk)'],
    ]));
  }

  await refresh();
  return {
    el,
    refresh,
    unmount() {
      depthChart.disconnect();
      rateChart.disconnect();
    },
  };
}
