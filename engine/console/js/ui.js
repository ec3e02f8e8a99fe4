// Shared pieces of the pages: notices, error boxes, form fields with their error slot,
// modal dialogs (native <dialog>), the pager and the "shown once" secret box.

import { h, replace, copyText } from './dom.js';
import { ApiError } from './api.js';

/** A short notice in the shell's live region; it fades after a few seconds. */
export function notify(message, tone = 'info') {
  const region = document.getElementById('notices');
  if (!region) return;
  const note = h('div', { class: ['notice', `notice-${tone}`], role: tone === 'bad' ? 'alert' : 'status' }, message);
  region.append(note);
  while (region.children.length > 3) region.firstElementChild.remove();
  setTimeout(() => note.remove(), tone === 'bad' ? 8000 : 4000);
}

/** An error as text: ApiError → `CODE: message`, anything else → its message. */
export function errorText(error) {
  if (error instanceof ApiError) return error.describe();
  return error && error.message ? error.message : String(error);
}

/** A red box with the error; `props` may carry a testid. */
export function errorBox(error, props = {}) {
  return h('div', { ...props, class: ['error-box', props.class], role: 'alert' }, errorText(error));
}

/** A page-level message area that can show an error or be cleared. */
export function messageArea(props = {}) {
  const el = h('div', { ...props, class: ['message-area', props.class], 'aria-live': 'polite' });
  return {
    el,
    error(error) {
      replace(el, errorBox(error));
    },
    info(text) {
      replace(el, h('div', { class: 'info-box' }, text));
    },
    clear() {
      replace(el);
    },
  };
}

let fieldCounter = 0;

/**
 * A labelled form field: `{el, input, setError, clearError}`. `names` lists the API field
 * names whose errors belong here (`node_id`, `auth_info.secret`, …); a prefix matches too.
 * `errorTestid` is the data-testid of its error element.
 */
export function field(label, input, { hint, names = [], required = false, errorTestid } = {}) {
  fieldCounter += 1;
  const id = input.id || `f${fieldCounter}`;
  input.id = id;
  const errorId = `${id}-error`;
  const hintId = hint ? `${id}-hint` : null;
  const error = h('div', { class: 'field-error', id: errorId, role: 'alert', hidden: true, testid: errorTestid });
  if (hintId) input.setAttribute('aria-describedby', `${hintId} ${errorId}`);
  else input.setAttribute('aria-describedby', errorId);
  const el = h(
    'div',
    { class: 'field' },
    h('label', { for: id }, label, required ? h('span', { class: 'required', 'aria-hidden': 'true' }, ' *') : null),
    input,
    hint ? h('div', { class: 'field-hint', id: hintId }, hint) : null,
    error,
  );
  const result = {
    el,
    input,
    names,
    setError(message) {
      replace(error, message);
      error.hidden = false;
      input.setAttribute('aria-invalid', 'true');
      el.classList.add('has-error');
    },
    clearError() {
      replace(error);
      error.hidden = true;
      input.removeAttribute('aria-invalid');
      el.classList.remove('has-error');
    },
  };
  return result;
}

/**
 * Shows an API error next to the field it names (matched against each field's `names`,
 * exactly or as a prefix), or else in `fallback` (a messageArea). `name` overrides the field
 * the message names (for errors whose code implies one). Returns the field hit.
 */
export function showFieldError(fields, error, fallback, name = error instanceof ApiError ? error.field : null) {
  for (const f of fields) f.clearError();
  if (name) {
    const hit = fields.find((f) => f.names.some((n) => name === n || name.startsWith(`${n}.`) || name.startsWith(`${n}[`)));
    if (hit) {
      hit.setError(errorText(error));
      hit.input.focus();
      if (fallback) fallback.clear();
      return hit;
    }
  }
  if (fallback) fallback.error(error);
  return null;
}

/** Runs `action` with `button` disabled (and marked busy) meanwhile. */
export async function busy(button, action) {
  button.disabled = true;
  button.setAttribute('aria-busy', 'true');
  try {
    return await action();
  } finally {
    button.disabled = false;
    button.removeAttribute('aria-busy');
  }
}

/**
 * A modal dialog. `content` is a node; `actions` are buttons (a Close button is added).
 * Returns `{dialog, body, close}`; the dialog removes itself once closed.
 */
export function openDialog({ title, content, actions = [], wide = false, closeLabel = 'Close', testid }) {
  const titleId = `dlg-title-${++fieldCounter}`;
  const body = h('div', { class: 'dialog-body' }, content);
  const closeButton = h('button', { type: 'button', class: 'btn', on: { click: () => dialog.close() } }, closeLabel);
  const dialog = h(
    'dialog',
    { class: ['dialog', wide && 'dialog-wide'], 'aria-labelledby': titleId, testid },
    h(
      'div',
      { class: 'dialog-head' },
      h('h2', { id: titleId }, title),
      h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Close', on: { click: () => dialog.close() } }, '×'),
    ),
    body,
    h('div', { class: 'dialog-actions' }, actions, closeButton),
  );
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return { dialog, body, close: () => dialog.close() };
}

/** Closes every open dialog (on navigation and sign-out); each removes itself once closed. */
export function closeDialogs() {
  for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
}

/** Asks before a destructive action; resolves to true when confirmed. */
export function confirmDialog(title, message, { confirmLabel = 'Confirm', danger = true } = {}) {
  return new Promise((resolve) => {
    let confirmed = false;
    const yes = h(
      'button',
      {
        type: 'button',
        class: ['btn', danger ? 'btn-danger' : 'btn-primary'],
        testid: 'confirm-yes',
        on: {
          click: () => {
            confirmed = true;
            handle.close();
          },
        },
      },
      confirmLabel,
    );
    const handle = openDialog({ title, content: h('p', null, message), actions: [yes], closeLabel: 'Cancel' });
    handle.dialog.addEventListener('close', () => resolve(confirmed));
    yes.focus();
  });
}

/** A secret shown once, with a copy button: nothing keeps it after the dialog closes. */
export function secretDialog(title, secret, lines = []) {
  const value = h('code', { class: 'secret-value', testid: 'secret-value' }, secret);
  const copy = h(
    'button',
    {
      type: 'button',
      class: 'btn',
      on: {
        click: async () => {
          const ok = await copyText(secret);
          replace(copy, ok ? 'Copied' : 'Copy failed: select the text');
        },
      },
    },
    'Copy',
  );
  openDialog({
    title,
    content: h(
      'div',
      null,
      lines.map((line) => h('p', null, line)),
      h('div', { class: 'secret-box' }, value, copy),
      h('p', { class: 'warn-text' }, 'This secret is shown only now. Store it before closing this dialog.'),
    ),
  });
}

/** Previous / next paging with a "first–last of count" label. */
export function pager({ from, shown, count, onPrev, onNext }) {
  const label = shown === 0 ? `0 of ${count}` : `${from + 1}–${from + shown} of ${count}`;
  return h(
    'nav',
    { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', class: 'btn', disabled: !onPrev, on: { click: () => onPrev && onPrev() } }, '← Previous'),
    h('span', { class: 'pager-label' }, label),
    h('button', { type: 'button', class: 'btn', disabled: !onNext, on: { click: () => onNext && onNext() } }, 'Next →'),
  );
}

/** A page header: title, optional subtitle and action buttons. */
export function pageHeader(title, { subtitle, actions = [] } = {}) {
  return h(
    'header',
    { class: 'page-header' },
    h('div', null, h('h1', { tabindex: '-1' }, title), subtitle ? h('p', { class: 'subtitle' }, subtitle) : null),
    h('div', { class: 'page-actions' }, actions),
  );
}

/** A `<select>` from `[value, label]` pairs (or plain strings). */
export function select(options, props = {}) {
  const { value: chosen, ...rest } = props;
  const el = h(
    'select',
    rest,
    options.map((option) => {
      const [value, label] = Array.isArray(option) ? option : [option, option];
      return h('option', { value }, label);
    }),
  );
  if (chosen !== undefined) el.value = chosen;
  return el;
}

/** A simple loading placeholder. */
export function loading(text = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, text);
}
