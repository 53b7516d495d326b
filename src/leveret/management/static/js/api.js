// The management HTTP API: Basic auth from sessionStorage, JSON in and out, and errors as
// ApiError with the broker's reason in words people can act on.

const CREDENTIALS = 'leveret.credentials';

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(CREDENTIALS));
  } catch {
    return null;
  }
}

export function saveCredentials(username, password) {
  sessionStorage.setItem(CREDENTIALS, JSON.stringify({ username, password }));
}

export function forgetCredentials() {
  sessionStorage.removeItem(CREDENTIALS);
}

function basic({ username, password }) {
  // btoa only takes Latin-1: encode UTF-8 first so any user name works.
  const utf8 = new TextEncoder().encode(`${username}:${password}`);
  return `Basic ${btoa(String.fromCharCode(...utf8))}`;
}

export class ApiError extends Error {
  constructor(status, error, reason) {
    super(describe(status, error, reason));
    this.status = status;
    this.error = error;
    this.reason = reason;
  }

  /** The credentials themselves were refused (not a lack of permission). */
  get loginFailed() {
    return this.status === 401 && this.reason === 'Login failed';
  }
}

function describe(status, error, reason) {
  const text = typeof reason === 'string' ? reason.trim() : JSON.stringify(reason);
  if (status === 0) return `Cannot reach the broker: ${text}`;
  if (status === 401 && text === 'Login failed') return 'Login failed: wrong user name or password.';
  if (status === 401 && text === 'Not management user') {
    return 'This user has no management tag (management, policymaker, monitoring or administrator).';
  }
  if (status === 401) return `Not allowed: ${text}`;
  if (status === 404 && text === 'Not Found') return 'Not found: it may have been deleted.';
  return `${text || error || 'Request failed'} (HTTP ${status})`;
}

let onLoginFailed = () => {};

/** Called when stored credentials stop working (user deleted, password changed). */
export function whenLoginFails(callback) {
  onLoginFailed = callback;
}

/**
 * fetch() against api/<path>. ``credentials: 'omit'`` keeps the browser from answering
 * the server's WWW-Authenticate challenge with its own login dialog. Statuses in ``accept``
 * return their JSON body like a success.
 */
export async function api(method, path, { body, headers = {}, raw = false, auth, accept = [] } = {}) {
  const creds = auth || credentials();
  const init = { method, credentials: 'omit', headers: { ...headers } };
  if (creds) init.headers.Authorization = basic(creds);
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(`api${path}`, init);
  } catch (exc) {
    throw new ApiError(0, 'network', exc.message || String(exc));
  }
  if (!response.ok && !accept.includes(response.status)) {
    let error = response.statusText;
    let reason = '';
    try {
      const data = await response.json();
      error = data.error ?? error;
      reason = data.reason ?? '';
    } catch {
      reason = response.statusText;
    }
    const failure = new ApiError(response.status, error, reason);
    if (failure.loginFailed && !auth) onLoginFailed(failure);
    throw failure;
  }
  if (raw) return response;
  if (response.status === 204 || response.status === 201) {
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }
  return response.json();
}

export const get = (path, options) => api('GET', path, options);
export const put = (path, body, options) => api('PUT', path, { ...options, body });
export const post = (path, body, options) => api('POST', path, { ...options, body });
export const del = (path, options) => api('DELETE', path, options);

/** A path with each interpolated value URL-encoded: path`/queues/${vhost}/${name}`. */
export function path(strings, ...values) {
  return strings.reduce((out, s, i) => out + s + (i < values.length ? encodeURIComponent(values[i]) : ''), '');
}
