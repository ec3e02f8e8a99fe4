// The commands tab: a dialog built from the product model (service → command → one input
// per para), CreateCommand with its round trip timed, the answer or the failure shown
// plainly, and this browser session's history of commands to the device.

import { h, replace, json, shortJson } from '../dom.js';
import { api, seg, getSession, ApiError } from '../api.js';
import { loading, openDialog, busy, errorText, showFieldError } from '../ui.js';
import { commandForm, loadProduct } from '../model.js';

const HISTORY_MAX = 50;

const OUTCOMES = {
  ok: ['Answered', 'ok'],
  timeout: ['Timed out', 'warn'],
  offline: ['Device offline', 'bad'],
  invalid: ['Refused: invalid for the model', 'bad'],
  error: ['Failed', 'bad'],
};

function historyKey(deviceId) {
  const session = getSession();
  return `ringiot.console.commands.${session ? session.projectId : ''}.${deviceId}`;
}

function loadHistory(deviceId) {
  try {
    const list = JSON.parse(sessionStorage.getItem(historyKey(deviceId)));
    return Array.isArray(list) ? list : [];
  } catch {
    return [];
  }
}

function saveHistory(deviceId, list) {
  try {
    sessionStorage.setItem(historyKey(deviceId), JSON.stringify(list.slice(0, HISTORY_MAX)));
  } catch {
    // Storage full: the history is a convenience.
  }
}

/** The history entry for an answer (a 200 body) or an error. */
function outcomeOf(request, started, result, error) {
  const entry = {
    at: Date.now(),
    service_id: request.body.service_id || '',
    command_name: request.body.command_name || '',
    request: request.text,
    ms: Math.round(performance.now() - started),
  };
  if (error) {
    const code = error instanceof ApiError ? error.code : '';
    entry.code = code;
    entry.message = error instanceof ApiError ? error.message : errorText(error);
    if (error.status === 403 && code === 'IOTDA.014016') entry.outcome = 'offline';
    else if (error.status === 400 && code === 'IOTDA.000006') entry.outcome = 'invalid';
    else entry.outcome = 'error';
    entry.field = error.field || null;
    return entry;
  }
  entry.command_id = result && result.command_id;
  if (result && result.error_code) {
    entry.outcome = result.error_code === 'IOTDA.014111' ? 'timeout' : 'error';
    entry.code = result.error_code;
    entry.message = typeof result.error_msg === 'string' ? result.error_msg : json(result.error_msg);
  } else {
    entry.outcome = 'ok';
    entry.response = json(result ? result.response : null);
  }
  return entry;
}

/** The answer, in the dialog's result area. */
function renderResult(area, entry) {
  const [label, tone] = OUTCOMES[entry.outcome] || OUTCOMES.error;
  area.dataset.outcome = entry.outcome;
  area.className = `command-result result-${tone}`;
  replace(
    area,
    h('div', { class: 'result-head' }, h('strong', null, label), ' ', h('span', { class: 'muted' }, `round trip ${entry.ms} ms`)),
    entry.command_id ? h('div', { class: 'small' }, 'command_id ', h('code', null, entry.command_id)) : null,
    entry.code ? h('div', null, h('code', null, entry.code), ': ', entry.message) : null,
    entry.field ? h('div', { class: 'small' }, 'Field: ', h('code', null, entry.field)) : null,
    entry.outcome === 'timeout' ? h('p', { class: 'small' }, 'The command was delivered but the device did not answer in time. It may still act on it.') : null,
    entry.outcome === 'offline' ? h('p', { class: 'small' }, 'The device (or its gateway) is not connected, or it is frozen. Messages can wait for it; commands cannot.') : null,
    entry.response !== undefined ? h('pre', { class: 'code', testid: 'command-response' }, entry.response) : null,
  );
}

function historyTable(list) {
  if (list.length === 0) return h('p', { class: 'muted', testid: 'command-history-empty' }, 'No command sent to this device from this browser tab yet.');
  const rows = list.map((entry) => {
    const [label, tone] = OUTCOMES[entry.outcome] || OUTCOMES.error;
    const detail = entry.response !== undefined ? entry.response : `${entry.code || ''}: ${entry.message || ''}`;
    return h(
      'tr',
      { testid: 'command-history-row', dataset: { outcome: entry.outcome } },
      h('td', null, h('time', { datetime: new Date(entry.at).toISOString() }, new Date(entry.at).toLocaleTimeString())),
      h('td', null, h('code', null, `${entry.service_id || '—'} / ${entry.command_name || '—'}`)),
      h('td', null, h('span', { class: ['badge', `badge-${tone}`] }, label)),
      h('td', { class: 'num' }, `${entry.ms} ms`),
      h(
        'td',
        null,
        h('details', null, h('summary', null, shortJson(detail.replace(/\s+/g, ' '), 60)), h('div', { class: 'small muted' }, 'Sent'), h('pre', { class: 'code' }, entry.request), h('div', { class: 'small muted' }, 'Answer'), h('pre', { class: 'code' }, detail)),
      ),
    );
  });
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { class: 'table compact', testid: 'command-history' },
      h('thead', null, h('tr', null, ['Sent at', 'Service / command', 'Outcome', 'Round trip', 'Answer'].map((t) => h('th', { scope: 'col', class: t === 'Round trip' ? 'num' : null }, t)))),
      h('tbody', null, rows),
    ),
  );
}

export async function renderCommands(ctx, body, device, onDeviceChange) {
  const deviceId = device.device_id;
  const historyBox = h('div', null, historyTable(loadHistory(deviceId)));
  const open = h('button', { type: 'button', class: 'btn btn-primary', testid: 'command-open' }, 'Send a command');
  const statusNote = h('p', { class: 'muted' });
  const noteStatus = (d) => replace(statusNote, d.status === 'ONLINE' ? 'The device is online: commands wait for its answer.' : `The device is ${d.status}: a command is refused (403) until it is online.`);
  noteStatus(device);
  onDeviceChange(noteStatus);
  replace(
    body,
    h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', null, 'Commands'), open), statusNote),
    h('section', { class: 'panel', 'aria-labelledby': 'history-title' }, h('div', { class: 'panel-head' }, h('h2', { id: 'history-title' }, 'History (this browser tab)'), h('button', { type: 'button', class: 'btn btn-small', testid: 'command-history-clear', on: { click: () => { saveHistory(deviceId, []); replace(historyBox, historyTable([])); } } }, 'Clear')), historyBox),
  );

  open.addEventListener('click', async () => {
    let product = null;
    let loadError = null;
    await busy(open, async () => {
      try {
        product = await loadProduct(device.product_id, ctx.signal);
      } catch (error) {
        loadError = error;
      }
    });
    if (!ctx.alive) return;
    openCommandDialog(product, loadError);
  });

  function openCommandDialog(product, loadError) {
    const form = commandForm(product, { testIds: true });
    const result = h('div', { class: 'command-result', testid: 'command-result', 'aria-live': 'polite' });
    const send = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'command-send', form: 'command-form' }, 'Send');
    const formEl = h(
      'form',
      { id: 'command-form', class: 'form', novalidate: true },
      loadError ? h('div', { class: 'error-box', role: 'alert' }, `The product model could not be read (${errorText(loadError)}): free format.`) : null,
      form.el,
    );
    openDialog({ title: `Command to ${deviceId}`, content: h('div', null, formEl, result), actions: [send], wide: true, testid: 'command-dialog' });

    formEl.addEventListener('submit', async (event) => {
      event.preventDefault();
      for (const f of form.fields) f.clearError();
      const request = form.read();
      result.dataset.outcome = 'waiting';
      result.className = 'command-result';
      replace(result, loading('Waiting for the device\'s answer…'));
      await busy(send, async () => {
        const started = performance.now();
        let entry;
        try {
          // Not tied to the page: a command already sent is recorded even after navigating away.
          const answer = await api.post(`devices/${seg(deviceId)}/commands`, request.text);
          entry = outcomeOf(request, started, answer, null);
        } catch (error) {
          entry = outcomeOf(request, started, null, error);
          if (entry.outcome === 'invalid') showFieldError(form.fields, error, null);
        }
        renderResult(result, entry);
        const list = [entry, ...loadHistory(deviceId)];
        saveHistory(deviceId, list);
        if (ctx.alive) replace(historyBox, historyTable(list.slice(0, HISTORY_MAX)));
      });
    });
  }
}

