// Queues: the list (sortable, filterable, per vhost) with a form to add one, and a queue's
// page with charts of its messages and rates (the API's last minute of samples when it
// has them), its details, messages (publish, get, peek), bindings and consumers. A stream
// (type "stream") shows its log instead: retained messages, bytes, segments, offsets and
// each consumer's offset; purge and get, which a stream refuses, are not offered.

import { del, get, path, post, put } from '../api.js';
import { breakable, fill, h } from '../dom.js';
import { bytes, num, rate, rateOf } from '../format.js';
import { queueFeatures, QUEUE_ARGUMENT_SUGGESTIONS } from '../features.js';
import { exchangeLabel, links } from '../links.js';
import { HISTORY_QUERY, queueHistory } from '../history.js';
import { depthChart, rateChart } from '../message-charts.js';
import { publishForm, readMessages } from '../messages.js';
import { vhostNames } from '../state.js';
import { dataTable } from '../table.js';
import {
  badge, button, card, checkbox, confirmDialog, empty, field, fieldsEditor, fieldTable, form, input,
  keyValues, pageHeader, parseFields, select, stat, stats, tabs, toast, values,
} from '../ui.js';

export function vhostFilter(onChange, storeKey) {
  const stored = sessionStorage.getItem(storeKey) || '';
  const el = select('vhost-filter', [['', 'All virtual hosts'], ...vhostNames().map((v) => [v, v])], stored, {
    'aria-label': 'Virtual host', class: 'vhost-filter',
    onchange: () => {
      sessionStorage.setItem(storeKey, el.value);
      onChange();
    },
  });
  el.hidden = vhostNames().length < 2;
  return el;
}

export function vhostColumn() {
  return { key: 'vhost', label: 'Virtual host', hideWhen: () => vhostNames().length < 2 };
}

export async function mountList() {
  const vhost = vhostFilter(() => refresh(), 'leveret.vhost.queues');
  const table = dataTable({
    id: 'queues', noun: ['queue', 'queues'], rowKey: (q) => `${q.vhost}/${q.name}`,
    toolbar: [vhost],
    initialSort: { key: 'name', dir: 'asc' },
    empty: empty('No queues yet', 'Queues appear here when clients declare them, or add one below.'),
    columns: [
      vhostColumn(),
      { key: 'name', label: 'Name', header: true, cell: (q) => h('a', { href: links.queue(q.vhost, q.name) }, breakable(q.name)) },
      { key: 'type', label: 'Type' },
      { key: 'features', label: 'Features', sortable: false, cell: (q) => h('span', { class: 'badges' }, queueFeatures(q)) },
      { key: 'state', label: 'State', cell: (q) => badge(q.state, q.state === 'running' ? 'ok' : 'warn') },
      { key: 'messages_ready', label: 'Ready', numeric: true, cell: (q) => num(q.messages_ready) },
      { key: 'messages_unacknowledged', label: 'Unacked', numeric: true, cell: (q) => num(q.messages_unacknowledged) },
      { key: 'messages', label: 'Total', numeric: true, cell: (q) => num(q.messages) },
      { key: 'publish', label: 'Incoming', numeric: true, title: 'Publish rate', value: (q) => rateOf(q.message_stats, 'publish') ?? 0, cell: (q) => rate(rateOf(q.message_stats, 'publish') ?? 0) },
      { key: 'deliver', label: 'Deliver/get', numeric: true, value: (q) => rateOf(q.message_stats, 'deliver_get') ?? 0, cell: (q) => rate(rateOf(q.message_stats, 'deliver_get') ?? 0) },
      { key: 'ack', label: 'Ack', numeric: true, value: (q) => rateOf(q.message_stats, 'ack') ?? 0, cell: (q) => rate(rateOf(q.message_stats, 'ack') ?? 0) },
      { key: 'consumers', label: 'Consumers', numeric: true, cell: (q) => num(q.consumers) },
    ],
  });

  async function refresh() {
    const chosen = vhost.value;
    const queues = await get(chosen ? path`/queues/${chosen}` : '/queues');
    table.update(queues);
  }

  const el = h('div', { class: 'page' },
    pageHeader({ title: 'Queues', kicker: 'Messaging' }),
    card({}, table.el),
    addQueueCard(refresh));
  await refresh();
  return { el, refresh };
}

function addQueueCard(refresh) {
  const vhost = select('vhost', vhostNames(), vhostNames()[0]);
  const name = input('name', { required: true, placeholder: 'orders.created' });
  const type = select('type', [['classic', 'Classic'], ['quorum', 'Quorum'], ['stream', 'Stream']], 'classic');
  const durable = select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true');
  const autoDelete = checkbox('auto_delete');
  const args = fieldsEditor('arguments', { suggestions: QUEUE_ARGUMENT_SUGGESTIONS });
  const addForm = form({
    submitLabel: 'Add queue', label: 'Add a queue',
    onSubmit: async (f) => {
      const v = values(f);
      const argumentsTable = parseFields(args.area.value);
      if (v.type !== 'classic') argumentsTable['x-queue-type'] = v.type;
      await put(path`/queues/${v.vhost}/${v.name.trim()}`, {
        // quorum queues and streams are durable, as their declarations require
        durable: v.durable === 'true' || v.type !== 'classic', auto_delete: v.auto_delete, arguments: argumentsTable,
      });
      toast(`Queue “${v.name.trim()}” added.`);
      name.value = '';
      await refresh();
      return `Queue added in ${v.vhost}.`;
    },
  },
  field('Virtual host', vhost), field('Name', name), field('Type', type), field('Durability', durable),
  field('Auto-delete when the last consumer leaves', autoDelete, { inline: true }),
  field('Arguments', h('div', {}, args.area, args.chips), { wide: true, hint: 'One key = value a line.' }));
  return h('details', { class: 'card card-details' },
    h('summary', {}, h('span', { class: 'summary-title' }, 'Add a queue')),
    h('div', { class: 'card-body' }, addForm));
}

// -- one queue ---------------------------------------------------------------------------------

export async function mountQueue([vhost, name]) {
  const url = path`/queues/${vhost}/${name}`;
  const withHistory = `${url}?${HISTORY_QUERY}`;
  let q = await get(withHistory);
  const history = queueHistory(vhost, name);
  const queuedChart = q.type === 'stream'
    ? depthChart({ title: 'Retained messages', series: [{ key: 'total', label: 'Messages', color: 'var(--c-total)' }] })
    : depthChart();
  const ratesChart = rateChart();
  const charts = h('div', { class: 'grid-2 grid-top queue-charts' },
    card({ title: q.type === 'stream' ? 'Retained messages' : 'Queued messages' }, queuedChart.el),
    card({ title: 'Message rates' }, ratesChart.el));
  const tiles = h('div');
  const details = h('div');
  const consumersBody = h('div');
  const bindingsBody = h('div');
  const headerHolder = h('div');

  const isStream = () => q.type === 'stream';
  const drawHeader = () => fill(headerHolder, pageHeader({
    title: name, kicker: isStream() ? 'Stream' : 'Queue', back: { href: links.queues(), label: 'Queues' },
    badges: [badge(`vhost ${vhost}`, 'accent'), badge(q.type || 'classic'), ...queueFeatures(q)],
    actions: [
      // a stream cannot be purged (its retention removes old segments)
      isStream() ? null : button('Purge', purge, { kind: 'secondary', title: 'Remove every ready message' }),
      button('Delete', remove, { kind: 'danger' }),
    ].filter(Boolean),
  }));

  async function purge() {
    const ok = await confirmDialog({
      title: `Purge ${name}?`, message: `The ${num(q.messages_ready)} ready messages are removed for good. Unacknowledged messages stay.`,
      confirmLabel: 'Purge', danger: true,
    });
    if (!ok) return;
    try {
      await del(`${url}/contents`);
      toast(`Queue “${name}” purged.`);
      await refresh();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  }

  async function remove() {
    const ok = await confirmDialog({
      title: `Delete queue ${name}?`,
      message: `It has ${num(q.messages)} messages and ${num(q.consumers)} consumers; its messages are lost and its consumers cancelled.`,
      confirmLabel: 'Delete queue', danger: true,
    });
    if (!ok) return;
    try {
      await del(url);
      toast(`Queue “${name}” deleted.`);
      location.hash = links.queues();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  }

  const bindingForm = form({
    submitLabel: 'Bind', label: 'Bind this queue to an exchange',
    onSubmit: async (f) => {
      const v = values(f);
      await post(path`/bindings/${vhost}/e/${v.source.trim()}/q/${name}`, {
        routing_key: v.routing_key, arguments: parseFields(v.arguments),
      });
      toast(`Bound to “${v.source.trim()}”.`);
      await refresh();
      return 'Binding added.';
    },
  },
  field('From exchange', input('source', { required: true, list: 'exchange-names', placeholder: 'amq.topic' })),
  field('Routing key', input('routing_key', { placeholder: 'orders.#' })),
  field('Arguments', fieldsEditor('arguments', { rows: 2, placeholder: 'x-match = all' }).area, { wide: true }));
  const exchangeNames = h('datalist', { id: 'exchange-names' });

  const tabset = tabs('queue', [
    { id: 'details', label: 'Details', content: details },
    { id: 'messages', label: 'Messages', content: h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Publish a message' }, publishForm({ vhost, exchange: '', routingKey: name, lockRoutingKey: true })),
      card({ title: isStream() ? 'Peek' : 'Get or peek' }, readMessages({ vhost, queue: name, onChange: () => refresh(), peekOnly: isStream() }))) },
    { id: 'bindings', label: 'Bindings', count: '', content: [card({ title: 'Bindings' }, bindingsBody),
      card({ title: 'Add a binding' }, bindingForm, exchangeNames)] },
    { id: 'consumers', label: 'Consumers', count: '', content: card({ title: 'Consumers' }, consumersBody) },
  ]);

  async function refresh() {
    const [fresh, bindings, exchanges] = await Promise.all([
      get(withHistory), get(`${url}/bindings`), get(path`/exchanges/${vhost}?columns=name`),
    ]);
    q = fresh;
    const points = history.record(q, q.message_stats);
    queuedChart.update(points);
    ratesChart.update(points);
    drawHeader();
    const ms = q.message_stats || {};
    const s = q.stream;
    if (isStream()) {
      fill(tiles, stats([
        stat('Retained', num(q.messages), { key: 'messages', tone: 'total', hint: 'messages in the stream' }),
        stat('Bytes', bytes(s ? s.bytes : q.message_bytes), { key: 'stream_bytes' }),
        stat('Segments', s ? num(s.segments) : '–', { key: 'stream_segments', hint: 'retention removes whole segments' }),
        stat('First offset', s ? num(s.first_offset) : '–', { key: 'stream_first_offset' }),
        stat('Last offset', s && s.last_offset !== null ? num(s.last_offset) : '–', { key: 'stream_last_offset', hint: s ? `next ${num(s.next_offset)}` : null }),
        stat('Consumers', num(q.consumers), { key: 'consumers' }),
        stat('Incoming', rate(rateOf(ms, 'publish') ?? 0), { key: 'publish', tone: 'publish', hint: `${num(ms.publish ?? 0)} in total` }),
      ]));
    } else fill(tiles, stats([
      stat('Ready', num(q.messages_ready), { key: 'messages_ready', tone: 'ready' }),
      stat('Unacked', num(q.messages_unacknowledged), { key: 'messages_unacknowledged', tone: 'unacked' }),
      stat('Total', num(q.messages), { key: 'messages', tone: 'total', hint: bytes(q.message_bytes) }),
      stat('Consumers', num(q.consumers), { key: 'consumers', hint: q.consumers ? `utilisation ${Math.round((q.consumer_utilisation ?? 0) * 100)}%` : null }),
      stat('Incoming', rate(rateOf(ms, 'publish') ?? 0), { key: 'publish', tone: 'publish', hint: `${num(ms.publish ?? 0)} in total` }),
      stat('Deliver/get', rate(rateOf(ms, 'deliver_get') ?? 0), { key: 'deliver_get', tone: 'deliver', hint: `${num(ms.deliver_get ?? 0)} in total` }),
      stat('Ack', rate(rateOf(ms, 'ack') ?? 0), { key: 'ack', tone: 'ack', hint: `${num(ms.ack ?? 0)} in total` }),
    ]));
    fill(details, h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Properties' }, keyValues([
        ['Virtual host', vhost], ['Type', q.type], ['State', q.state],
        ['Durable', q.durable ? 'yes' : 'no'], ['Auto-delete', q.auto_delete ? 'yes' : 'no'],
        ['Exclusive', q.exclusive ? `yes${q.owner_pid_details ? ` (${q.owner_pid_details.name})` : ''}` : 'no'],
        ['Arguments', fieldTable(q.arguments)],
      ])),
      s ? card({ title: 'Stream' }, keyValues([
        ['Retained messages', num(q.messages)],
        ['Offsets', `${num(s.first_offset)} to ${s.last_offset === null ? '(empty)' : num(s.last_offset)}; next ${num(s.next_offset)}`],
        ['Segments', num(s.segments)],
        ['Bytes', bytes(s.bytes)],
        ['Max length', s.retention.max_length_bytes === null ? 'none' : bytes(s.retention.max_length_bytes)],
        ['Max age', s.retention.max_age_seconds === null ? 'none' : seconds(s.retention.max_age_seconds)],
        ['Segment size', bytes(s.retention.max_segment_size_bytes)],
      ])) : null,
      card({ title: 'Policy and totals' }, keyValues([
        ['Policy', q.policy || 'none'],
        ['Effective policy', fieldTable(q.effective_policy_definition)],
        ['Message bytes', `${bytes(q.message_bytes)} (${bytes(q.message_bytes_ready)} ready, ${bytes(q.message_bytes_unacknowledged)} unacked)`],
        ['Published', num(ms.publish ?? 0)], ['Delivered or got', num(ms.deliver_get ?? 0)],
        ['Acknowledged', num(ms.ack ?? 0)], ['Redelivered', num(ms.redeliver ?? 0)],
        q.single_active_consumer_tag && ['Single active consumer', h('code', {}, q.single_active_consumer_tag)],
      ]))));
    tabset.setCount('bindings', String(bindings.length));
    tabset.setCount('consumers', String(q.consumers));
    fill(bindingsBody, bindingsTable(vhost, bindings, refresh, { hide: 'destination' }));
    fill(exchangeNames, exchanges.filter((x) => x.name).map((x) => h('option', { value: x.name })));
    const consumers = q.consumer_details || [];
    const offsets = isStream();
    fill(consumersBody, consumers.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
        h('thead', {}, h('tr', {}, ['Channel', 'Consumer tag', 'Ack required', 'Exclusive', 'Prefetch', 'Active',
          ...(offsets ? ['Next offset', 'Lag'] : []), 'Arguments']
          .map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, consumers.map((c) => h('tr', {},
          h('td', {}, c.channel_details?.connection_name
            ? h('a', { href: links.connection(c.channel_details.connection_name) }, c.channel_details.name) : c.channel_details?.name),
          h('td', {}, h('code', {}, c.consumer_tag)),
          h('td', {}, c.ack_required ? 'yes' : 'no (auto-ack)'), h('td', {}, c.exclusive ? 'yes' : 'no'),
          h('td', {}, num(c.prefetch_count)), h('td', {}, badge(c.activity_status || (c.active ? 'up' : 'waiting'), c.active ? 'ok' : 'neutral')),
          offsets ? h('td', { class: 'num', dataset: { offset: c.consumer_tag } }, c.stream ? num(c.stream.next_offset) : '–') : null,
          offsets ? h('td', { class: 'num' }, c.stream ? num(c.stream.lag) : '–') : null,
          h('td', {}, fieldTable(c.arguments)))))))
      : empty('No consumers', 'Nothing consumes from this queue right now.'));
  }

  await refresh();
  const el = h('div', { class: 'page' }, headerHolder, tiles, charts, tabset.el);
  return {
    el,
    refresh,
    unmount() {
      queuedChart.disconnect();
      ratesChart.disconnect();
    },
  };
}

/**
 * A queue's or exchange's bindings, with Unbind for each one that can be removed.
 * ``hide`` leaves out the column that is the page's own object ('source' or 'destination').
 */
function seconds(total) {
  const units = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const [unit, size] = units.find(([, n]) => total >= n && total % n === 0) || ['s', 1];
  return `${num(total / size)}${unit}`;
}

export function bindingsTable(vhost, bindings, refresh, { hide } = {}) {
  if (!bindings.length) return empty('No bindings', 'Add one below.');
  const unbind = async (b) => {
    const kind = b.destination_type === 'queue' ? 'q' : 'e';
    const ok = await confirmDialog({
      title: 'Remove this binding?',
      message: `${exchangeLabel(b.source)} → ${b.destination} with routing key “${b.routing_key}”.`,
      confirmLabel: 'Unbind', danger: true,
    });
    if (!ok) return;
    try {
      // properties_key comes URL-quoted from the API: it goes into the path as it is
      await del(`${path`/bindings/${vhost}/e/${b.source}/${kind}/${b.destination}`}/${b.properties_key}`);
      toast('Binding removed.');
      await refresh();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  };
  const columns = [
    hide !== 'source' && ['From exchange', (b) => (b.source ? h('a', { href: links.exchange(vhost, b.source) }, b.source)
      : h('span', { class: 'muted' }, '(AMQP default)'))],
    hide !== 'destination' && ['To', (b) => [h('a', {
      href: b.destination_type === 'queue' ? links.queue(vhost, b.destination) : links.exchange(vhost, b.destination),
    }, b.destination), ' ', badge(b.destination_type)]],
    ['Routing key', (b) => h('code', {}, b.routing_key || '(empty)')],
    ['Arguments', (b) => fieldTable(b.arguments)],
  ].filter(Boolean);
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, columns.map(([title]) => h('th', { scope: 'col' }, title)),
      h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Actions')))),
    h('tbody', {}, bindings.map((b) => h('tr', {},
      columns.map(([, cell]) => h('td', {}, cell(b))),
      h('td', { class: 'row-actions' }, b.source
        ? button('Unbind', () => unbind(b), { small: true, kind: 'ghost', 'aria-label': `Unbind ${b.source} → ${b.destination} (${b.routing_key})` })
        : h('span', { class: 'muted', title: 'Every queue is bound to the default exchange by its name' }, 'implicit')))))));
}
