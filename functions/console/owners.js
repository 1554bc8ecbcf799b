// The owners view: the customers behind keys, with their shared credits and limits. Put an
// owner (create or replace its settings, `If-Match` when editing), switch it off (every key of a
// disabled owner answers DISABLED at the edge), change its credits, open its usage.

import { owners } from './api.js';
import { badge, field, formDialog, h, showError, when } from './ui.js';

const EXPLAIN = {
  precondition_failed: 'Someone changed this owner since you opened it: close this dialog and open it again to see their change.',
};

function credits(o) {
  if (!o.credits) return 'Unlimited';
  const r = o.credits.refill;
  const refill = r ? `, refilled to ${r.amount} ${r.interval === 'daily' ? 'daily' : `monthly on day ${r.day || 1}`}` : '';
  return `${o.credits.remaining}${refill}`;
}

function limits(o) {
  const l = o.rate_limits || [];
  return l.length ? l.map((x) => `${x.name}: ${x.limit}/${x.period_s}s`).join(', ') : '—';
}

export async function render(root, params, nav) {
  const cursor = params.get('cursor') || '';
  const listError = h('p', { class: 'error', role: 'alert' });
  const refresh = () => nav({ view: 'owners' }, { replace: true });
  const tbody = h('tbody');
  const pager = h('div', { class: 'pager' });
  root.replaceChildren(h('h1', { text: 'Owners' }),
    h('p', { class: 'hint', text: 'An owner is your customer: its credits and rate limits are shared by all its keys, and disabling it switches all of them off.' }),
    h('div', { class: 'toolbar' }, h('button', { type: 'button', id: 'put-owner', text: 'Add owner', onclick: () => putOwner(null, refresh) })),
    listError,
    h('table', { id: 'owners-table' },
      h('thead', {}, h('tr', {}, ...['Owner', 'Status', 'Keys', 'Credits', 'Rate limits', 'Updated', 'Actions'].map((t) => h('th', { scope: 'col', text: t })))),
      tbody),
    pager);
  let page;
  try {
    page = (await owners.list({ limit: 50, cursor })).body;
  } catch (err) {
    showError(root, err, listError);
    return;
  }
  if (!page.data.length) tbody.append(h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No owners yet. Keys name their owner by id; add one here to give it shared credits or limits.' })));
  for (const o of page.data) {
    const rowError = h('p', { class: 'error', role: 'alert' });
    const label = (verb) => `${verb} owner ${o.owner_id}`;
    tbody.append(h('tr', { 'data-owner-id': o.owner_id },
      h('td', {}, h('code', { text: o.owner_id })),
      h('td', {}, badge(o.status)),
      h('td', { text: String(o.key_count) }),
      h('td', { text: credits(o) }),
      h('td', { text: limits(o) }),
      h('td', { text: when(o.updated_at) }),
      h('td', {},
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'link', text: 'Edit', 'aria-label': label('Edit'), onclick: () => putOwner(o, refresh) }),
          h('button', { type: 'button', class: 'link', text: 'Credits', 'aria-label': label('Change credits of'), onclick: () => changeCredits(o, refresh, rowError) }),
          h('button', { type: 'button', class: 'link', text: 'Usage', 'aria-label': label('Usage of'), onclick: () => nav({ view: 'usage', owner: o.owner_id }) })),
        rowError)));
  }
  if (cursor) pager.append(h('button', { type: 'button', class: 'secondary', text: 'First page', onclick: () => nav({ view: 'owners' }) }));
  if (page.has_more && page.next_cursor) {
    pager.append(h('button', { type: 'button', class: 'secondary', text: 'Next page', onclick: () => nav({ view: 'owners', cursor: page.next_cursor }) }));
  }
}

/** Create (`o` null) or replace an owner's settings: what the form shows is what it will have. */
async function putOwner(o, refresh) {
  const id = field('Owner id', h('input', { autocomplete: 'off', value: o ? o.owner_id : '', readOnly: Boolean(o), required: true }), { name: 'owner_id', hint: 'The id your keys name in owner_id (1-128 characters).' });
  const status = h('select', {}, h('option', { value: 'active', text: 'Active' }), h('option', { value: 'disabled', text: 'Disabled: all its keys are refused' }));
  status.value = o ? o.status : 'active';
  const st = field('Status', status, { name: 'status' });
  const remaining = field('Credits', h('input', { type: 'number', min: '0', value: o && o.credits ? String(o.credits.remaining) : '' }), { name: 'credits', hint: 'Empty: unlimited. Shared by all the owner\'s keys.' });
  const refillAmount = field('Refill to', h('input', { type: 'number', min: '0', value: o && o.credits && o.credits.refill ? String(o.credits.refill.amount) : '' }), { name: 'credits.refill', hint: 'Empty: no refill.' });
  const interval = h('select', {}, h('option', { value: 'monthly', text: 'Monthly (on the 1st)' }), h('option', { value: 'daily', text: 'Daily (00:00 UTC)' }));
  interval.value = o && o.credits && o.credits.refill ? o.credits.refill.interval : 'monthly';
  const iv = field('Refill', interval, { name: 'credits.refill.interval' });
  const meta = field('Meta (JSON object)', h('textarea', { text: o && o.meta ? JSON.stringify(o.meta) : '' }), { name: 'meta' });
  const done = await formDialog(o ? `Edit owner ${o.owner_id}` : 'Add owner', [id, st, remaining, refillAmount, iv, meta], 'Save', async () => {
    const body = { status: status.value };
    if (remaining.control.value !== '') {
      body.credits = { remaining: Number(remaining.control.value) };
      if (refillAmount.control.value !== '') body.credits.refill = { amount: Number(refillAmount.control.value), interval: interval.value };
    }
    if (meta.control.value.trim()) {
      try {
        body.meta = JSON.parse(meta.control.value);
      } catch {
        const message = 'This is not JSON: write an object such as {"plan": "pro"}.';
        throw Object.assign(new Error(message), { detail: message, errors: [{ field: 'meta', message }] });
      }
    }
    return (await owners.put(id.control.value.trim(), body, o ? o.version : undefined)).body;
  }, EXPLAIN);
  if (done) refresh();
}

async function changeCredits(o, refresh, rowError) {
  rowError.textContent = '';
  const op = h('select', {}, h('option', { value: 'increment', text: 'Add' }), h('option', { value: 'decrement', text: 'Take away' }), h('option', { value: 'set', text: 'Set to' }));
  const opField = field('Change', op, { name: 'op' });
  const value = field('Credits', h('input', { type: 'number', min: '0', required: true }), { name: 'value' });
  const done = await formDialog(`Credits of ${o.owner_id}`, [opField, value], 'Apply', async () => (await owners.credits(o.owner_id, { op: op.value, value: Number(value.control.value) })).body, EXPLAIN);
  if (done) refresh();
}
