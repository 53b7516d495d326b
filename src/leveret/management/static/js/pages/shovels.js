// Dynamic shovels: their status (/api/shovels), adding one (PUT /api/parameters/shovel),
// restarting and deleting. docs/shovels.md describes the keys.

import { del, get, path, put } from '../api.js';
import { h } from '../dom.js';
import { session, vhostNames } from '../state.js';
import { dataTable } from '../table.js';
import {
  badge, button, card, confirmDialog, empty, field, form, input, pageHeader, select, toast, values,
} from '../ui.js';
import { vhostColumn } from './queues.js';

const STATE_TONES = { running: 'ok', starting: 'info', terminated: 'warn' };

/** A URI (or a list of them) without user and password, as /api/shovels shows it. */
function withoutCredentials(uri) {
  if (Array.isArray(uri)) return uri.map(withoutCredentials).join(', ');
  return typeof uri === 'string' ? uri.replace(/^([a-z]+:\/\/)[^@/]*@/i, '$1') : '';
}

/** One end of a shovel, from a status row (underscores) or a parameter (dashes). */
export function shovelEnd(row, side) {
  const read = (key) => row[`${side}_${key}`] ?? row[`${side}-${key.replace(/_/g, '-')}`];
  const uri = withoutCredentials(read('uri'));
  if (!uri) return '';
  const queue = read('queue');
  const exchange = read('exchange');
  const key = read('exchange_key');
  let what;
  if (queue !== undefined) what = `queue ${queue}`;
  else if (exchange !== undefined || key !== undefined) {
    what = `exchange ${exchange ?? '(the message’s own)'}${key !== undefined ? ` [${key}]` : ''}`;
  } else what = 'the message’s own exchange and key';
  return `${what} @ ${uri}`;
}

function endCell(text) {
  return text ? h('code', { class: 'shovel-end' }, text) : h('span', { class: 'muted' }, 'not known');
}

function canEdit() {
  return (session.user?.tags || []).some((t) => t === 'administrator' || t === 'policymaker');
}

/** The status rows, with the ends of those not running read from their parameters (the
 * status tells them only while a shovel runs). */
async function load() {
  const rows = await get('/shovels');
  let params = [];
  if (canEdit() && rows.some((r) => r.state !== 'running')) {
    try {
      params = await get('/parameters/shovel');
    } catch {
      params = [];
    }
  }
  const byKey = new Map(params.map((p) => [`${p.vhost}/${p.name}`, p.value || {}]));
  return rows.map((r) => {
    const ends = r.state === 'running' ? r : byKey.get(`${r.vhost}/${r.name}`) || {};
    return { ...r, src: shovelEnd(ends, 'src'), dest: shovelEnd(ends, 'dest') };
  });
}

function shovelValue(v) {
  const value = { 'src-protocol': 'amqp091', 'src-uri': v['src-uri'].trim(), 'dest-protocol': 'amqp091', 'dest-uri': v['dest-uri'].trim() };
  const srcKind = v['src-kind'];
  value[`src-${srcKind}`] = v['src-name'].trim();
  if (srcKind === 'exchange') value['src-exchange-key'] = v['src-key'];
  const destName = v['dest-name'].trim();
  if (v['dest-kind'] === 'queue') {
    if (destName) value['dest-queue'] = destName;
  } else {
    if (destName) value['dest-exchange'] = destName;
    if (v['dest-key']) value['dest-exchange-key'] = v['dest-key'];
  }
  value['ack-mode'] = v['ack-mode'];
  if (v.prefetch !== '') value['src-prefetch-count'] = Number(v.prefetch);
  const after = v['delete-after'].trim();
  if (after && after !== 'never') value['src-delete-after'] = /^\d+$/.test(after) ? Number(after) : after;
  if (v['reconnect-delay'] !== '') value['reconnect-delay'] = Number(v['reconnect-delay']);
  return value;
}

export async function mount() {
  const editable = canEdit();
  const shovelForm = editable ? form({
    submitLabel: 'Add shovel', label: 'Add a shovel',
    onSubmit: async (f) => {
      const v = values(f);
      const name = v.name.trim();
      await put(path`/parameters/shovel/${v.vhost}/${name}`, { value: shovelValue(v) });
      toast(`Shovel “${name}” saved.`);
      await refresh();
      return 'Shovel saved; it starts now.';
    },
  },
  field('Virtual host', select('vhost', vhostNames(), vhostNames()[0])),
  field('Name', input('name', { required: true, placeholder: 'orders-to-dc2' })),
  field('Source URI', input('src-uri', { required: true, value: 'amqp://', class: 'mono' }),
    { hint: 'amqp:// is this broker’s vhost /, amqp:///other its vhost other' }),
  field('Source', select('src-kind', [['queue', 'Queue'], ['exchange', 'Exchange']], 'queue')),
  field('Source queue or exchange', input('src-name', { required: true, placeholder: 'orders' })),
  field('Source exchange key', input('src-key', { placeholder: 'with an exchange: the binding key' })),
  field('Destination URI', input('dest-uri', { required: true, placeholder: 'amqp://user:password@remote-host', class: 'mono' })),
  field('Destination', select('dest-kind', [['queue', 'Queue'], ['exchange', 'Exchange']], 'queue')),
  field('Destination queue or exchange', input('dest-name', { placeholder: 'empty: the message’s own exchange' })),
  field('Destination exchange key', input('dest-key', { placeholder: 'empty: the message’s own key' })),
  field('Ack mode', select('ack-mode', [['on-confirm', 'on-confirm (nothing lost)'], ['on-publish', 'on-publish'], ['no-ack', 'no-ack']], 'on-confirm')),
  field('Prefetch count', input('prefetch', { type: 'number', min: 1, placeholder: '1000' })),
  field('Delete after', input('delete-after', { placeholder: 'never, queue-length or a count' })),
  field('Reconnect delay (s)', input('reconnect-delay', { type: 'number', min: 0, step: 'any', placeholder: '5' }))) : null;

  const act = async (done, action) => {
    try {
      await action();
      toast(done);
      await refresh();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  };

  const table = dataTable({
    id: 'shovels', noun: ['shovel', 'shovels'], rowKey: (s) => `${s.vhost}/${s.name}`,
    empty: empty('No shovels', 'A shovel moves messages from a queue or exchange to another, on this broker or another one, and keeps doing so across restarts and lost connections.'),
    columns: [
      vhostColumn(),
      { key: 'name', label: 'Name', header: true },
      { key: 'state', label: 'State', cell: (s) => badge(s.state, STATE_TONES[s.state] || 'neutral') },
      { key: 'src', label: 'Source', cell: (s) => endCell(s.src) },
      { key: 'dest', label: 'Destination', cell: (s) => endCell(s.dest) },
      { key: 'reason', label: 'Reason', cell: (s) => (s.reason ? h('span', { class: 'shovel-reason' }, s.reason) : '') },
      {
        key: 'actions', label: '', sortable: false, className: 'row-actions',
        cell: (s) => h('span', { class: 'row-buttons' },
          button('Restart', () => act(`Shovel “${s.name}” restarted.`,
            () => del(path`/shovels/vhost/${s.vhost}/${s.name}/restart`)),
          { small: true, kind: 'ghost', 'aria-label': `Restart shovel ${s.name}` }),
          editable ? button('Delete', async () => {
            const ok = await confirmDialog({ title: `Delete shovel ${s.name}?`, message: 'It stops now; messages not yet moved stay where they are.', confirmLabel: 'Delete shovel', danger: true });
            if (ok) await act(`Shovel “${s.name}” deleted.`, () => del(path`/parameters/shovel/${s.vhost}/${s.name}`));
          }, { small: true, kind: 'ghost', 'aria-label': `Delete shovel ${s.name}` }) : null),
      },
    ],
  });
  const refresh = async () => table.update(await load());
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Shovels', kicker: 'Admin' }), card({}, table.el),
    shovelForm ? card({ title: 'Add or replace a shovel' }, shovelForm)
      : h('p', { class: 'muted' }, 'Adding and deleting shovels needs the policymaker or administrator tag.'));
  await refresh();
  return { el, refresh };
}
