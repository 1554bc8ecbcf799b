// The webhooks view: endpoints (URL, events, enabled), add one (its signing secret shown once,
// like a key's), send a test event and see the attempt, switch off, delete, and the latest
// deliveries of each.

import { webhooks } from './api.js';
import { badge, confirmDialog, field, formDialog, h, showError, showSecretOnce, when } from './ui.js';

const EVENTS = ['key.created', 'key.updated', 'key.rotated', 'key.revoked', 'key.expiring', 'key.auth_failures', 'credits.low', 'credits.exhausted'];

export async function render(root, params, nav) {
  const listError = h('p', { class: 'error', role: 'alert' });
  const refresh = () => nav({ view: 'webhooks' }, { replace: true });
  const tbody = h('tbody');
  root.replaceChildren(h('h1', { text: 'Webhooks' }),
    h('p', { class: 'hint', text: 'Keyward signs every delivery as Standard Webhooks says (webhook-id, webhook-timestamp, webhook-signature); verify it with the endpoint\'s secret. URLs must be https to a public address.' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', id: 'add-webhook', text: 'Add endpoint', onclick: () => addEndpoint(refresh) })),
    listError,
    h('table', { id: 'webhooks-table' },
      h('thead', {}, h('tr', {}, ...['URL', 'Events', 'Status', 'Created', 'Last attempt', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody));
  let page;
  try {
    page = (await webhooks.list({ limit: 100 })).body;
  } catch (err) {
    showError(root, err, listError);
    return;
  }
  if (!page.data.length) tbody.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: 'No endpoints yet.' })));
  for (const w of page.data) {
    const rowError = h('p', { class: 'error', role: 'alert' });
    const last = h('td', { class: 'last-attempt', text: '…' });
    const label = (verb) => `${verb} endpoint ${w.url}`;
    tbody.append(h('tr', { 'data-webhook-id': w.id },
      h('td', {}, h('code', { text: w.url })),
      h('td', { text: w.events.join(', ') }),
      h('td', {}, badge(w.enabled ? 'active' : 'disabled')),
      h('td', { text: when(w.created_at) }),
      last,
      h('td', {},
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'link', text: 'Send test', 'aria-label': label('Send a test event to'), onclick: () => sendTest(w, last, rowError) }),
          h('button', { type: 'button', class: 'link', text: w.enabled ? 'Switch off' : 'Switch on', 'aria-label': label(w.enabled ? 'Switch off' : 'Switch on'), onclick: () => toggle(w, refresh, rowError) }),
          h('button', { type: 'button', class: 'link', text: 'Delete', 'aria-label': label('Delete'), onclick: () => remove(w, refresh, rowError) })),
        rowError)));
    webhooks.deliveries(w.id, { limit: 1 }).then((r) => { last.textContent = attempt(r.body.data[0]); }, () => { last.textContent = '—'; });
  }
}

function attempt(d) {
  if (!d) return 'None yet';
  const code = d.response_code ? ` (${d.response_code})` : '';
  return `${d.status}${code}, ${d.event}, ${when(d.at)}${d.error ? `: ${d.error}` : ''}`;
}

async function addEndpoint(refresh) {
  const url = field('URL', h('input', { type: 'url', autocomplete: 'off', required: true, placeholder: 'api.example.com/keyward-events, over https' }), { name: 'url' });
  const boxes = EVENTS.map((e) => h('input', { type: 'checkbox', value: e, checked: e.startsWith('key.') && e !== 'key.expiring' && e !== 'key.auth_failures' }));
  const events = h('fieldset', { class: 'perms', 'data-field': 'events' }, h('legend', { text: 'Events' }),
    ...boxes.map((b) => h('label', {}, b, b.value)));
  const eventsError = h('p', { class: 'error', role: 'alert' });
  events.errorLine = eventsError;
  const description = field('Description', h('input', { autocomplete: 'off' }), { name: 'description' });
  const made = await formDialog('Add webhook endpoint', [url, { wrap: h('div', {}, events, eventsError) }, description], 'Add', async () => {
    const body = { url: url.control.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (description.control.value.trim()) body.description = description.control.value.trim();
    return (await webhooks.create(body)).body;
  });
  if (!made) return;
  await showSecretOnce('Endpoint added', made.secret, `Signing secret of ${made.url}: verify each delivery's webhook-signature with it.`);
  refresh();
}

async function sendTest(w, last, rowError) {
  rowError.textContent = '';
  last.textContent = 'Sending…';
  try {
    last.textContent = attempt((await webhooks.test(w.id)).body);
  } catch (err) {
    last.textContent = '—';
    showError(rowError, err, rowError);
  }
}

async function toggle(w, refresh, rowError) {
  try {
    await webhooks.update(w.id, { enabled: !w.enabled }, w.version);
    refresh();
  } catch (err) {
    showError(rowError, err, rowError, { precondition_failed: 'Someone changed this endpoint meanwhile: reload.' });
  }
}

async function remove(w, refresh, rowError) {
  if (!await confirmDialog('Delete endpoint', `Delete the endpoint ${w.url}? It will receive no more events.`, 'Delete', { danger: true })) return;
  try {
    await webhooks.remove(w.id, w.version);
    refresh();
  } catch (err) {
    showError(rowError, err, rowError);
  }
}
