// Sign-in: a project id and an X-Auth-Token, checked with one cheap authenticated call
// (ListProducts, limit 1) before they are kept in sessionStorage.

import { h, replace } from '../dom.js';
import { api, setSession } from '../api.js';
import { errorText, busy } from '../ui.js';

export function render(ctx, { message, onSignedIn }) {
  // The token lives in sessionStorage only: no password manager is invited to keep it.
  const project = h('input', { type: 'text', id: 'login-project', name: 'project_id', testid: 'login-project', required: true, autocomplete: 'off', spellcheck: 'false' });
  const token = h('input', { type: 'password', id: 'login-token', name: 'token', testid: 'login-token', required: true, autocomplete: 'one-time-code' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'login-submit' }, 'Sign in');
  const error = h('div', { class: 'error-box', testid: 'login-error', role: 'alert', hidden: true });

  const showError = (text) => {
    replace(error, text);
    error.hidden = false;
  };

  const form = h(
    'form',
    { class: 'login-card', 'aria-labelledby': 'login-title', novalidate: true, autocomplete: 'off' },
    h('div', { class: 'brand login-brand' }, h('span', { class: 'brand-mark', 'aria-hidden': 'true' }, '◎'), h('span', null, 'ringiot')),
    h('h1', { id: 'login-title' }, 'Operator console'),
    h('p', { class: 'muted' }, 'Sign in with a project id and one of its API tokens. They are kept in this tab only, until you sign out or close it.'),
    message ? h('div', { class: 'info-box', role: 'status' }, message) : null,
    h('div', { class: 'field' }, h('label', { for: 'login-project' }, 'Project id'), project),
    h('div', { class: 'field' }, h('label', { for: 'login-token' }, 'Token (X-Auth-Token)'), token),
    error,
    h('div', { class: 'form-actions' }, submit),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const projectId = project.value.trim();
    const tokenValue = token.value;
    if (!projectId || !tokenValue) {
      showError('Enter both the project id and the token.');
      (projectId ? token : project).focus();
      return;
    }
    error.hidden = true;
    await busy(submit, async () => {
      try {
        await api.get('products', { query: { limit: 1 }, session: { projectId, token: tokenValue }, signal: ctx.signal });
      } catch (failure) {
        if (!ctx.alive) return;
        showError(errorText(failure));
        token.focus();
        return;
      }
      if (!ctx.alive) return;
      setSession(projectId, tokenValue);
      token.value = '';
      onSignedIn();
    });
  });

  replace(ctx.root, form);
  project.focus();
}
