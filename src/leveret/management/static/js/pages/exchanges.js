// Exchanges: the list with a form to add one, and an exchange's page with its bindings
// (both directions), a form to bind, and publishing.

import { del, get, path, post, put } from '../api.js';
import { breakable, fill, h } from '../dom.js';
import { num, rate, rateOf } from '../format.js';
import { exchangeFeatures } from '../features.js';
import { DEFAULT_EXCHANGE, exchangeLabel, links } from '../links.js';
import { publishForm } from '../messages.js';
import { session, vhostNames } from '../state.js';
import { dataTable } from '../table.js';
import {
  badge, button, card, checkbox, confirmDialog, empty, field, fieldsEditor, fieldTable, form, input,
  keyValues, pageHeader, parseFields, select, stat, stats, toast, values,
} from '../ui.js';
import { bindingsTable, vhostColumn, vhostFilter } from './queues.js';

function exchangeTypes() {
  const types = (session.overview?.exchange_types || []).map((t) => t.name);
  return types.length ? types : ['direct', 'fanout', 'headers', 'topic'];
}

function rateCell(x, name) {
  const value = rateOf(x.message_stats, name);
  return value === undefined ? h('span', { class: 'blank' }) : rate(value);
}

export async function mountList() {
  const vhost = vhostFilter(() => refresh(), 'leveret.vhost.exchanges');
  const table = dataTable({
    id: 'exchanges', noun: ['exchange', 'exchanges'], rowKey: (x) => `${x.vhost}/${x.name}`,
    toolbar: [vhost], filterValue: (x) => exchangeLabel(x.name),
    empty: empty('No exchanges', 'Every virtual host has the standard exchanges; you may not see any vhost.'),
    columns: [
      vhostColumn(),
      { key: 'name', label: 'Name', header: true, cell: (x) => h('a', { href: links.exchange(x.vhost, x.name) }, breakable(exchangeLabel(x.name))) },
      { key: 'type', label: 'Type' },
      { key: 'features', label: 'Features', sortable: false, cell: (x) => h('span', { class: 'badges' }, exchangeFeatures(x)) },
      // RabbitMQ's "Message rate in/out": blank for an exchange the API has no rates for
      { key: 'in', label: 'Rate in', numeric: true, title: 'Messages published to the exchange per second', value: (x) => rateOf(x.message_stats, 'publish_in'), cell: (x) => rateCell(x, 'publish_in') },
      { key: 'out', label: 'Rate out', numeric: true, title: 'Messages the exchange routed on per second', value: (x) => rateOf(x.message_stats, 'publish_out'), cell: (x) => rateCell(x, 'publish_out') },
    ],
  });

  async function refresh() {
    const chosen = vhost.value;
    const exchanges = await get(chosen ? path`/exchanges/${chosen}` : '/exchanges');
    table.update(exchanges);
  }

  const name = input('name', { required: true, placeholder: 'orders' });
  const args = fieldsEditor('arguments', {
    suggestions: [['alternate-exchange', '"unrouted"', 'Messages no binding matches go to this exchange']],
  });
  const addForm = form({
    submitLabel: 'Add exchange', label: 'Add an exchange',
    onSubmit: async (f) => {
      const v = values(f);
      await put(path`/exchanges/${v.vhost}/${v.name.trim()}`, {
        type: v.type, durable: v.durable === 'true', auto_delete: v.auto_delete, internal: v.internal,
        arguments: parseFields(args.area.value),
      });
      toast(`Exchange “${v.name.trim()}” added.`);
      name.value = '';
      await refresh();
      return `Exchange added in ${v.vhost}.`;
    },
  },
  field('Virtual host', select('vhost', vhostNames(), vhostNames()[0])), field('Name', name),
  field('Type', select('type', exchangeTypes(), 'direct')),
  field('Durability', select('durable', [['true', 'Durable'], ['false', 'Transient']], 'true')),
  field('Auto-delete when the last binding goes', checkbox('auto_delete'), { inline: true }),
  field('Internal (only other exchanges publish to it)', checkbox('internal'), { inline: true }),
  field('Arguments', h('div', {}, args.area, args.chips), { wide: true }));

  const el = h('div', { class: 'page' },
    pageHeader({ title: 'Exchanges', kicker: 'Messaging' }),
    card({}, table.el),
    h('details', { class: 'card card-details' }, h('summary', {}, h('span', { class: 'summary-title' }, 'Add an exchange')),
      h('div', { class: 'card-body' }, addForm)));
  await refresh();
  return { el, refresh };
}

export async function mountExchange([vhost, urlName]) {
  const name = urlName === DEFAULT_EXCHANGE ? '' : urlName;
  const url = path`/exchanges/${vhost}/${urlName}`;
  let x = await get(url);
  const headerHolder = h('div');
  const tiles = h('div');
  const outgoing = h('div');
  const incoming = h('div');

  async function remove() {
    const ok = await confirmDialog({
      title: `Delete exchange ${name}?`, message: 'Its bindings are removed too. Publishers to it will get a channel error.',
      confirmLabel: 'Delete exchange', danger: true,
    });
    if (!ok) return;
    try {
      await del(url);
      toast(`Exchange “${name}” deleted.`);
      location.hash = links.exchanges();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  }

  const bindForm = form({
    submitLabel: 'Bind', label: 'Bind from this exchange',
    onSubmit: async (f) => {
      const v = values(f);
      const kind = v.kind === 'exchange' ? 'e' : 'q';
      await post(`${path`/bindings/${vhost}/e/${urlName}/`}${kind}/${encodeURIComponent(v.destination.trim())}`, {
        routing_key: v.routing_key, arguments: parseFields(v.arguments),
      });
      toast(`Bound to “${v.destination.trim()}”.`);
      await refresh();
      return 'Binding added.';
    },
  },
  field('To', select('kind', [['queue', 'Queue'], ['exchange', 'Exchange']], 'queue')),
  field('Destination name', input('destination', { required: true, placeholder: 'orders.created' })),
  field('Routing key', input('routing_key', { placeholder: 'orders.#' })),
  field('Arguments', fieldsEditor('arguments', { rows: 2, placeholder: 'x-match = all' }).area, { wide: true }));

  async function refresh() {
    const [fresh, source, destination] = await Promise.all([
      get(url), get(`${url}/bindings/source`), get(`${url}/bindings/destination`),
    ]);
    x = fresh;
    fill(headerHolder, pageHeader({
      title: exchangeLabel(name), kicker: 'Exchange', back: { href: links.exchanges(), label: 'Exchanges' },
      badges: [badge(`vhost ${vhost}`, 'accent'), badge(x.type), ...exchangeFeatures(x)],
      actions: name && !name.startsWith('amq.') ? [button('Delete', remove, { kind: 'danger' })] : [],
    }));
    const ms = x.message_stats || {};
    fill(tiles, stats([
      x.message_stats && stat('Publish in', rate(rateOf(ms, 'publish_in') ?? 0), { tone: 'publish', hint: `${num(ms.publish_in ?? 0)} in total` }),
      x.message_stats && stat('Publish out', rate(rateOf(ms, 'publish_out') ?? 0), { tone: 'deliver', hint: `${num(ms.publish_out ?? 0)} in total` }),
      stat('Bindings from here', num(source.length)),
      stat('Bindings to here', num(destination.length)),
    ]));
    fill(outgoing, name ? bindingsTable(vhost, source, refresh, { hide: 'source' })
      : empty('Implicit bindings', 'The default exchange routes to the queue named by the routing key; it cannot be bound explicitly.'));
    fill(incoming, destination.length ? bindingsTable(vhost, destination, refresh, { hide: 'destination' })
      : empty('No exchange-to-exchange bindings', 'No other exchange forwards messages here.'));
  }

  await refresh();
  const el = h('div', { class: 'page' }, headerHolder, tiles,
    h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Properties' }, keyValues([
        ['Virtual host', vhost], ['Type', x.type], ['Durable', x.durable ? 'yes' : 'no'],
        ['Auto-delete', x.auto_delete ? 'yes' : 'no'], ['Internal', x.internal ? 'yes' : 'no'],
        ['Arguments', fieldTable(x.arguments)],
      ])),
      card({ title: 'Publish a message' }, x.internal
        ? empty('Internal exchange', 'Clients cannot publish to an internal exchange.')
        : publishForm({ vhost, exchange: urlName }))),
    card({ title: 'Bindings from this exchange' }, outgoing, name ? h('div', { class: 'subform' }, h('h3', {}, 'Add a binding'), bindForm) : null),
    card({ title: 'Bindings to this exchange' }, incoming));
  return { el, refresh };
}
