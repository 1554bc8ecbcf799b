// The audit view: who did what to which key or role, newest first, paged with the API's cursor.

import { audit } from './api.js';
import { h, showError, when } from './ui.js';

export async function render(root, params, nav) {
  const cursor = params.get('cursor') || '';
  const listError = h('p', { class: 'error', role: 'alert' });
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });
  root.replaceChildren(h('h1', { text: 'Audit log' }), listError,
    h('table', { id: 'audit-table' },
      h('thead', {}, h('tr', {}, ...['When', 'Actor', 'Action', 'Target', 'Changed', 'Request'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody),
    pager);
  let page;
  try {
    page = (await audit.list({ limit: 25, cursor })).body;
  } catch (err) {
    showError(root, err, listError);
    return;
  }
  if (!page.data.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'Nothing has happened in this workspace yet.' })));
  for (const e of page.data) {
    tbody.append(h('tr', {},
      h('td', { text: when(e.at) }),
      h('td', { text: e.actor }),
      h('td', {}, h('code', { text: e.action })),
      h('td', {}, h('code', { text: e.key_id || (e.role ? `role ${e.role}` : '—') })),
      h('td', { text: (e.changed || []).join(', ') || '—' }),
      h('td', {}, h('code', { text: e.request_id }))));
  }
  if (cursor) pager.append(h('button', { type: 'button', class: 'secondary', text: 'First page', onclick: () => nav({ view: 'audit' }) }));
  if (page.has_more && page.next_cursor) {
    pager.append(h('button', { type: 'button', class: 'secondary', text: 'Next page', onclick: () => nav({ view: 'audit', cursor: page.next_cursor }) }));
  }
}
