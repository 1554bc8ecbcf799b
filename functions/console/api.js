// The one module that talks to the management API: the session (sessionStorage only), and
// requests that turn every problem+json answer into an ApiError carrying its `detail`.

const SESSION = 'keyward.session';

/** The signed-in session `{token, workspace}`, or null. */
export function session() {
  try {
    const s = JSON.parse(sessionStorage.getItem(SESSION) || 'null');
    return s && s.token && s.workspace ? s : null;
  } catch {
    return null;
  }
}

export function signIn(token, workspace) {
  sessionStorage.setItem(SESSION, JSON.stringify({ token: token.trim(), workspace: workspace.trim() }));
}

export function signOut() {
  sessionStorage.removeItem(SESSION);
}

/** An API error: the problem's fields, with `detail` written for people. */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `The API answered ${status}.`);
    this.status = status;
    this.code = problem.code || '';
    this.detail = this.message;
    this.errors = problem.errors || [];
    this.requestId = problem.request_id || '';
  }
}

/**
 * Calls `method path` (relative to the workspace) with an optional JSON body and `If-Match`
 * version. Resolves to `{body, version}`; rejects with an ApiError.
 */
export async function call(method, path, { body, ifMatch, query } = {}) {
  const s = session();
  if (!s) throw new ApiError(401, { detail: 'Sign in first.', code: 'unauthorized' });
  const url = new URL(`/v1/workspaces/${encodeURIComponent(s.workspace)}${path}`, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { authorization: `Bearer ${s.token}`, accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (ifMatch !== undefined) headers['if-match'] = `"${ifMatch}"`;
  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError(0, { detail: 'The API did not answer: check your connection and retry.', code: 'network' });
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, json || { detail: `The API answered ${response.status}.` });
  }
  const etag = response.headers.get('etag');
  const version = etag ? Number(etag.replace(/^W\//, '').replaceAll('"', '')) : undefined;
  return { body: json, version };
}

export const keys = {
  list: (query) => call('GET', '/keys', { query }),
  get: (id) => call('GET', `/keys/${encodeURIComponent(id)}`),
  create: (body) => call('POST', '/keys', { body }),
  update: (id, body, version) => call('PATCH', `/keys/${encodeURIComponent(id)}`, { body, ifMatch: version }),
  rotate: (id, body) => call('POST', `/keys/${encodeURIComponent(id)}/rotate`, { body }),
  revoke: (id) => call('DELETE', `/keys/${encodeURIComponent(id)}`),
};

export const roles = {
  list: (query) => call('GET', '/roles', { query }),
  create: (body) => call('POST', '/roles', { body }),
  update: (name, body, version) => call('PATCH', `/roles/${encodeURIComponent(name)}`, { body, ifMatch: version }),
  remove: (name) => call('DELETE', `/roles/${encodeURIComponent(name)}`),
};

export const owners = {
  list: (query) => call('GET', '/owners', { query }),
  get: (id) => call('GET', `/owners/${encodeURIComponent(id)}`),
  put: (id, body, version) => call('PUT', `/owners/${encodeURIComponent(id)}`, { body, ifMatch: version }),
  credits: (id, body) => call('POST', `/owners/${encodeURIComponent(id)}/credits`, { body }),
};

export const usage = {
  ofKey: (id, query) => call('GET', `/keys/${encodeURIComponent(id)}/usage`, { query }),
  rows: (query) => call('GET', '/usage', { query }),
};

export const webhooks = {
  list: (query) => call('GET', '/webhooks', { query }),
  create: (body) => call('POST', '/webhooks', { body }),
  update: (id, body, version) => call('PATCH', `/webhooks/${encodeURIComponent(id)}`, { body, ifMatch: version }),
  remove: (id, version) => call('DELETE', `/webhooks/${encodeURIComponent(id)}`, { ifMatch: version }),
  test: (id) => call('POST', `/webhooks/${encodeURIComponent(id)}/test`),
  deliveries: (id, query) => call('GET', `/webhooks/${encodeURIComponent(id)}/deliveries`, { query }),
};

export const audit = {
  list: (query) => call('GET', '/audit', { query }),
};

/** The recommended roles, the same list as the CLI's `keyward roles preset`. */
export async function presets() {
  const r = await fetch('/console/presets.json', { cache: 'no-store' });
  return r.json();
}
