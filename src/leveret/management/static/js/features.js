// Short badges for an object's flags and arguments, as RabbitMQ's UI shows them (D, AD,
// TTL, DLX...), with the full meaning in the title.

import { badge } from './ui.js';

const QUEUE_ARGS = {
  'x-message-ttl': ['TTL', 'Message TTL'],
  'x-expires': ['Exp', 'Queue expires when unused'],
  'x-max-length': ['Lim', 'Maximum length'],
  'x-max-length-bytes': ['Lim B', 'Maximum length in bytes'],
  'x-overflow': ['Ovfl', 'Overflow behaviour'],
  'x-dead-letter-exchange': ['DLX', 'Dead-letter exchange'],
  'x-dead-letter-routing-key': ['DLK', 'Dead-letter routing key'],
  'x-max-priority': ['Pri', 'Maximum priority'],
  'x-single-active-consumer': ['SAC', 'Single active consumer'],
  'x-delivery-limit': ['DL', 'Delivery limit'],
  'x-max-age': ['MA', 'Maximum age (stream retention)'],
  'x-stream-max-segment-size-bytes': ['Seg', 'Stream segment size in bytes'],
};

function argBadges(args, known) {
  return Object.entries(args || {}).filter(([k]) => k !== 'x-queue-type').map(([k, v]) => {
    const [short, long] = known[k] || [k.replace(/^x-/, ''), k];
    return badge(short, 'info', `${long}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  });
}

export function queueFeatures(q) {
  return [
    q.durable ? badge('D', 'neutral', 'Durable') : null,
    q.auto_delete ? badge('AD', 'neutral', 'Auto-delete') : null,
    q.exclusive ? badge('Excl', 'neutral', 'Exclusive') : null,
    ...argBadges(q.arguments, QUEUE_ARGS),
    q.policy ? badge(q.policy, 'accent', `Policy: ${q.policy}`) : null,
  ].filter(Boolean);
}

export function exchangeFeatures(x) {
  return [
    x.durable ? badge('D', 'neutral', 'Durable') : null,
    x.auto_delete ? badge('AD', 'neutral', 'Auto-delete') : null,
    x.internal ? badge('I', 'neutral', 'Internal') : null,
    ...argBadges(x.arguments, { 'alternate-exchange': ['AE', 'Alternate exchange'] }),
  ].filter(Boolean);
}

export const QUEUE_ARGUMENT_SUGGESTIONS = [
  ['x-message-ttl', '60000', 'Messages expire after this many milliseconds'],
  ['x-expires', '1800000', 'The queue is deleted after this many idle milliseconds'],
  ['x-max-length', '10000', 'At most this many ready messages'],
  ['x-overflow', '"reject-publish"', 'drop-head, reject-publish or reject-publish-dlx'],
  ['x-dead-letter-exchange', '"dlx"', 'Where expired or rejected messages go'],
  ['x-dead-letter-routing-key', '"dead"', 'Routing key for dead-lettered messages'],
  ['x-max-priority', '10', 'Enables priorities 0..N'],
  ['x-single-active-consumer', 'true', 'Only one consumer receives at a time'],
  ['x-max-age', '"7D"', 'Stream: drop segments older than this (Y M D h m s)'],
  ['x-max-length-bytes', '1000000000', 'Stream: keep at most this many bytes'],
];
