// Connections (list, a connection's page, closing one with a reason) and channels.

import { del, get, path } from '../api.js';
import { fill, h } from '../dom.js';
import { byteRate, bytes, dateTime, duration, num, rate, rateOf } from '../format.js';
import { links } from '../links.js';
import { dataTable } from '../table.js';
import {
  badge, button, card, confirmDialog, empty, fieldTable, keyValues, pageHeader, stat, stats, toast,
} from '../ui.js';
import { vhostColumn } from './queues.js';

function client(c) {
  const p = c.client_properties || {};
  return [p.product, p.version].filter(Boolean).join(' ') || '–';
}

function displayName(c) {
  return c.user_provided_name || c.client_properties?.connection_name || c.name;
}

export async function mountList() {
  const table = dataTable({
    id: 'connections', noun: ['connection', 'connections'], rowKey: (c) => c.name,
    filterValue: (c) => `${displayName(c)} ${c.name} ${c.user}`,
    empty: empty('No connections', 'No client is connected to the virtual hosts you can see.'),
    columns: [
      vhostColumn(),
      {
        key: 'name', label: 'Name', header: true, value: displayName,
        cell: (c) => h('div', { class: 'cell-stack nowrap' }, h('a', { href: links.connection(c.name) }, displayName(c)),
          displayName(c) !== c.name ? h('span', { class: 'muted small', title: c.name }, `from ${c.peer_host}:${c.peer_port}`) : null),
      },
      { key: 'user', label: 'User' },
      {
        key: 'client', label: 'Client', value: client,
        cell: (c) => h('div', { class: 'cell-stack' }, c.client_properties?.product || '–',
          c.client_properties?.version ? h('span', { class: 'muted small' }, c.client_properties.version) : null),
      },
      {
        key: 'state', label: 'State',
        cell: (c) => h('span', { class: 'badges' }, badge(c.state, c.state === 'running' ? 'ok' : 'warn'),
          c.ssl ? badge(c.ssl_protocol || 'TLS', 'info', 'TLS') : null,
          isStream(c) ? badge('stream', 'info', 'RabbitMQ stream protocol') : null),
      },
      { key: 'channels', label: 'Channels', numeric: true, cell: (c) => (isStream(c) ? '–' : num(c.channels)) },
      { key: 'recv', label: 'From client', numeric: true, value: (c) => rateOf(c, 'recv_oct') ?? 0, cell: (c) => byteRate(rateOf(c, 'recv_oct') ?? 0) },
      { key: 'send', label: 'To client', numeric: true, value: (c) => rateOf(c, 'send_oct') ?? 0, cell: (c) => byteRate(rateOf(c, 'send_oct') ?? 0) },
      {
        key: 'connected_at', label: 'Connected', numeric: true,
        cell: (c) => h('span', { title: dateTime(c.connected_at) }, c.connected_at ? `${duration(Date.now() - c.connected_at)} ago` : '–'),
      },
    ],
  });
  const refresh = async () => table.update(await get('/connections'));
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Connections', kicker: 'Clients' }), card({}, table.el));
  await refresh();
  return { el, refresh };
}

function isStream(c) {
  return c.protocol === 'stream';
}

export async function closeConnection(name, label, stream = false) {
  const reason = await confirmDialog({
    title: `Close connection ${label}?`,
    message: stream ? 'The broker closes the socket (the stream protocol has no reason to send); the reason goes to its log.'
      : 'The client receives connection.close (320 CONNECTION_FORCED) with this reason.',
    confirmLabel: 'Close connection', danger: true,
    input: { label: 'Reason', value: 'Closed via the management UI' },
  });
  if (reason === null) return false;
  try {
    await del(path`/connections/${name}`, { headers: { 'X-Reason': reason || 'Closed via the management UI' } });
    toast(`Connection ${label} closed.`);
    return true;
  } catch (exc) {
    toast(exc.message, 'error');
    return false;
  }
}

export async function mountConnection([name]) {
  const url = path`/connections/${name}`;
  let c = await get(url);
  const headerHolder = h('div');
  const tiles = h('div');
  const props = h('div');
  const channelsBody = h('div');

  async function refresh() {
    let channels;
    let publishers = [];
    let consumers = [];
    try {
      [c, channels] = await Promise.all([get(url), get(`${url}/channels`)]);
      if (isStream(c)) {
        const streamUrl = path`/stream/connections/${c.vhost}/${name}`;
        [publishers, consumers] = await Promise.all([get(`${streamUrl}/publishers`), get(`${streamUrl}/consumers`)]);
      }
    } catch (exc) {
      if (exc.status === 404) {
        fill(headerHolder, pageHeader({ title: displayName(c), kicker: 'Connection', back: { href: links.connections(), label: 'Connections' },
          badges: [badge('closed', 'warn')] }));
        return;
      }
      throw exc;
    }
    const label = displayName(c);
    fill(headerHolder, pageHeader({
      title: label, kicker: 'Connection', back: { href: links.connections(), label: 'Connections' },
      badges: [badge(`user ${c.user}`, 'accent'), badge(`vhost ${c.vhost}`, 'accent'), badge(c.state, c.state === 'running' ? 'ok' : 'warn'),
        c.ssl ? badge(c.ssl_protocol || 'TLS', 'ok') : null].filter(Boolean),
      actions: [button('Close connection', async () => {
        if (await closeConnection(name, label, isStream(c))) location.hash = links.connections();
      }, { kind: 'danger' })],
    }));
    fill(tiles, stats([
      isStream(c) ? stat('Publishers', num(publishers.length), { key: 'publishers' }) : stat('Channels', num(c.channels), { key: 'channels' }),
      isStream(c) ? stat('Consumers', num(consumers.length), { key: 'consumers' }) : null,
      stat('From client', byteRate(rateOf(c, 'recv_oct') ?? 0), { hint: `${bytes(c.recv_oct)} in total` }),
      stat('To client', byteRate(rateOf(c, 'send_oct') ?? 0), { hint: `${bytes(c.send_oct)} in total` }),
      stat('Heartbeat', c.timeout ? `${c.timeout} s` : 'off'),
    ]));
    fill(props, h('div', { class: 'grid-2 grid-top' },
      card({ title: 'Connection' }, keyValues([
        ['Name', c.name], ['Client address', `${c.peer_host}:${c.peer_port}`], ['Broker address', `${c.host}:${c.port}`],
        ['Protocol', c.protocol], c.auth_mechanism && ['Authentication', c.auth_mechanism], ['User', c.user], ['Virtual host', c.vhost],
        ['Channel max', num(c.channel_max)], ['Frame max', bytes(c.frame_max)], ['Connected at', dateTime(c.connected_at)],
        c.ssl && ['TLS', `${c.ssl_protocol || ''} ${c.ssl_cipher || ''}`.trim()],
        c.peer_cert_subject && ['Client certificate', c.peer_cert_subject],
      ])),
      card({ title: 'Client properties' }, fieldTable(c.client_properties))));
    if (isStream(c)) {
      fill(channelsBody, streamTables(publishers, consumers));
    } else {
      fill(channelsBody, channels.length ? channelTable(channels) : empty('No channels', 'This connection has no open channel.'));
    }
  }

  await refresh();
  const el = h('div', { class: 'page' }, headerHolder, tiles, props,
    card({ title: isStream(c) ? 'Publishers and consumers' : 'Channels' }, channelsBody));
  return { el, refresh };
}

// A stream-protocol connection's publishers and subscriptions (/api/stream/connections/...).
function streamTables(publishers, consumers) {
  const queueLink = (row) => h('a', { href: links.queue(row.queue.vhost, row.queue.name) }, row.queue.name);
  const table = (id, heads, rows, cells) => h('div', { class: 'table-wrap' }, h('table', { class: 'table', id },
    h('thead', {}, h('tr', {}, heads.map((t, i) => h('th', i > 1 ? { class: 'num' } : {}, t)))),
    h('tbody', {}, rows.map((row) => h('tr', {}, cells(row).map((v, i) => h('td', i > 1 ? { class: 'num' } : {}, v)))))));
  return h('div', {},
    publishers.length ? table('stream-publishers', ['Stream', 'Reference', 'Publisher id', 'Published', 'Confirmed', 'Errored'], publishers,
      (p) => [queueLink(p), p.reference || `#${p.publisher_id}`, num(p.publisher_id), num(p.published), num(p.confirmed), num(p.errored)])
      : empty('No publishers', 'This connection has declared no publisher.'),
    consumers.length ? table('stream-consumers', ['Stream', 'Subscription', 'Credits', 'Consumed', 'Offset', 'Lag'], consumers,
      (s) => [queueLink(s), h('span', { class: 'mono' }, `stream.subid-${s.subscription_id}`), num(s.credits), num(s.consumed), num(s.offset), num(s.offset_lag)])
      : empty('No consumers', 'This connection has no subscription.'));
}

function mode(ch) {
  return [ch.confirm ? badge('C', 'info', 'Publisher confirms') : null, ch.transactional ? badge('T', 'info', 'Transactional') : null].filter(Boolean);
}

function channelTable(channels) {
  return h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
    h('thead', {}, h('tr', {}, ['Channel', 'Mode', 'Prefetch', 'Unacked', 'Consumers', 'Publish', 'Deliver/get', 'Ack']
      .map((t, i) => h('th', { scope: 'col', class: i > 1 ? 'num' : null }, t)))),
    h('tbody', {}, channels.map((ch) => h('tr', {},
      h('td', {}, String(ch.number ?? ch.name)), h('td', {}, h('span', { class: 'badges' }, mode(ch))),
      h('td', { class: 'num' }, num(ch.prefetch_count)), h('td', { class: 'num' }, num(ch.messages_unacknowledged)),
      h('td', { class: 'num' }, num(ch.consumer_count)),
      h('td', { class: 'num' }, rate(rateOf(ch.message_stats, 'publish') ?? 0)),
      h('td', { class: 'num' }, rate(rateOf(ch.message_stats, 'deliver_get') ?? 0)),
      h('td', { class: 'num' }, rate(rateOf(ch.message_stats, 'ack') ?? 0)))))));
}

export async function mountChannels() {
  let names = new Map(); // connection name -> the name its client gave it
  const channelLabel = (ch) => {
    const conn = ch.connection_details?.name;
    const given = names.get(conn);
    return given ? `${given} (${ch.number})` : ch.name;
  };
  const table = dataTable({
    id: 'channels', noun: ['channel', 'channels'], rowKey: (ch) => ch.name,
    filterValue: (ch) => `${channelLabel(ch)} ${ch.name} ${ch.user}`,
    empty: empty('No channels', 'No client has a channel open in the virtual hosts you can see.'),
    columns: [
      vhostColumn(),
      {
        key: 'name', label: 'Channel', header: true, value: channelLabel,
        cell: (ch) => h('div', { class: 'cell-stack' },
          h('a', { href: links.connection(ch.connection_details?.name || '') }, channelLabel(ch)),
          channelLabel(ch) !== ch.name ? h('span', { class: 'muted small' }, ch.name) : null),
      },
      { key: 'user', label: 'User' },
      { key: 'mode', label: 'Mode', value: (ch) => `${ch.confirm ? 'C' : ''}${ch.transactional ? 'T' : ''}`, cell: (ch) => h('span', { class: 'badges' }, mode(ch)) },
      { key: 'prefetch_count', label: 'Prefetch', numeric: true, cell: (ch) => num(ch.prefetch_count) },
      { key: 'messages_unacknowledged', label: 'Unacked', numeric: true, cell: (ch) => num(ch.messages_unacknowledged) },
      { key: 'messages_unconfirmed', label: 'Unconfirmed', numeric: true, cell: (ch) => num(ch.messages_unconfirmed) },
      { key: 'consumer_count', label: 'Consumers', numeric: true, cell: (ch) => num(ch.consumer_count) },
      { key: 'publish', label: 'Publish', numeric: true, value: (ch) => rateOf(ch.message_stats, 'publish') ?? 0, cell: (ch) => rate(rateOf(ch.message_stats, 'publish') ?? 0) },
      { key: 'deliver', label: 'Deliver/get', numeric: true, value: (ch) => rateOf(ch.message_stats, 'deliver_get') ?? 0, cell: (ch) => rate(rateOf(ch.message_stats, 'deliver_get') ?? 0) },
      { key: 'ack', label: 'Ack', numeric: true, value: (ch) => rateOf(ch.message_stats, 'ack') ?? 0, cell: (ch) => rate(rateOf(ch.message_stats, 'ack') ?? 0) },
    ],
  });
  const refresh = async () => {
    const [channels, connections] = await Promise.all([
      get('/channels'), get('/connections?columns=name,user_provided_name,client_properties'),
    ]);
    names = new Map(connections.map((c) => [c.name, displayName(c)]).filter(([name, given]) => given !== name));
    table.update(channels);
  };
  const el = h('div', { class: 'page' }, pageHeader({ title: 'Channels', kicker: 'Clients' }), card({}, table.el));
  await refresh();
  return { el, refresh };
}
