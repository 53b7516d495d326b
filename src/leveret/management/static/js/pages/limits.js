// Virtual host limits (max-connections, max-queues) and user limits (max-connections,
// max-channels): one editor used on a vhost's page, a user's page (one target) and the
// Admin > Limits page (every target, as RabbitMQ's UI has it).

import { del, get, path, put } from '../api.js';
import { fill, h } from '../dom.js';
import { num } from '../format.js';
import { links } from '../links.js';
import { vhostNames } from '../state.js';
import {
  button, card, confirmDialog, empty, field, form, input, pageHeader, select, showMessage, toast, values,
} from '../ui.js';

export const LIMIT_KINDS = {
  vhost: {
    api: '/vhost-limits', key: 'vhost', noun: 'Virtual host', title: 'Virtual host limits',
    link: (name) => links.vhost(name),
    limits: [
      ['max-connections', 'Connections open to the virtual host at once'],
      ['max-queues', 'Queues in the virtual host'],
    ],
  },
  user: {
    api: '/user-limits', key: 'user', noun: 'User', title: 'User limits',
    link: (name) => links.user(name),
    limits: [
      ['max-connections', 'Connections the user has open at once'],
      ['max-channels', 'Channels across all of the user’s connections'],
    ],
  },
};

/** A limit's value in words: RabbitMQ reads a negative value as "no limit". */
export function limitValue(value) {
  if (value < 0) return `no limit (${value})`;
  return num(value);
}

/**
 * The set limits of one target (``target``: a vhost or user name) or of all of them, in a
 * table with a Clear button per limit, and a form to set one. API errors show in the form
 * (setting) or above the table (clearing).
 * ``targets()`` lists the names offered when there is no fixed target.
 */
export function limitsEditor(kindName, { target, targets } = {}) {
  const kind = LIMIT_KINDS[kindName];
  const names = kind.limits.map(([name]) => name);
  const listing = h('div');
  const message = h('div', { class: 'form-message action-message', role: 'status', 'aria-live': 'polite' });
  const apiPath = target === undefined ? kind.api : kind.api + path`/${target}`;

  async function clear(owner, name) {
    const ok = await confirmDialog({
      title: `Clear ${name} of ${owner}?`, message: 'Without it there is no such limit.', confirmLabel: 'Clear limit', danger: true,
    });
    if (!ok) return;
    try {
      await del(kind.api + path`/${owner}/${name}`);
      toast(`Limit ${name} of ${owner} cleared.`);
      fill(message);
      await refresh();
    } catch (exc) {
      showMessage(message, 'error', exc.message);
    }
  }

  const targetSelect = target === undefined
    ? select(kind.key, targets(), targets()[0]) : null;
  const setForm = form({
    submitLabel: 'Set limit', label: `Set a ${kind.noun.toLowerCase()} limit`,
    onSubmit: async (f) => {
      const v = values(f);
      const owner = target ?? v[kind.key];
      if (!owner) throw new Error(`Choose a ${kind.noun.toLowerCase()}.`);
      // The number goes as typed: the API says what it thinks of it (RabbitMQ wants an integer).
      const value = v.value.trim() === '' || Number.isNaN(Number(v.value)) ? v.value : Number(v.value);
      await put(kind.api + path`/${owner}/${v.limit}`, { value });
      toast(`Limit ${v.limit} of ${owner} set.`);
      fill(message);
      await refresh();
      return `${v.limit} of ${owner} is ${limitValue(value)}.`;
    },
  },
  targetSelect ? field(kind.noun, targetSelect) : null,
  field('Limit', select('limit', kind.limits.map(([name]) => [name, name]), names[0])),
  field('Value', input('value', { required: true, inputmode: 'numeric', placeholder: '100', class: 'mono' }),
    { hint: 'A whole number; negative means no limit.' }));

  async function refresh() {
    const rows = (await get(apiPath)).flatMap((entry) => Object.entries(entry.value || {})
      .map(([name, value]) => ({ owner: entry[kind.key], name, value })));
    if (targetSelect) {
      const chosen = targetSelect.value;
      fill(targetSelect, targets().map((n) => h('option', { value: n, selected: n === chosen }, n)));
    }
    const help = Object.fromEntries(kind.limits);
    fill(listing, rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: `${kindName}-limits` },
        h('thead', {}, h('tr', {}, [target === undefined ? kind.noun : null, 'Limit', 'Value', ''].filter((t) => t !== null)
          .map((t) => h('th', { scope: 'col', class: t === 'Value' ? 'num' : null }, t)))),
        h('tbody', {}, rows.map((r) => h('tr', { dataset: { owner: r.owner, limit: r.name } },
          target === undefined ? h('th', { scope: 'row' }, h('a', { href: kind.link(r.owner) }, r.owner)) : null,
          h(target === undefined ? 'td' : 'th', target === undefined ? {} : { scope: 'row' },
            h('code', {}, r.name), h('div', { class: 'muted small' }, help[r.name] || '')),
          h('td', { class: 'num' }, limitValue(r.value)),
          h('td', { class: 'row-actions' }, button('Clear', () => clear(r.owner, r.name), {
            small: true, kind: 'ghost', 'aria-label': `Clear ${r.name} of ${r.owner}`,
          })))))))
      : empty('No limits', target === undefined
        ? `No ${kind.noun.toLowerCase()} has a limit.` : `${target} has no limits: ${names.join(' and ')} are unlimited.`));
  }

  const el = h('div', { class: 'limits' }, message, listing,
    h('div', { class: 'subform' }, h('h3', {}, 'Set limit'), setForm));
  return { el, refresh };
}

/** Admin > Limits: every vhost's and user's limits. */
export async function mountLimits() {
  let users = [];
  const vhosts = limitsEditor('vhost', { targets: vhostNames });
  const userLimits = limitsEditor('user', { targets: () => users });
  async function refresh() {
    users = (await get('/users?columns=name')).map((u) => u.name);
    await Promise.all([vhosts.refresh(), userLimits.refresh()]);
  }
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Limits', kicker: 'Admin' }),
    h('p', { class: 'lead' }, 'Limits cap what a virtual host or a user may use. A client over a limit is refused: a new connection or channel with 530 NOT_ALLOWED, a queue declaration with 406 PRECONDITION_FAILED.'),
    h('div', { class: 'grid-2 grid-top' },
      card({ title: LIMIT_KINDS.vhost.title }, vhosts.el),
      card({ title: LIMIT_KINDS.user.title }, userLimits.el)));
  await refresh();
  return { el, refresh };
}
