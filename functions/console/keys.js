// The keys view: the table with filters, search within the page and cursor paging; create,
// edit (If-Match), rotate and revoke, each new secret shown once.

import { keys, roles as rolesApi } from './api.js';
import { badge, confirmDialog, field, formDialog, h, showError, showSecretOnce, uid, when, words } from './ui.js';

const EXPLAIN = {
  key_limit_reached: 'To free a slot, revoke a key you no longer use (Revoke in the keys table); revoked keys do not count.',
  precondition_failed: 'This key was changed in another tab or by someone else: reload the page to see the current version, then edit again.',
};

const STATUSES = ['active', 'disabled', 'revoked'];
const GRACE = [
  ['0', 'None: the old secret stops at once'],
  ['3600', '1 hour'],
  ['86400', '24 hours'],
  ['604800', '7 days'],
];

/** Renders the view into `root` for the URL's state; `nav(params)` changes the URL. */
export async function render(root, params, nav) {
  const status = params.get('status') ?? 'active';
  const owner = params.get('owner') || '';
  const role = params.get('role') || '';
  const cursor = params.get('cursor') || '';
  const search = params.get('q') || '';

  const listError = h('p', { class: 'error', role: 'alert' });
  const createError = h('p', { class: 'error', role: 'alert' });
  let roleNames = [];
  try {
    roleNames = (await rolesApi.list({ limit: 100 })).body.data.map((r) => r.name);
  } catch {
    roleNames = [];
  }

  const statusSelect = h('select', { id: uid('status') },
    h('option', { value: '', text: 'All' }),
    ...STATUSES.map((s) => h('option', { value: s, text: s[0].toUpperCase() + s.slice(1), selected: s === status })));
  if (!status) statusSelect.value = '';
  const ownerInput = h('input', { id: uid('owner'), value: owner, autocomplete: 'off' });
  const roleSelect = h('select', { id: uid('role') },
    h('option', { value: '', text: 'Any role' }),
    ...roleNames.map((r) => h('option', { value: r, text: r, selected: r === role })));
  const searchInput = h('input', { id: uid('search'), type: 'search', value: search, autocomplete: 'off' });

  const filters = h('form', { class: 'toolbar', 'aria-label': 'Filter keys' },
    h('div', { class: 'field' }, h('label', { for: statusSelect.id, text: 'Status' }), statusSelect),
    h('div', { class: 'field' }, h('label', { for: ownerInput.id, text: 'Owner' }), ownerInput),
    h('div', { class: 'field' }, h('label', { for: roleSelect.id, text: 'Role' }), roleSelect),
    h('button', { type: 'submit', class: 'secondary', text: 'Apply filters' }),
    h('div', { class: 'field' }, h('label', { for: searchInput.id, text: 'Search by name (this page)' }), searchInput),
    h('div', { class: 'field grow' },
      h('button', { type: 'button', id: 'create-key', text: 'Create key', onclick: () => createKey(roleNames, createError, nav) }),
      createError));
  filters.addEventListener('submit', (e) => {
    e.preventDefault();
    nav({ view: 'keys', status: statusSelect.value, owner: ownerInput.value.trim(), role: roleSelect.value });
  });

  const tbody = h('tbody');
  const table = h('table', { id: 'keys-table' },
    h('caption', { class: 'muted', text: status ? `${status[0].toUpperCase()}${status.slice(1)} keys` : 'All keys' }),
    h('thead', {}, h('tr', {}, ...['Name', 'Key ID', 'Prefix', 'Roles', 'Owner', 'Created', 'Last used', 'Expires', 'Status', 'Actions']
      .map((t) => h('th', { scope: 'col', text: t })))),
    tbody);
  const pager = h('div', { class: 'pager' });
  root.replaceChildren(h('h1', { text: 'API keys' }), filters, listError, table, pager);

  let page;
  try {
    page = (await keys.list({ limit: 20, cursor, status: status || undefined, owner_id: owner || undefined, role: role || undefined })).body;
  } catch (err) {
    showError(root, err, listError);
    return;
  }

  const rows = page.data.map((k) => keyRow(k, nav, roleNames));
  const applySearch = () => {
    const q = searchInput.value.trim().toLowerCase();
    let shown = 0;
    for (const { tr, key } of rows) {
      tr.hidden = Boolean(q) && !key.name.toLowerCase().includes(q);
      if (!tr.hidden) shown += 1;
    }
    empty.hidden = shown > 0;
  };
  const empty = h('tr', {}, h('td', { colspan: 10, class: 'muted', text: page.data.length ? 'No key on this page matches the search.' : 'No keys here yet. Create one to get started.' }));
  tbody.replaceChildren(...rows.map((r) => r.tr), empty);
  searchInput.addEventListener('input', () => {
    applySearch();
    const p = new URLSearchParams(location.search);
    if (searchInput.value) p.set('q', searchInput.value); else p.delete('q');
    history.replaceState(null, '', `?${p}`);
  });
  applySearch();

  if (cursor) {
    pager.append(h('button', { type: 'button', class: 'secondary', text: 'First page', onclick: () => nav({ view: 'keys', status, owner, role }) }));
  }
  if (page.has_more && page.next_cursor) {
    pager.append(h('button', { type: 'button', class: 'secondary', text: 'Next page', onclick: () => nav({ view: 'keys', status, owner, role, cursor: page.next_cursor }) }));
  }
}

function keyRow(k, nav, roleNames) {
  const rowError = h('p', { class: 'error', role: 'alert' });
  const label = (verb) => `${verb} key ${k.name}`;
  const actions = h('div', { class: 'actions' });
  if (k.status !== 'revoked') {
    actions.append(
      h('button', { type: 'button', class: 'link', text: 'Edit', 'aria-label': label('Edit'), onclick: () => editKey(k, roleNames, nav, rowError) }),
      h('button', { type: 'button', class: 'link', text: 'Rotate', 'aria-label': label('Rotate'), onclick: () => rotateKey(k, nav, rowError) }),
      h('button', { type: 'button', class: 'link', text: 'Revoke', 'aria-label': label('Revoke'), onclick: () => revokeKey(k, nav, rowError) }));
  }
  actions.append(h('button', { type: 'button', class: 'link', text: 'Usage', 'aria-label': label('Usage of'), onclick: () => nav({ view: 'usage', key: k.id }) }));
  const tr = h('tr', { 'data-key-id': k.id },
    h('td', { text: k.name }),
    h('td', {}, h('code', { text: k.id })),
    h('td', {}, h('code', { text: k.key_prefix })),
    h('td', { text: (k.roles || []).join(', ') || '—' }),
    h('td', { text: k.owner_id || '—' }),
    h('td', { text: when(k.created_at) }),
    h('td', { text: k.last_used_at ? when(k.last_used_at) : 'Never' }),
    h('td', { text: k.expires_at ? when(k.expires_at) : 'Never' }),
    h('td', {}, badge(k.status)),
    h('td', {}, actions, rowError));
  return { tr, key: k };
}

function roleChoices(roleNames, held) {
  const fieldset = h('fieldset', { 'data-field': 'roles' }, h('legend', { text: 'Roles' }));
  const error = h('p', { class: 'error', role: 'alert' });
  fieldset.errorLine = error;
  if (!roleNames.length) fieldset.append(h('p', { class: 'hint', text: 'No roles yet: create them in Roles.' }));
  const boxes = roleNames.map((name) => {
    const id = uid('role');
    const box = h('input', { type: 'checkbox', id, value: name, checked: held.includes(name) });
    fieldset.append(h('div', { class: 'check' }, box, h('label', { for: id, text: name })));
    return box;
  });
  fieldset.append(error);
  return { wrap: fieldset, selected: () => boxes.filter((b) => b.checked).map((b) => b.value) };
}

function rateLimitFields(current) {
  const limit = field('Rate limit: requests', h('input', { type: 'number', min: '1', value: current ? String(current.limit) : '' }),
    { name: 'rate_limit', hint: 'Leave empty for no limit.' });
  const period = field('Rate limit: window in seconds', h('input', { type: 'number', min: '1', max: '86400', value: current ? String(current.period_s) : '60' }),
    { name: 'rate_limit.period_s' });
  const value = () => (limit.control.value ? { limit: Number(limit.control.value), period_s: Number(period.control.value || 60) } : null);
  return { fields: [limit, period], value };
}

async function createKey(roleNames, errorLine, nav) {
  errorLine.textContent = '';
  const name = field('Name', h('input', { required: true, autocomplete: 'off' }), { name: 'name', hint: 'What the key is for, e.g. "billing service (production)".' });
  const roleBox = roleChoices(roleNames, []);
  const scopes = field('Scopes', h('input', { autocomplete: 'off' }), { name: 'scopes', hint: 'Product permissions, separated by commas or spaces. Empty: the default scopes.' });
  const owner = field('Owner ID', h('input', { autocomplete: 'off' }), { name: 'owner_id', hint: 'The customer this key belongs to (optional).' });
  const expires = field('Expires at', h('input', { type: 'datetime-local' }), { name: 'expires_at', hint: 'Your local time. Empty: never expires.' });
  const ips = field('Allowed IPs', h('input', { autocomplete: 'off' }), { name: 'allowed_ips', hint: 'Addresses or CIDR ranges, separated by commas. Empty: any address.' });
  const rate = rateLimitFields(null);
  const status = field('Status', h('select', {}, h('option', { value: 'active', text: 'Active' }), h('option', { value: 'disabled', text: 'Disabled (switched off until enabled)' })), { name: 'status' });
  const created = await formDialog('Create an API key',
    [name, roleBox, scopes, owner, expires, ips, ...rate.fields, status], 'Create key', async () => {
      const body = { name: name.control.value.trim() };
      const s = words(scopes.control.value);
      if (s.length) body.scopes = s;
      const r = roleBox.selected();
      if (r.length) body.roles = r;
      if (owner.control.value.trim()) body.owner_id = owner.control.value.trim();
      if (expires.control.value) body.expires_at = new Date(expires.control.value).toISOString();
      const a = words(ips.control.value);
      if (a.length) body.allowed_ips = a;
      if (rate.value()) body.rate_limit = rate.value();
      if (status.control.value === 'disabled') body.status = 'disabled';
      return (await keys.create(body)).body;
    }, EXPLAIN);
  if (!created) return;
  await showSecretOnce(`Key "${created.name}" created`, created.key, `Key ID ${created.id}.`);
  nav({ view: 'keys', status: 'active' }, { replace: false });
}

async function editKey(k, roleNames, nav, rowError) {
  rowError.textContent = '';
  const name = field('Name', h('input', { value: k.name, required: true, autocomplete: 'off' }), { name: 'name' });
  const roleBox = roleChoices(roleNames, k.roles || []);
  const scopes = field('Scopes', h('input', { value: (k.scopes || []).join(', '), autocomplete: 'off' }), { name: 'scopes', hint: 'Separated by commas or spaces.' });
  const status = field('Status', h('select', {},
    h('option', { value: 'active', text: 'Active', selected: k.status === 'active' }),
    h('option', { value: 'disabled', text: 'Disabled', selected: k.status === 'disabled' })), { name: 'status' });
  const rate = rateLimitFields(k.rate_limit);
  const updated = await formDialog(`Edit key "${k.name}"`, [name, roleBox, scopes, status, ...rate.fields], 'Save changes', async () => {
    const body = {};
    const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
    if (name.control.value.trim() !== k.name) body.name = name.control.value.trim();
    const r = roleBox.selected();
    if (!same(r, k.roles || [])) body.roles = r;
    const s = words(scopes.control.value);
    if (!same(s, k.scopes || [])) body.scopes = s;
    if (status.control.value !== k.status) body.status = status.control.value;
    if (!same(rate.value(), k.rate_limit || null)) body.rate_limit = rate.value();
    if (!Object.keys(body).length) return k;
    return (await keys.update(k.id, body, k.version)).body;
  }, EXPLAIN);
  if (updated) nav(Object.fromEntries(new URLSearchParams(location.search)), { replace: true });
}

async function rotateKey(k, nav, rowError) {
  rowError.textContent = '';
  const grace = field('Grace period for the old secret', h('select', {}, ...GRACE.map(([v, t]) => h('option', { value: v, text: t }))),
    { name: 'grace_period_s', hint: 'How long applications may keep using the current secret while you deploy the new one.' });
  const rotated = await formDialog(`Rotate key "${k.name}"`, [grace], 'Rotate', async () => (await keys.rotate(k.id, { grace_period_s: Number(grace.control.value) })).body, EXPLAIN);
  if (!rotated) return;
  await showSecretOnce(`Key "${rotated.name}" rotated`, rotated.key, 'Same key ID, roles and settings; only the secret changed.');
  nav(Object.fromEntries(new URLSearchParams(location.search)), { replace: true });
}

async function revokeKey(k, nav, rowError) {
  rowError.textContent = '';
  const sure = await confirmDialog(`Revoke key "${k.name}"?`,
    `Key ${k.id} (${k.key_prefix}) is refused everywhere within seconds. Revoking is permanent: it cannot be undone.`,
    'Revoke key', { danger: true, warning: 'Applications using this key will stop working.' });
  if (!sure) return;
  try {
    await keys.revoke(k.id);
  } catch (err) {
    showError(rowError.parentElement, err, rowError, EXPLAIN);
    return;
  }
  nav(Object.fromEntries(new URLSearchParams(location.search)), { replace: true });
}
