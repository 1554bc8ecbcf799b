// Small DOM helpers shared by the views: elements, labelled fields with their error line,
// modal dialogs (focus kept inside, Esc closes where allowed) and the secret-once dialog.

let nextId = 0;

/** A unique element id. */
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** `h('button', {type: 'button', onclick}, 'Text', child…)`. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/**
 * A labelled control with a hint and an error line tied to it (`aria-describedby`).
 * Returns `{wrap, control, error}`; `name` is the API field it maps to.
 */
export function field(label, control, { hint, name } = {}) {
  const id = control.id || uid('f');
  control.id = id;
  if (name) control.dataset.field = name;
  const error = h('p', { class: 'error', id: `${id}-error`, role: 'alert' });
  const described = [`${id}-error`];
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint`, text: hint });
    described.unshift(`${id}-hint`);
  }
  control.setAttribute('aria-describedby', described.join(' '));
  const wrap = h('div', { class: 'stack' }, h('label', { for: id, text: label }), control, hintEl, error);
  control.errorLine = error;
  return { wrap, control, error };
}

/** Clears every error line under `root`. */
export function clearErrors(root) {
  for (const e of root.querySelectorAll('.error')) e.textContent = '';
  for (const c of root.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

/**
 * Shows an API error next to the control that caused it: a field error goes to the control whose
 * `data-field` it names, anything else to `fallback` (an error line element).
 */
export function showError(root, err, fallback, explain = {}) {
  let placed = false;
  for (const fe of err.errors || []) {
    const top = String(fe.field).split(/[.[]/)[0];
    const control = root.querySelector(`[data-field="${CSS.escape(fe.field)}"]`) || root.querySelector(`[data-field="${CSS.escape(top)}"]`);
    if (control && control.errorLine) {
      control.errorLine.textContent = fe.message;
      control.setAttribute('aria-invalid', 'true');
      if (!placed) control.focus();
      placed = true;
    }
  }
  if (!placed) {
    const extra = explain[err.code] || (err.status === 401 ? 'Your token was refused or has expired: sign out and sign in again.' : '');
    fallback.textContent = extra ? `${err.detail} ${extra}` : err.detail;
  }
}

/** Comma- or space-separated words → array (empty → []). */
export function words(text) {
  return String(text || '').split(/[\s,]+/).map((s) => s.trim()).filter(Boolean);
}

/** A date for people: local date and time, or an em dash. */
export function when(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

export function badge(status) {
  return h('span', { class: `badge ${status}`, text: status });
}

/**
 * Opens a modal dialog. `build(dialog, close)` returns its content; `canClose()` decides whether
 * Esc (or anything else) may close it now. Resolves with the value passed to `close`.
 */
export function modal(title, build, { canClose = () => true } = {}) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dialog = h('dialog', { 'aria-labelledby': titleId });
    let result;
    let done = false;
    const close = (value) => {
      if (!canClose()) return;
      result = value;
      done = true;
      dialog.close();
    };
    dialog.append(h('h2', { id: titleId, text: title }), build(dialog, close));
    dialog.addEventListener('cancel', (e) => {
      if (!canClose()) e.preventDefault();
      else result = undefined;
    });
    dialog.addEventListener('close', () => {
      if (!done && !canClose()) {
        // Closed without leave (a browser's own escape hatch): it must stay open.
        dialog.showModal();
        return;
      }
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const first = dialog.querySelector('[autofocus], input, select, textarea, button');
    if (first) first.focus();
  });
}

/**
 * Shows a new secret once: a copy button, and no way out before "I have copied it" is checked.
 * Once closed, the secret is gone from the page.
 */
export function showSecretOnce(title, secret, note) {
  let confirmed = false;
  return modal(title, (dialog, close) => {
    const out = h('output', { id: uid('secret'), class: 'secret-value', text: secret });
    const status = h('p', { class: 'hint', role: 'status' });
    const copy = h('button', {
      type: 'button',
      class: 'secondary',
      text: 'Copy',
      'aria-label': 'Copy the key to the clipboard',
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(secret);
          status.textContent = 'Copied to the clipboard.';
        } catch {
          getSelection().selectAllChildren(out);
          status.textContent = 'The browser refused the clipboard: the key is selected, copy it with your keyboard.';
        }
      },
    });
    const checkId = uid('copied');
    const check = h('input', { type: 'checkbox', id: checkId });
    const doneButton = h('button', { type: 'button', text: 'Done', disabled: true, onclick: () => close(true) });
    check.addEventListener('change', () => {
      confirmed = check.checked;
      doneButton.disabled = !confirmed;
    });
    return h('div', { class: 'stack' },
      h('p', { class: 'warning', text: 'Store this key now: it will not be shown again.' }),
      note ? h('p', { text: note }) : null,
      h('label', { for: out.id, text: 'Secret key' }),
      h('div', { class: 'secret' }, out, copy),
      status,
      h('div', { class: 'check' }, check, h('label', { for: checkId, text: 'I have copied it' })),
      h('div', { class: 'buttons' }, doneButton));
  }, { canClose: () => confirmed });
}

/** A confirmation: resolves true when the person confirms. */
export function confirmDialog(title, message, action, { danger = false, warning } = {}) {
  return modal(title, (dialog, close) => h('div', { class: 'stack' },
    warning ? h('p', { class: 'warning', text: warning }) : null,
    h('p', { text: message }),
    h('div', { class: 'buttons' },
      h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => close(false) }),
      h('button', { type: 'button', class: danger ? 'danger' : '', text: action, onclick: () => close(true) }))));
}

/** A form inside a dialog: `submit(form)` resolves to the dialog's value or throws an ApiError. */
export function formDialog(title, fields, submitLabel, submit, explain) {
  return modal(title, (dialog, close) => {
    const formError = h('p', { class: 'error', role: 'alert' });
    const submitButton = h('button', { type: 'submit', text: submitLabel });
    const form = h('form', { novalidate: true },
      ...fields.map((f) => f.wrap),
      formError,
      h('div', { class: 'buttons' },
        h('button', { type: 'button', class: 'secondary', text: 'Cancel', onclick: () => close(undefined) }),
        submitButton));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clearErrors(form);
      submitButton.disabled = true;
      try {
        close(await submit(form));
      } catch (err) {
        showError(form, err, formError, explain);
      } finally {
        submitButton.disabled = false;
      }
    });
    return form;
  });
}
