// The roles view: the list, create, edit permissions, delete (a role keys still hold is a
// 409 `role_in_use`, shown next to its Delete button), and the recommended roles.

import { presets, roles } from './api.js';
import { confirmDialog, field, formDialog, h, showError, words } from './ui.js';

const PERMISSION_HINT = 'Separated by commas or spaces. Management: api.key.create|view|update|delete, api.role.*, api.owner.view|update, api.usage.view (api.* covers them all); anything else is a product permission.';

export async function render(root, params, nav) {
  const listError = h('p', { class: 'error', role: 'alert' });
  const presetStatus = h('p', { role: 'status', class: 'hint' });
  const refresh = () => nav({ view: 'roles' }, { replace: true });
  const toolbar = h('div', { class: 'toolbar' },
    h('button', { type: 'button', id: 'create-role', text: 'Create role', onclick: () => createRole(refresh) }),
    h('button', { type: 'button', class: 'secondary', text: 'Add recommended roles', onclick: () => addPresets(presetStatus, refresh) }),
    presetStatus);
  const tbody = h('tbody');
  const table = h('table', { id: 'roles-table' },
    h('thead', {}, h('tr', {}, ...['Name', 'Description', 'Permissions', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
    tbody);
  root.replaceChildren(h('h1', { text: 'Roles' }), toolbar, listError, table);
  let page;
  try {
    page = (await roles.list({ limit: 100 })).body;
  } catch (err) {
    showError(root, err, listError);
    return;
  }
  if (!page.data.length) {
    tbody.append(h('tr', {}, h('td', { colspan: 5, class: 'muted', text: 'No roles yet. "Add recommended roles" creates administrator, manager and viewer.' })));
  }
  for (const role of page.data) {
    const rowError = h('p', { class: 'error', role: 'alert' });
    tbody.append(h('tr', { 'data-role': role.name },
      h('td', {}, h('code', { text: role.name })),
      h('td', { text: role.description || '—' }),
      h('td', { text: role.permissions.join(', ') }),
      h('td', { text: new Date(role.updated_at).toLocaleString() }),
      h('td', {},
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'link', text: 'Edit', 'aria-label': `Edit role ${role.name}`, onclick: () => editRole(role, refresh) }),
          h('button', { type: 'button', class: 'link', text: 'Delete', 'aria-label': `Delete role ${role.name}`, onclick: () => deleteRole(role, rowError, refresh) })),
        rowError)));
  }
}

async function createRole(refresh) {
  const name = field('Name', h('input', { required: true, autocomplete: 'off' }), { name: 'name', hint: 'Lowercase letters, digits, ".", "_" and "-".' });
  const description = field('Description', h('input', { autocomplete: 'off' }), { name: 'description' });
  const permissions = field('Permissions', h('textarea', {}), { name: 'permissions', hint: PERMISSION_HINT });
  const created = await formDialog('Create a role', [name, description, permissions], 'Create role', async () => {
    const body = { name: name.control.value.trim(), permissions: words(permissions.control.value) };
    if (description.control.value.trim()) body.description = description.control.value.trim();
    return (await roles.create(body)).body;
  });
  if (created) refresh();
}

async function editRole(role, refresh) {
  const description = field('Description', h('input', { value: role.description || '', autocomplete: 'off' }), { name: 'description' });
  const permissions = field('Permissions', h('textarea', { text: role.permissions.join(', ') }), { name: 'permissions', hint: PERMISSION_HINT });
  const updated = await formDialog(`Edit role ${role.name}`, [description, permissions], 'Save changes', async () => {
    const body = { permissions: words(permissions.control.value) };
    const d = description.control.value.trim();
    if (d !== (role.description || '')) body.description = d || null;
    return (await roles.update(role.name, body, role.version)).body;
  }, { precondition_failed: 'This role was changed in another tab or by someone else: reload the page, then edit again.' });
  if (updated) refresh();
}

async function deleteRole(role, rowError, refresh) {
  rowError.textContent = '';
  const sure = await confirmDialog(`Delete role ${role.name}?`, 'Keys cannot hold a deleted role. A role that keys still hold cannot be deleted.', 'Delete role', { danger: true });
  if (!sure) return;
  try {
    await roles.remove(role.name);
  } catch (err) {
    showError(rowError.parentElement, err, rowError);
    return;
  }
  refresh();
}

async function addPresets(status, refresh) {
  status.textContent = 'Adding…';
  const results = [];
  for (const p of await presets()) {
    try {
      await roles.create({ name: p.name, description: p.description, permissions: p.permissions });
      results.push(`${p.name} created`);
    } catch (err) {
      if (err.code === 'role_exists') {
        results.push(`${p.name} exists (unchanged)`);
      } else {
        status.textContent = `${p.name}: ${err.detail}`;
        return;
      }
    }
  }
  refresh();
  // The view re-renders; say what happened in its fresh status line.
  queueMicrotask(() => {
    const line = document.querySelector('#view [role="status"]');
    if (line) line.textContent = `Recommended roles: ${results.join(', ')}.`;
  });
}
