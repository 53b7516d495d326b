// Administration: users (tags, password, permissions, topic permissions, limits), virtual
// hosts (and their limits), policies, and definitions export / import.

import { del, get, path, post, put } from '../api.js';
import { fill, h } from '../dom.js';
import { num, rate, rateOf } from '../format.js';
import { links } from '../links.js';
import { refreshSession, session, vhostNames } from '../state.js';
import { dataTable } from '../table.js';
import {
  badge, button, card, checkbox, confirmDialog, empty, field, fieldsEditor, fieldTable, form, input,
  keyValues, pageHeader, parseFields, select, showMessage, textarea, toast, values,
} from '../ui.js';
import { limitsEditor } from './limits.js';
import { vhostColumn } from './queues.js';

const KNOWN_TAGS = [
  ['administrator', 'Everything, including users, vhosts and definitions'],
  ['monitoring', 'Sees every vhost, connection and the node'],
  ['policymaker', 'May change policies in its vhosts'],
  ['management', 'May use the management UI and API for its vhosts'],
  ['impersonator', 'May publish with another user_id'],
];

function tagBadges(tags) {
  return tags.length ? h('span', { class: 'badges' }, tags.map((t) => badge(t, t === 'administrator' ? 'accent' : 'neutral')))
    : h('span', { class: 'muted' }, 'no tags');
}

/** Checkboxes for the known tags plus a text field for others; read() gives the list. */
function tagPicker(current = []) {
  const boxes = KNOWN_TAGS.map(([tag, help]) => {
    const box = checkbox(`tag-${tag}`, current.includes(tag), { value: tag });
    return { tag, box, el: field(tag, box, { inline: true, hint: help }) };
  });
  const other = input('other-tags', { value: current.filter((t) => !KNOWN_TAGS.some(([k]) => k === t)).join(', '), placeholder: 'comma-separated' });
  return {
    el: h('fieldset', { class: 'tag-picker' }, h('legend', {}, 'Tags'), h('div', { class: 'tag-grid' }, boxes.map((b) => b.el)),
      field('Other tags', other)),
    read: () => [...boxes.filter((b) => b.box.checked).map((b) => b.tag),
      ...other.value.split(',').map((t) => t.trim()).filter(Boolean)],
  };
}

// -- users -------------------------------------------------------------------------------------

export async function mountUsers() {
  let permissions = [];
  const table = dataTable({
    id: 'users', noun: ['user', 'users'], rowKey: (u) => u.name,
    empty: empty('No users', 'Add one below.'),
    columns: [
      { key: 'name', label: 'Name', header: true, cell: (u) => h('a', { href: links.user(u.name) }, u.name) },
      { key: 'tags', label: 'Tags', value: (u) => u.tags.join(','), cell: (u) => tagBadges(u.tags) },
      {
        key: 'vhosts', label: 'Can access virtual hosts', value: (u) => permissions.filter((p) => p.user === u.name).map((p) => p.vhost).join(', '),
        cell: (u) => {
          const vhosts = permissions.filter((p) => p.user === u.name).map((p) => p.vhost);
          return vhosts.length ? vhosts.join(', ') : h('span', { class: 'muted' }, 'none yet');
        },
      },
      { key: 'password', label: 'Password', value: (u) => (u.password_hash ? 'set' : 'none'), cell: (u) => (u.password_hash ? 'set' : badge('none: cannot log in', 'warn')) },
    ],
  });
  async function refresh() {
    const [users, perms] = await Promise.all([get('/users'), get('/permissions')]);
    permissions = perms;
    table.update(users);
  }
  const name = input('name', { required: true, autocomplete: 'off', placeholder: 'alice' });
  const password = input('password', { type: 'password', autocomplete: 'new-password' });
  const tags = tagPicker([]);
  const addForm = form({
    submitLabel: 'Add user', label: 'Add a user',
    onSubmit: async () => {
      const user = name.value.trim();
      const body = { tags: tags.read().join(',') };
      if (password.value) body.password = password.value;
      await put(path`/users/${user}`, body);
      toast(`User “${user}” added.`);
      name.value = '';
      password.value = '';
      await refresh();
      const area = addForm.querySelector('.form-message');
      fill(area, h('span', { class: 'msg msg-success' }, `User ${user} added. `,
        h('a', { href: links.user(user) }, `Set ${user}’s permissions →`)));
      return null;
    },
  }, field('User name', name), field('Password', password, { hint: 'Leave empty for a user that cannot log in with a password.' }), tags.el);
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Users', kicker: 'Admin' }), card({}, table.el),
    card({ title: 'Add a user' }, addForm));
  await refresh();
  return { el, refresh };
}

export async function mountUser([name]) {
  const url = path`/users/${name}`;
  let user = await get(url);
  const headerHolder = h('div');
  const permsBody = h('div');

  async function remove() {
    const self = session.user?.name === name;
    const ok = await confirmDialog({
      title: `Delete user ${name}?`,
      message: self ? 'This is you: you will be logged out.' : 'Their connections stay open until they close; new logins fail.',
      confirmLabel: 'Delete user', danger: true,
    });
    if (!ok) return;
    try {
      await del(url);
      toast(`User “${name}” deleted.`);
      location.hash = links.users();
    } catch (exc) {
      toast(exc.message, 'error');
    }
  }

  const permForm = form({
    submitLabel: 'Set permission', label: 'Set permission',
    onSubmit: async (f) => {
      const v = values(f);
      await put(path`/permissions/${v.vhost}/${name}`, { configure: v.configure, write: v.write, read: v.read });
      toast(`Permissions of ${name} in ${v.vhost} set.`);
      await refresh();
      return `Permissions in ${v.vhost} set.`;
    },
  },
  field('Virtual host', select('vhost', vhostNames(), vhostNames()[0])),
  field('Configure regexp', input('configure', { value: '.*', class: 'mono' }), { hint: 'Declare and delete queues and exchanges' }),
  field('Write regexp', input('write', { value: '.*', class: 'mono' }), { hint: 'Publish, bind to' }),
  field('Read regexp', input('read', { value: '.*', class: 'mono' }), { hint: 'Consume, get, bind from' }));

  const topicBody = h('div');
  const topicMessage = h('div', { class: 'form-message action-message', role: 'status', 'aria-live': 'polite' });
  const topicForm = form({
    submitLabel: 'Set topic permission', label: 'Set topic permission',
    onSubmit: async (f) => {
      const v = values(f);
      await put(path`/topic-permissions/${v.vhost}/${name}`, { exchange: v.exchange.trim(), write: v.write, read: v.read });
      toast(`Topic permission of ${name} on ${v.exchange.trim()} in ${v.vhost} set.`);
      fill(topicMessage);
      await refresh();
      return `Topic permission on ${v.exchange.trim()} in ${v.vhost} set.`;
    },
  },
  field('Virtual host', select('vhost', vhostNames(), vhostNames()[0])),
  field('Exchange', input('exchange', { value: 'amq.topic', required: true }), { hint: 'A topic exchange' }),
  field('Write regexp', input('write', { value: '.*', class: 'mono' }), { hint: 'Routing keys it may publish with' }),
  field('Read regexp', input('read', { value: '.*', class: 'mono' }), { hint: 'Routing keys it may bind queues with' }));
  const limits = limitsEditor('user', { target: name });

  async function clearTopic(t) {
    const ok = await confirmDialog({
      title: `Clear ${name}’s topic permission on ${t.exchange} in ${t.vhost}?`,
      message: 'Without one, every routing key is allowed on that exchange.', confirmLabel: 'Clear', danger: true,
    });
    if (!ok) return;
    try {
      // ?exchange= clears that exchange's only (leveret; RabbitMQ 3.10 clears the vhost's all).
      await del(`${path`/topic-permissions/${t.vhost}/${name}`}?exchange=${encodeURIComponent(t.exchange)}`);
      toast('Topic permission cleared.');
      fill(topicMessage);
      await refresh();
    } catch (exc) {
      showMessage(topicMessage, 'error', exc.message);
    }
  }

  const tags = tagPicker(user.tags);
  const newPassword = input('password', { type: 'password', autocomplete: 'new-password' });
  const updateForm = form({
    submitLabel: 'Update user', label: 'Update user',
    onSubmit: async () => {
      const body = { tags: tags.read().join(',') };
      if (newPassword.value) body.password = newPassword.value;
      await put(url, body);
      newPassword.value = '';
      toast(`User “${name}” updated.`);
      await refresh();
      return 'Saved.';
    },
  }, tags.el, field('New password', newPassword, { hint: 'Leave empty to keep the current password.' }));

  async function refresh() {
    let perms;
    let topics;
    [user, perms, topics] = await Promise.all([get(url), get(`${url}/permissions`), get(`${url}/topic-permissions`),
      limits.refresh()]);
    fill(headerHolder, pageHeader({
      title: name, kicker: 'User', back: { href: links.users(), label: 'Users' },
      badges: [tagBadges(user.tags)],
      actions: [button('Delete user', remove, { kind: 'danger' })],
    }));
    fill(permsBody, perms.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'permissions' },
        h('thead', {}, h('tr', {}, ['Virtual host', 'Configure', 'Write', 'Read', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, perms.map((p) => h('tr', { dataset: { vhost: p.vhost } },
          h('th', { scope: 'row' }, p.vhost), h('td', {}, h('code', {}, p.configure)), h('td', {}, h('code', {}, p.write)),
          h('td', {}, h('code', {}, p.read)),
          h('td', { class: 'row-actions' }, button('Clear', async () => {
            const ok = await confirmDialog({ title: `Clear ${name}’s permissions in ${p.vhost}?`, confirmLabel: 'Clear', danger: true });
            if (!ok) return;
            try {
              await del(path`/permissions/${p.vhost}/${name}`);
              toast('Permissions cleared.');
              await refresh();
            } catch (exc) {
              toast(exc.message, 'error');
            }
          }, { small: true, kind: 'ghost', 'aria-label': `Clear permissions in ${p.vhost}` })))))))
      : empty('No permissions', `${name} cannot use any virtual host yet. Set a permission below.`));
    fill(topicBody, topics.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'topic-permissions' },
        h('thead', {}, h('tr', {}, ['Virtual host', 'Exchange', 'Write', 'Read', ''].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, topics.map((t) => h('tr', { dataset: { vhost: t.vhost, exchange: t.exchange } },
          h('th', { scope: 'row' }, h('a', { href: links.vhost(t.vhost) }, t.vhost)), h('td', {}, t.exchange),
          h('td', {}, h('code', {}, t.write)), h('td', {}, h('code', {}, t.read)),
          h('td', { class: 'row-actions' }, button('Clear', () => clearTopic(t), {
            small: true, kind: 'ghost', 'aria-label': `Clear topic permission on ${t.exchange} in ${t.vhost}`,
          })))))))
      : empty('No topic permissions', `${name} may use any routing key on topic exchanges it can write to or read from.`));
  }

  await refresh();
  const el = h('div', { class: 'page' }, headerHolder,
    card({ title: 'Permissions' }, permsBody, h('div', { class: 'subform' }, h('h3', {}, 'Set permission'), permForm)),
    card({ title: 'Topic permissions' }, topicMessage, topicBody,
      h('div', { class: 'subform' }, h('h3', {}, 'Set topic permission'), topicForm)),
    card({ title: 'Limits' }, limits.el),
    card({ title: 'Tags and password' }, updateForm));
  return { el, refresh };
}

// -- virtual hosts -------------------------------------------------------------------------------

export async function mountVhosts() {
  const table = dataTable({
    id: 'vhosts', noun: ['virtual host', 'virtual hosts'], rowKey: (v) => v.name,
    empty: empty('No virtual hosts', 'Add one below.'),
    columns: [
      { key: 'name', label: 'Name', header: true, cell: (v) => h('a', { href: links.vhost(v.name) }, v.name) },
      { key: 'description', label: 'Description' },
      { key: 'tags', label: 'Tags', value: (v) => (v.tags || []).join(','), cell: (v) => ((v.tags || []).length ? h('span', { class: 'badges' }, v.tags.map((t) => badge(t))) : '') },
      { key: 'messages_ready', label: 'Ready', numeric: true, cell: (v) => num(v.messages_ready ?? 0) },
      { key: 'messages_unacknowledged', label: 'Unacked', numeric: true, cell: (v) => num(v.messages_unacknowledged ?? 0) },
      { key: 'messages', label: 'Total', numeric: true, cell: (v) => num(v.messages ?? 0) },
      { key: 'publish', label: 'Publish', numeric: true, value: (v) => rateOf(v.message_stats, 'publish') ?? 0, cell: (v) => rate(rateOf(v.message_stats, 'publish') ?? 0) },
      { key: 'deliver', label: 'Deliver/get', numeric: true, value: (v) => rateOf(v.message_stats, 'deliver_get') ?? 0, cell: (v) => rate(rateOf(v.message_stats, 'deliver_get') ?? 0) },
      {
        key: 'actions', label: '', sortable: false, className: 'row-actions',
        cell: (v) => button('Delete', async () => {
          const ok = await confirmDialog({
            title: `Delete virtual host ${v.name}?`,
            message: `Every queue (${num(v.messages ?? 0)} messages), exchange, binding, policy and permission in it is deleted, and its connections are closed.`,
            confirmLabel: 'Delete virtual host', danger: true,
          });
          if (!ok) return;
          try {
            await del(path`/vhosts/${v.name}`);
            toast(`Virtual host “${v.name}” deleted.`);
            await refreshSession();
            await refresh();
          } catch (exc) {
            toast(exc.message, 'error');
          }
        }, { small: true, kind: 'ghost', 'aria-label': `Delete virtual host ${v.name}` }),
      },
    ],
  });
  const refresh = async () => table.update(await get('/vhosts'));
  const name = input('name', { required: true, placeholder: 'staging' });
  const addForm = form({
    submitLabel: 'Add virtual host', label: 'Add a virtual host',
    onSubmit: async (f) => {
      const v = values(f);
      const vhost = v.name.trim();
      // As in RabbitMQ, the API gives the creator full permissions in the new vhost.
      await put(path`/vhosts/${vhost}`, { description: v.description, tags: v.tags });
      toast(`Virtual host “${vhost}” added.`);
      name.value = '';
      await refreshSession();
      await refresh();
      return `Added; ${session.user.name} has full permissions in it, as its creator.`;
    },
  }, field('Name', name), field('Description', input('description')), field('Tags', input('tags', { placeholder: 'comma-separated' })));
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Virtual hosts', kicker: 'Admin' }), card({}, table.el),
    card({ title: 'Add a virtual host' }, addForm));
  await refresh();
  return { el, refresh };
}

/** A vhost's page: what is in it, who may use it, and its limits. */
export async function mountVhost([name]) {
  const url = path`/vhosts/${name}`;
  await get(url); // a 404 shows as the page's error
  const summary = h('div');
  const access = h('div');
  const limits = limitsEditor('vhost', { target: name });

  async function refresh() {
    const [vhost, queues, connections, perms, topics] = await Promise.all([
      get(url), get(`${path`/queues/${name}`}?columns=name`), get(`${url}/connections`),
      get(`${url}/permissions`), get(`${url}/topic-permissions`), limits.refresh()]);
    fill(summary, keyValues([
      ['Description', vhost.description],
      ['Tags', (vhost.tags || []).length ? h('span', { class: 'badges' }, vhost.tags.map((t) => badge(t))) : null],
      ['Queues', num(queues.length)],
      ['Connections', num(connections.length)],
      ['Messages', `${num(vhost.messages ?? 0)} (${num(vhost.messages_ready ?? 0)} ready, ${num(vhost.messages_unacknowledged ?? 0)} unacked)`],
    ]));
    const topicsOf = (user) => topics.filter((t) => t.user === user);
    fill(access, perms.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'vhost-permissions' },
        h('thead', {}, h('tr', {}, ['User', 'Configure', 'Write', 'Read', 'Topic permissions'].map((t) => h('th', { scope: 'col' }, t)))),
        h('tbody', {}, perms.map((p) => h('tr', { dataset: { user: p.user } },
          h('th', { scope: 'row' }, h('a', { href: links.user(p.user) }, p.user)),
          h('td', {}, h('code', {}, p.configure)), h('td', {}, h('code', {}, p.write)), h('td', {}, h('code', {}, p.read)),
          h('td', {}, topicsOf(p.user).length
            ? topicsOf(p.user).map((t) => h('div', {}, `${t.exchange}: write `, h('code', {}, t.write), ' read ', h('code', {}, t.read)))
            : h('span', { class: 'muted' }, 'none')))))))
      : empty('No permissions', 'No user may use this virtual host. Set permissions on a user’s page.'));
  }

  await refresh();
  const el = h('div', { class: 'page' },
    pageHeader({ title: name, kicker: 'Virtual host', back: { href: links.vhosts(), label: 'Virtual hosts' } }),
    h('div', { class: 'grid-2 grid-top' }, card({ title: 'Details' }, summary), card({ title: 'Limits' }, limits.el)),
    card({ title: 'Permissions' }, access));
  return { el, refresh };
}

// -- policies ------------------------------------------------------------------------------------

const POLICY_KEYS = [
  ['message-ttl', '60000', 'Messages expire after this many milliseconds'],
  ['expires', '1800000', 'Queues are deleted after this many idle milliseconds'],
  ['max-length', '10000', 'At most this many ready messages'],
  ['max-length-bytes', '104857600', 'At most this many bytes of ready messages'],
  ['overflow', '"reject-publish"', 'drop-head, reject-publish or reject-publish-dlx'],
  ['dead-letter-exchange', '"dlx"', 'Where expired or rejected messages go'],
  ['dead-letter-routing-key', '"dead"', 'Routing key for dead-lettered messages'],
  ['delivery-limit', '5', 'Dead-letter a message after this many redeliveries'],
  ['alternate-exchange', '"unrouted"', 'For exchanges: where unroutable messages go'],
];

export async function mountPolicies() {
  const canEdit = (session.user?.tags || []).some((t) => t === 'administrator' || t === 'policymaker');
  const defs = fieldsEditor('definition', { suggestions: POLICY_KEYS, rows: 3, placeholder: 'message-ttl = 60000' });
  const policyForm = canEdit ? form({
    submitLabel: 'Save policy', label: 'Add or update a policy',
    onSubmit: async (f) => {
      const v = values(f);
      const definition = parseFields(defs.area.value);
      if (!Object.keys(definition).length) throw new Error('A policy needs at least one key = value in its definition.');
      await put(path`/policies/${v.vhost}/${v.name.trim()}`, {
        pattern: v.pattern, 'apply-to': v['apply-to'], priority: Number(v.priority || 0), definition,
      });
      toast(`Policy “${v.name.trim()}” saved.`);
      await refresh();
      return 'Policy saved; it applies to matching queues and exchanges now.';
    },
  },
  field('Virtual host', select('vhost', vhostNames(), vhostNames()[0])), field('Name', input('name', { required: true, placeholder: 'ttl-for-email' })),
  field('Pattern (regexp on names)', input('pattern', { required: true, placeholder: '^email\\.', class: 'mono' })),
  field('Apply to', select('apply-to', [['all', 'Queues and exchanges'], ['queues', 'Queues'], ['exchanges', 'Exchanges']], 'all')),
  field('Priority', input('priority', { type: 'number', value: 0 })),
  field('Definition', h('div', {}, defs.area, defs.chips), { wide: true })) : null;

  const edit = (p) => {
    policyForm.elements.vhost.value = p.vhost;
    policyForm.elements.name.value = p.name;
    policyForm.elements.pattern.value = p.pattern;
    policyForm.elements['apply-to'].value = p['apply-to'];
    policyForm.elements.priority.value = p.priority;
    defs.area.value = Object.entries(p.definition).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join('\n');
    policyForm.scrollIntoView({ behavior: 'smooth', block: 'center' });
    policyForm.elements.pattern.focus();
  };

  const table = dataTable({
    id: 'policies', noun: ['policy', 'policies'], rowKey: (p) => `${p.vhost}/${p.name}`,
    empty: empty('No policies', 'Policies set queue and exchange options (TTL, length limits, dead-lettering) by name pattern, without redeclaring anything.'),
    columns: [
      vhostColumn(),
      { key: 'name', label: 'Name', header: true },
      { key: 'pattern', label: 'Pattern', cell: (p) => h('code', {}, p.pattern) },
      { key: 'apply-to', label: 'Apply to' },
      { key: 'priority', label: 'Priority', numeric: true },
      { key: 'definition', label: 'Definition', sortable: false, cell: (p) => fieldTable(p.definition) },
      {
        key: 'actions', label: '', sortable: false, className: 'row-actions', hideWhen: () => !canEdit,
        cell: (p) => h('span', { class: 'row-buttons' },
          button('Edit', () => edit(p), { small: true, kind: 'ghost', 'aria-label': `Edit policy ${p.name}` }),
          button('Delete', async () => {
            const ok = await confirmDialog({ title: `Delete policy ${p.name}?`, message: 'Matching queues and exchanges lose its settings now.', confirmLabel: 'Delete policy', danger: true });
            if (!ok) return;
            try {
              await del(path`/policies/${p.vhost}/${p.name}`);
              toast(`Policy “${p.name}” deleted.`);
              await refresh();
            } catch (exc) {
              toast(exc.message, 'error');
            }
          }, { small: true, kind: 'ghost', 'aria-label': `Delete policy ${p.name}` })),
      },
    ],
  });
  const refresh = async () => table.update(await get('/policies'));
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Policies', kicker: 'Admin' }), card({}, table.el),
    policyForm ? card({ title: 'Add or update a policy' }, policyForm)
      : h('p', { class: 'muted' }, 'Changing policies needs the policymaker or administrator tag.'));
  await refresh();
  return { el, refresh };
}

// -- definitions -------------------------------------------------------------------------------

const SECTIONS = ['users', 'vhosts', 'permissions', 'policies', 'queues', 'exchanges', 'bindings'];

function summary(defs) {
  return SECTIONS.filter((s) => Array.isArray(defs[s])).map((s) => `${num(defs[s].length)} ${s}`).join(', ');
}

export async function mountDefinitions() {
  const scope = () => [['', 'The whole broker'], ...vhostNames().map((v) => [v, `Virtual host ${v}`])];
  const exportScope = select('export-scope', scope(), '');
  const exportMessage = h('div', { class: 'form-message', role: 'status' });
  const preview = h('div');
  const download = async () => {
    try {
      const vhost = exportScope.value;
      const defs = await get(vhost ? path`/definitions/${vhost}` : '/definitions');
      const text = JSON.stringify(defs, null, 2);
      const blob = new Blob([text], { type: 'application/json' });
      const day = new Date().toISOString().slice(0, 10);
      const safe = vhost ? `-${vhost.replace(/[^A-Za-z0-9_.-]+/g, '_') || 'root'}` : '';
      const link = h('a', { href: URL.createObjectURL(blob), download: `leveret-definitions${safe}-${day}.json` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      showMessage(exportMessage, 'success', `Downloaded: ${summary(defs)}.`);
    } catch (exc) {
      showMessage(exportMessage, 'error', exc.message);
    }
  };

  const file = h('input', { type: 'file', name: 'file', accept: 'application/json,.json' });
  const pasted = textarea('pasted', { rows: 3, class: 'mono', placeholder: '{"queues": [...]}' });
  const importScope = select('import-scope', scope(), '');
  const importForm = form({
    submitLabel: 'Import', label: 'Import definitions',
    onSubmit: async () => {
      const chosen = file.files[0];
      if (!chosen && !pasted.value.trim()) throw new Error('Choose a definitions file (JSON) or paste one.');
      const source = chosen ? chosen.name : 'the pasted definitions';
      const text = chosen ? await chosen.text() : pasted.value;
      let defs;
      try {
        defs = JSON.parse(text);
      } catch (exc) {
        throw new Error(`${source} is not valid JSON: ${exc.message}`);
      }
      const vhost = importScope.value;
      await post(vhost ? path`/definitions/${vhost}` : '/definitions', text);
      await refreshSession();
      await refresh();
      toast('Definitions imported.');
      return `Imported ${source}: ${summary(defs) || 'nothing recognised'}.`;
    },
  }, field('Definitions file', file), field('Import into', importScope),
  field('Or paste JSON', pasted, { wide: true, hint: 'Used when no file is chosen.' }));

  async function refresh() {
    const defs = await get('/definitions');
    fill(preview, keyValues([
      ...SECTIONS.map((s) => [s[0].toUpperCase() + s.slice(1), num((defs[s] || []).length)]),
      ['Product', `${defs.product_name || 'leveret'} ${defs.product_version || ''}`],
    ]));
  }

  const el = h('div', { class: 'page' }, pageHeader({ title: 'Definitions', kicker: 'Admin' }),
    h('p', { class: 'lead' }, 'Definitions are the broker’s topology and access control (users, virtual hosts, permissions, policies, queues, exchanges and bindings) as JSON, in RabbitMQ’s format: export them as a backup or to copy a setup, import them here or into RabbitMQ.'),
    h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Export' },
        h('div', { class: 'form' }, h('div', { class: 'form-fields' }, field('Export', exportScope)),
          h('div', { class: 'form-actions' }, button('Download definitions', download, { kind: 'primary' }), exportMessage)),
        h('h3', { class: 'mini-title' }, 'The broker has now'), preview),
      card({ title: 'Import' }, importForm)));
  await refresh();
  return { el, refresh };
}
