// Hash routes: pattern, the nav item they belong to, the page title and the page's mount().
// Captured segments are URL-decoded before they reach mount().

import * as admin from './pages/admin.js';
import * as connections from './pages/connections.js';
import * as exchanges from './pages/exchanges.js';
import { mountLimits } from './pages/limits.js';
import { mount as overview } from './pages/overview.js';
import * as queues from './pages/queues.js';
import { mount as shovels } from './pages/shovels.js';
import { exchangeLabel, DEFAULT_EXCHANGE } from './links.js';

const SEGMENT = '([^/]+)';

function route(pattern, nav, title, mount) {
  return { pattern: new RegExp(`^${pattern}$`), nav, title: typeof title === 'function' ? title : () => title, mount };
}

export const routes = [
  route('/overview', 'overview', 'Overview', overview),
  route('/queues', 'queues', 'Queues', queues.mountList),
  route(`/queues/${SEGMENT}/${SEGMENT}`, 'queues', ([, name]) => `Queue ${name}`, queues.mountQueue),
  route('/exchanges', 'exchanges', 'Exchanges', exchanges.mountList),
  route(`/exchanges/${SEGMENT}/${SEGMENT}`, 'exchanges',
    ([, name]) => `Exchange ${exchangeLabel(name === DEFAULT_EXCHANGE ? '' : name)}`, exchanges.mountExchange),
  route('/connections', 'connections', 'Connections', connections.mountList),
  route(`/connections/${SEGMENT}`, 'connections', ([name]) => `Connection ${name}`, connections.mountConnection),
  route('/channels', 'channels', 'Channels', connections.mountChannels),
  route('/users', 'users', 'Users', admin.mountUsers),
  route(`/users/${SEGMENT}`, 'users', ([name]) => `User ${name}`, admin.mountUser),
  route('/vhosts', 'vhosts', 'Virtual hosts', admin.mountVhosts),
  route(`/vhosts/${SEGMENT}`, 'vhosts', ([name]) => `Virtual host ${name}`, admin.mountVhost),
  route('/limits', 'limits', 'Limits', mountLimits),
  route('/policies', 'policies', 'Policies', admin.mountPolicies),
  route('/shovels', 'shovels', 'Shovels', shovels),
  route('/definitions', 'definitions', 'Definitions', admin.mountDefinitions),
];
