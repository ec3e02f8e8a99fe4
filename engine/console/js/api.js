// The REST API v5 client: the session (project id and token, kept in sessionStorage only),
// one fetch wrapper that sends `X-Auth-Token`, and IoTDA error bodies turned into ApiError.

const SESSION_KEY = 'ringiot.console.session';

/** `{projectId, token}` of the signed-in operator, or null. */
export function getSession() {
  try {
    const session = JSON.parse(sessionStorage.getItem(SESSION_KEY));
    if (session && typeof session.projectId === 'string' && typeof session.token === 'string') return session;
  } catch {
    // An unreadable entry is no session.
  }
  return null;
}

export function setSession(projectId, token) {
  sessionStorage.setItem(SESSION_KEY, JSON.stringify({ projectId, token }));
}

/** Forgets the credentials and everything else the console kept in this tab (histories). */
export function clearSession() {
  const keys = [];
  for (let i = 0; i < sessionStorage.length; i += 1) keys.push(sessionStorage.key(i));
  for (const key of keys) if (key && key.startsWith('ringiot.console.')) sessionStorage.removeItem(key);
}

/** An error answer (`{"error_code","error_msg"}`), a network failure or an aborted request. */
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // HTTP status; 0 when no answer came
    this.code = code; // IOTDA.xxxxxx, or NETWORK / ABORTED / HTTP_<status>
    this.body = body;
  }

  /** The field a validation error names (`Invalid input data. {field}: {message}`), or null. */
  get field() {
    return fieldOf(this.message);
  }

  /** `IOTDA.000006: Invalid input data. …` */
  describe() {
    return this.status ? `${this.code}: ${this.message}` : this.message;
  }
}

/** The field named by an IoTDA validation message, e.g. `auth_info.secret` or `paras.value`. */
export function fieldOf(message) {
  const match = /^Invalid input data\.\s+([A-Za-z0-9_$.[\]-]+):\s/.exec(message || '');
  return match ? match[1] : null;
}

/** `?a=1&b=x%20y`: spaces as %20, not `+` (the engine, like IoTDA, keeps `+` literal). */
function queryString(query) {
  const pairs = [];
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== '') pairs.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return pairs.length ? `?${pairs.join('&')}` : '';
}

/** Fired on `window` when the API refuses the stored token (401) so the shell can sign out. */
export const UNAUTHORIZED_EVENT = 'ringiot:unauthorized';

/**
 * Calls `/v5/iot/{project_id}/{path}`. Resolves to the parsed JSON body (null for 204), or
 * rejects with an ApiError. Options: `query` (object), `body` (JSON-serialised), `signal`,
 * `session` (explicit credentials, for the sign-in check).
 */
export async function request(method, path, options = {}) {
  const session = options.session || getSession();
  if (!session) throw new ApiError(401, 'IOTDA.000002', 'Not signed in.');
  const url = `/v5/iot/${encodeURIComponent(session.projectId)}/${path}${queryString(options.query)}`;
  // fetch refuses (TypeError) a header value outside Latin-1 or with NUL / CR / LF inside.
  if (/[^\x00-\xff]|[\0\r\n]/.test(session.token.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, ''))) {
    throw new ApiError(0, 'INVALID_TOKEN', 'The token contains characters that cannot be sent in a header.');
  }
  const headers = { Accept: 'application/json', 'X-Auth-Token': session.token };
  const init = { method, headers, signal: options.signal, cache: 'no-store', credentials: 'omit' };
  if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (error) {
    if (error && error.name === 'AbortError') throw new ApiError(0, 'ABORTED', 'The request was cancelled.');
    throw new ApiError(0, 'NETWORK', `The engine could not be reached (${error && error.message ? error.message : error}).`);
  }
  const text = await response.text();
  let body = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!response.ok) {
    const code = (body && body.error_code) || `HTTP_${response.status}`;
    const message = (body && body.error_msg) || response.statusText || `HTTP ${response.status}`;
    const error = new ApiError(response.status, code, String(message), body);
    if (response.status === 401 && !options.session) window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT, { detail: error }));
    throw error;
  }
  return body;
}

export const api = {
  get: (path, options) => request('GET', path, options),
  post: (path, body, options = {}) => request('POST', path, { ...options, body }),
  put: (path, body, options = {}) => request('PUT', path, { ...options, body }),
  delete: (path, options) => request('DELETE', path, options),
};

/** `GET /metrics` (Prometheus text, no authentication). */
export async function fetchMetricsText(signal) {
  let response;
  try {
    response = await fetch('/metrics', { cache: 'no-store', credentials: 'omit', signal });
  } catch (error) {
    if (error && error.name === 'AbortError') throw new ApiError(0, 'ABORTED', 'The request was cancelled.');
    throw new ApiError(0, 'NETWORK', 'The engine could not be reached for /metrics.');
  }
  if (!response.ok) throw new ApiError(response.status, `HTTP_${response.status}`, `/metrics answered ${response.status}`);
  return response.text();
}

/** A device id, product id or task id as one path segment; `.` and `..` (which the URL would resolve as a path step) are not found. */
export function seg(id) {
  if (id === '.' || id === '..') throw new ApiError(404, 'HTTP_404', `Not found: "${id}" is not an id.`);
  return encodeURIComponent(id);
}

/** Every page of a marker-paged list (`limit` 50), up to `max` items. */
export async function listAll(path, key, query = {}, { max = 30000, signal } = {}) {
  const items = [];
  let marker;
  for (;;) {
    const page = await api.get(path, { query: { ...query, limit: 50, marker }, signal });
    const batch = page[key] || [];
    items.push(...batch);
    marker = page.page && page.page.marker;
    if (batch.length < 50 || !marker || items.length >= max) break;
  }
  return items.slice(0, max);
}
