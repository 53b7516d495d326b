// Publishing and reading messages, shared by the queue and exchange pages: the publish form,
// the get / peek form, and how a message is shown.

import { path, post, get } from './api.js';
import { fill, h } from './dom.js';
import { bytes } from './format.js';
import {
  badge, field, fieldsEditor, fieldTable, form, input, parseFields, select, showMessage, textarea,
} from './ui.js';

const PROPERTY_SUGGESTIONS = [
  ['content_type', 'application/json', 'MIME type of the payload'],
  ['correlation_id', 'abc-123', 'Correlates an RPC reply with its request'],
  ['message_id', 'msg-1', 'Application message id'],
  ['reply_to', 'replies', 'Queue the reply goes to'],
  ['expiration', '60000', 'Per-message TTL in milliseconds (a string)'],
  ['priority', '5', 'Priority (for priority queues)'],
  ['type', 'order.created', 'Application message type'],
  ['app_id', 'my-app', 'Application id'],
];

/**
 * The publish form. ``exchange`` is fixed; ``routingKey`` prefilled (and fixed when
 * ``lockRoutingKey``, as on a queue page publishing through the default exchange).
 */
export function publishForm({ vhost, exchange, routingKey = '', lockRoutingKey = false }) {
  const key = input('routing_key', { value: routingKey, readonly: lockRoutingKey, placeholder: 'routing key' });
  const mode = select('delivery_mode', [['2', 'Persistent (2)'], ['1', 'Transient (1)']], '2');
  const headers = fieldsEditor('headers', { placeholder: 'x-tenant = acme\nattempt = 1', rows: 2 });
  const props = fieldsEditor('properties', { placeholder: 'content_type = application/json', rows: 2, suggestions: PROPERTY_SUGGESTIONS });
  const payload = textarea('payload', { rows: 6, class: 'mono', placeholder: '{"hello": "world"}' });
  const encoding = select('payload_encoding', [['string', 'Text (UTF-8)'], ['base64', 'Base64']], 'string');
  return form({
    className: 'publish-form', submitLabel: 'Publish message', label: 'Publish a message',
    onSubmit: async () => {
      const properties = parseFields(props.area.value);
      properties.delivery_mode = Number(mode.value);
      const headerTable = parseFields(headers.area.value);
      if (Object.keys(headerTable).length) properties.headers = headerTable;
      const result = await post(path`/exchanges/${vhost}/${exchange || 'amq.default'}/publish`, {
        properties, routing_key: key.value, payload: payload.value, payload_encoding: encoding.value,
      });
      return result?.routed === false
        ? 'Published, but no queue is bound for this routing key: the message was dropped.'
        : 'Message published.';
    },
  },
  field(lockRoutingKey ? 'Routing key (the queue, via the default exchange)' : 'Routing key', key),
  field('Delivery mode', mode),
  field('Headers', h('div', {}, headers.area), { hint: 'One key = value a line; numbers and true/false keep their type.', wide: true }),
  field('Properties', h('div', {}, props.area, props.chips), { wide: true }),
  field('Payload', payload, { wide: true }),
  field('Payload encoding', encoding));
}

const ACK_MODES = [
  ['ack_requeue_true', 'Look, then requeue (nack)'],
  ['ack_requeue_false', 'Take them (ack)'],
  ['reject_requeue_true', 'Reject and requeue'],
  ['reject_requeue_false', 'Reject: drop or dead-letter'],
];

/** Get (RabbitMQ's, takes the messages then acks or returns them) and Peek (leveret's).
 * ``peekOnly``: a stream, which refuses basic.get; peek reads it from its first offset. */
export function readMessages({ vhost, queue, onChange, peekOnly = false }) {
  const count = input('count', { type: 'number', min: 1, max: 500, value: 5, inputmode: 'numeric' });
  const ackmode = select('ackmode', ACK_MODES, 'ack_requeue_true');
  const encoding = select('encoding', [['auto', 'Auto (text when UTF-8)'], ['base64', 'Base64']], 'auto');
  const truncate = input('truncate', { type: 'number', min: 0, value: 50000, inputmode: 'numeric' });
  const message = h('div', { class: 'form-message', role: 'status' });
  const results = h('div', { class: 'messages', 'aria-live': 'polite' });
  const run = async (kind, button) => {
    const n = Number(count.value || 1);
    if (!(n >= 1 && n <= 500)) {
      showMessage(message, 'error', 'Count must be between 1 and 500.');
      count.focus();
      return;
    }
    button.disabled = true;
    fill(message);
    try {
      let found;
      if (kind === 'peek') {
        found = await get(`${path`/queues/${vhost}/${queue}`}/peek?count=${n}&encoding=${encoding.value}&truncate=${Number(truncate.value) || 50000}`);
      } else {
        found = await post(path`/queues/${vhost}/${queue}/get`, {
          count: n, ackmode: ackmode.value, encoding: encoding.value, truncate: Number(truncate.value) || 50000,
        });
        onChange?.();
      }
      fill(results, found.length
        ? found.map((m, i) => messageCard(m, i, kind))
        : h('div', { class: 'empty empty-small' }, h('div', { class: 'empty-title' }, 'The queue has no ready messages.')));
      showMessage(message, 'success', kind === 'peek'
        ? `Peeked at ${found.length} message${found.length === 1 ? '' : 's'}; they stay in the queue as they were.`
        : `Got ${found.length} message${found.length === 1 ? '' : 's'} (${ACK_MODES.find(([m]) => m === ackmode.value)[1].toLowerCase()}).`);
    } catch (exc) {
      showMessage(message, 'error', exc.message);
    } finally {
      button.disabled = false;
    }
  };
  const peekButton = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => run('peek', peekButton) }, 'Peek');
  const getButton = h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => run('get', getButton) }, 'Get messages');
  const el = h('div', { class: 'read-messages' },
    h('form', { class: 'form', 'aria-label': 'Read messages', onsubmit: (e) => { e.preventDefault(); run('peek', peekButton); } },
      h('div', { class: 'form-fields' },
        field('Count', count),
        field('Encoding', encoding),
        field('Truncate payloads at (bytes)', truncate),
        peekOnly ? null : field('Get: what happens to them', ackmode, { wide: true, hint: 'Peek never changes the queue; Get takes the messages, then acts as chosen.' })),
      peekOnly ? h('p', { class: 'muted' }, 'A stream cannot be read with Get (basic.get); Peek shows its messages from the first retained offset, and consumers read it from an offset.') : null,
      h('div', { class: 'form-actions' }, peekButton, peekOnly ? null : getButton, message)),
    results);
  return el;
}

function prettyPayload(m) {
  if (m.payload_encoding !== 'string') return { text: m.payload, note: 'base64' };
  const trimmed = m.payload.trim();
  if ((trimmed.startsWith('{') || trimmed.startsWith('[')) && m.payload.length < 200000) {
    try {
      return { text: JSON.stringify(JSON.parse(trimmed), null, 2), note: 'JSON, formatted' };
    } catch {
      // not JSON after all: show it as it is
    }
  }
  return { text: m.payload, note: 'text' };
}

export function messageCard(m, index, kind) {
  const { text, note } = prettyPayload(m);
  const { headers, ...props } = m.properties || {};
  const truncated = m.payload_encoding === 'string' ? new TextEncoder().encode(m.payload).length < m.payload_bytes : false;
  return h('article', { class: 'message', dataset: { kind } },
    h('header', { class: 'message-head' },
      h('span', { class: 'message-index' }, kind === 'peek' ? `#${(m.position ?? index) + 1}` : `Message ${index + 1}`),
      h('span', { class: 'message-route' }, 'exchange ', h('code', {}, m.exchange || '(default)'), ' · routing key ', h('code', {}, m.routing_key || '(empty)')),
      m.redelivered ? badge('redelivered', 'warn') : null,
      h('span', { class: 'message-size muted' }, `${bytes(m.payload_bytes)} · ${note}${truncated ? ' · truncated' : ''}`)),
    h('div', { class: 'message-body' },
      h('div', { class: 'message-props' },
        h('div', { class: 'mini-title' }, 'Properties'), fieldTable(props),
        h('div', { class: 'mini-title' }, 'Headers'), fieldTable(headers)),
      h('pre', { class: 'payload', tabindex: '0', 'aria-label': 'Payload' }, text || h('span', { class: 'muted' }, '(empty payload)'))));
}
