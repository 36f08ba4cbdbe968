// The console's one way to call the JSON API (docs/console.md): JSON in and
// out, the session's CSRF token on every mutating request, and a 401 sends
// the user back to the login page.

let csrfToken = null;

export function setCsrf(token) {
  csrfToken = token || null;
}

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.message || body.error)) || `HTTP ${status}`);
    this.status = status;
    this.code = body && body.error;
    this.body = body;
  }
}

// Fired on a 401 so the app shows the login page (app.js listens).
export const UNAUTHORIZED_EVENT = 'herald-unauthorized';

export async function api(method, path, body, { signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET' && method !== 'HEAD') headers['X-Herald-CSRF'] = csrfToken || '';
  const init = { method, headers, signal, credentials: 'same-origin' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  if (res.status === 401 && path !== '/api/login') {
    window.dispatchEvent(new CustomEvent(UNAUTHORIZED_EVENT));
  }
  if (!res.ok) {
    let parsed = null;
    try {
      parsed = await res.json();
    } catch {
      parsed = { error: String(res.status), message: res.statusText || `HTTP ${res.status}` };
    }
    throw new ApiError(res.status, parsed);
  }
  if (res.status === 204) return null;
  const type = res.headers.get('content-type') || '';
  return type.includes('json') ? res.json() : res.text();
}

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body ?? {}, opts);
export const patch = (path, body) => api('PATCH', path, body ?? {});
export const del = (path) => api('DELETE', path);

// Path segment for a topic or group name (names may hold '.', '_' and '-').
export const seg = (s) => encodeURIComponent(s);

export function errorText(e) {
  if (e instanceof ApiError) return e.code && e.body && e.body.message ? `${e.code}: ${e.body.message}` : e.message;
  return String((e && e.message) || e);
}
