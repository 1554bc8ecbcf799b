// The usage view: one key's or one owner's last 30 days by outcome, as stacked daily bars
// drawn in SVG by this page (no chart library, nothing from the network), with the same numbers
// in a table for screen readers and for copying.

import { usage } from './api.js';
import { field, h, showError } from './ui.js';

const DAY = 86_400_000;
const SVG = 'http://www.w3.org/2000/svg';

/** The four series people read, from the API's outcomes. */
export const SERIES = [
  { name: 'valid', label: 'Valid', of: (r) => r.valid },
  { name: 'limited', label: 'Rate limited', of: (r) => r.rate_limited },
  { name: 'exhausted', label: 'Out of credits', of: (r) => r.usage_exceeded },
  { name: 'refused', label: 'Refused', of: (r) => r.forbidden + r.disabled + r.expired + r.revoked },
];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  el.append(...children);
  return el;
}

/** The last 30 UTC days, ending today: `{from, to}` as `YYYY-MM-DD` (to exclusive) and the days. */
function lastThirtyDays() {
  const today = Math.floor(Date.now() / DAY) * DAY;
  const days = [];
  for (let i = 29; i >= 0; i -= 1) days.push(new Date(today - i * DAY).toISOString().slice(0, 10));
  const to = new Date(today + DAY).toISOString().slice(0, 10);
  return { from: days[0], to, days };
}

/** Rows of the API (sparse for owners) onto every day, zeros included. */
function byDay(days, rows) {
  const zero = { valid: 0, rate_limited: 0, usage_exceeded: 0, forbidden: 0, disabled: 0, expired: 0, revoked: 0, credits_spent: 0 };
  const out = new Map(days.map((d) => [d, { ...zero }]));
  for (const r of rows) {
    const d = String(r.start).slice(0, 10);
    const slot = out.get(d);
    if (!slot) continue;
    for (const k of Object.keys(zero)) slot[k] += r[k] || 0;
  }
  return out;
}

function chart(title, perDay) {
  const width = 720;
  const height = 220;
  const pad = { left: 44, bottom: 28, top: 10 };
  const entries = [...perDay.entries()];
  const totals = entries.map(([, r]) => SERIES.reduce((s, x) => s + x.of(r), 0));
  const max = Math.max(1, ...totals);
  const slot = (width - pad.left) / entries.length;
  const scale = (height - pad.bottom - pad.top) / max;
  const sum = totals.reduce((a, b) => a + b, 0);
  const g = svg('g');
  entries.forEach(([day, r], i) => {
    let y = height - pad.bottom;
    for (const s of SERIES) {
      const v = s.of(r);
      if (!v) continue;
      const bar = svg('rect', { x: pad.left + i * slot + 2, y: y - v * scale, width: Math.max(1, slot - 4), height: v * scale, class: `bar ${s.name}` });
      bar.append(svg('title', {}, `${day}: ${v} ${s.label.toLowerCase()}`));
      g.append(bar);
      y -= v * scale;
    }
  });
  const axis = svg('g', { class: 'axis' },
    svg('line', { x1: pad.left, y1: height - pad.bottom, x2: width, y2: height - pad.bottom }),
    svg('text', { x: pad.left - 6, y: pad.top + 10, 'text-anchor': 'end' }, String(max)),
    svg('text', { x: pad.left - 6, y: height - pad.bottom, 'text-anchor': 'end' }, '0'),
    svg('text', { x: pad.left, y: height - 8 }, entries[0][0]),
    svg('text', { x: width, y: height - 8, 'text-anchor': 'end' }, entries[entries.length - 1][0]));
  return svg('svg', {
    viewBox: `0 0 ${width} ${height}`, role: 'img', class: 'chart', id: 'usage-chart',
    'aria-label': `${title}: ${sum} requests in the last 30 days, by outcome per day`,
  }, g, axis);
}

function legend() {
  return h('ul', { class: 'legend' }, ...SERIES.map((s) => h('li', {}, h('span', { class: `swatch ${s.name}`, 'aria-hidden': 'true' }), s.label)));
}

function table(perDay) {
  const tbody = h('tbody');
  for (const [day, r] of perDay) {
    tbody.append(h('tr', {}, h('th', { scope: 'row', text: day }), ...SERIES.map((s) => h('td', { text: String(s.of(r)) })), h('td', { text: String(r.credits_spent) })));
  }
  return h('details', {}, h('summary', { text: 'The numbers' }),
    h('table', { id: 'usage-table' },
      h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Day (UTC)' }), ...SERIES.map((s) => h('th', { scope: 'col', text: s.label })), h('th', { scope: 'col', text: 'Credits spent' }))),
      tbody));
}

export async function render(root, params, nav) {
  const kind = params.get('owner') ? 'owner' : 'key';
  const id = params.get('owner') || params.get('key') || '';
  const which = h('select', { name: 'kind' }, h('option', { value: 'key', text: 'Key' }), h('option', { value: 'owner', text: 'Owner' }));
  which.value = kind;
  const idInput = h('input', { name: 'id', autocomplete: 'off', value: id, placeholder: 'key_… or your customer id' });
  const error = h('p', { class: 'error', role: 'alert' });
  const form = h('form', { class: 'toolbar', id: 'usage-form' },
    field('Usage of', which).wrap,
    field('Id', idInput, { name: 'id' }).wrap,
    h('button', { type: 'submit', text: 'Show' }));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    nav({ view: 'usage', [which.value]: idInput.value.trim() });
  });
  const out = h('div', { id: 'usage-out' });
  root.replaceChildren(h('h1', { text: 'Usage' }), form, error, out);
  if (!id) {
    out.append(h('p', { class: 'muted', text: 'Pick a key or an owner to see its last 30 days: valid requests, rate-limited, out of credits and refused, per day (UTC).' }));
    return;
  }
  const { from, to, days } = lastThirtyDays();
  let rows;
  try {
    rows = kind === 'key'
      ? (await usage.ofKey(id, { from, to, granularity: 'day' })).body.data
      : (await usage.rows({ from, to, granularity: 'day', group_by: 'owner', owner_id: id, limit: 100 })).body.data;
  } catch (err) {
    showError(root, err, error);
    return;
  }
  const perDay = byDay(days, rows);
  const title = kind === 'key' ? `Key ${id}` : `Owner ${id}`;
  const spent = [...perDay.values()].reduce((s, r) => s + r.credits_spent, 0);
  out.append(h('h2', { text: title }), legend(), chart(title, perDay),
    h('p', { class: 'hint', text: `Credits spent in these 30 days: ${spent}. Counts reach the control plane a few seconds after the requests.` }),
    table(perDay));
}
