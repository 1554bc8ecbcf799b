// The console's entry: sign in (token from the form or the URL fragment, kept in
// sessionStorage only), sign out, and the view the URL names (`?view=keys&status=…`).

import { session, signIn, signOut } from './api.js';
import * as keysView from './keys.js';
import * as rolesView from './roles.js';
import * as auditView from './audit.js';
import * as usageView from './usage.js';
import * as ownersView from './owners.js';
import * as webhooksView from './webhooks.js';

const VIEWS = { keys: keysView, roles: rolesView, owners: ownersView, usage: usageView, webhooks: webhooksView, audit: auditView };
const $ = (id) => document.getElementById(id);

/** Changes the URL's state and renders it. */
function nav(params, { replace = false } = {}) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  if (params.status === '') p.set('status', '');
  const url = `${location.pathname}?${p}`;
  if (replace) history.replaceState(null, '', url); else history.pushState(null, '', url);
  render();
}

/** A token in the fragment (`#token=…&workspace=…`) signs in, then leaves the address bar. */
function signInFromFragment() {
  if (!location.hash.includes('token=')) return;
  const f = new URLSearchParams(location.hash.slice(1));
  if (f.get('token') && f.get('workspace')) signIn(f.get('token'), f.get('workspace'));
  history.replaceState(null, '', `${location.pathname}${location.search}`);
}

async function render() {
  const s = session();
  $('sign-in').hidden = Boolean(s);
  $('nav').hidden = !s;
  $('who').hidden = !s;
  $('sign-out').hidden = !s;
  $('view').hidden = !s;
  if (!s) {
    $('view').replaceChildren();
    $('sign-in-token').focus();
    return;
  }
  $('who').textContent = `Workspace ${s.workspace}`;
  const params = new URLSearchParams(location.search);
  const name = VIEWS[params.get('view')] ? params.get('view') : 'keys';
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  document.title = `${{ keys: 'API keys', roles: 'Roles', owners: 'Owners', usage: 'Usage', webhooks: 'Webhooks', audit: 'Audit log' }[name]} · Keyward console`;
  await VIEWS[name].render($('view'), params, nav);
}

function start() {
  signInFromFragment();
  $('sign-in-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const token = $('sign-in-token').value.trim();
    const workspace = $('sign-in-workspace').value.trim();
    if (!token || !workspace) {
      $('sign-in-error').textContent = 'Both the token and the workspace are needed.';
      return;
    }
    $('sign-in-error').textContent = '';
    signIn(token, workspace);
    $('sign-in-form').reset();
    nav({ view: 'keys' }, { replace: true });
  });
  $('sign-out').addEventListener('click', () => {
    signOut();
    history.replaceState(null, '', location.pathname);
    render();
  });
  for (const a of document.querySelectorAll('#nav a')) {
    a.addEventListener('click', (e) => {
      e.preventDefault();
      nav({ view: a.dataset.view });
    });
  }
  addEventListener('popstate', render);
  // A sign-in link opened in a tab already showing the console changes only the fragment.
  addEventListener('hashchange', () => {
    signInFromFragment();
    render();
  });
  render();
}

start();
