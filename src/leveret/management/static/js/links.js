// Hash routes to each object's page. Every path segment is URL-encoded, so names with
// slashes (the "/" vhost) or spaces stay one segment.

const enc = encodeURIComponent;
export const DEFAULT_EXCHANGE = 'amq.default'; // the default exchange's name in URLs

export const links = {
  overview: () => '#/overview',
  queues: () => '#/queues',
  queue: (vhost, name) => `#/queues/${enc(vhost)}/${enc(name)}`,
  exchanges: () => '#/exchanges',
  exchange: (vhost, name) => `#/exchanges/${enc(vhost)}/${enc(name || DEFAULT_EXCHANGE)}`,
  connections: () => '#/connections',
  connection: (name) => `#/connections/${enc(name)}`,
  channels: () => '#/channels',
  users: () => '#/users',
  user: (name) => `#/users/${enc(name)}`,
  vhosts: () => '#/vhosts',
  vhost: (name) => `#/vhosts/${enc(name)}`,
  limits: () => '#/limits',
  policies: () => '#/policies',
  definitions: () => '#/definitions',
};

export function exchangeLabel(name) {
  return name ? name : '(AMQP default)';
}
