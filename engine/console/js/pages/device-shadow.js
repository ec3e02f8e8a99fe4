// The shadow tab: reported and desired values per service (polled), and an editor for one
// service's desired values (UpdateDeviceShadowDesiredData) with the optimistic version check.

import { h, replace, timeEl, shortJson, json } from '../dom.js';
import { api, seg } from '../api.js';
import { loading, field, messageArea, busy, notify, showFieldError, select, errorBox } from '../ui.js';
import { loadProduct } from '../model.js';

const POLL_MS = 2000;

function valueCell(value, present) {
  if (!present) return h('span', { class: 'muted' }, '—');
  return h('code', { title: json(value) }, shortJson(value, 60));
}

function serviceTable(service) {
  const reported = (service.reported && service.reported.properties) || {};
  const desired = (service.desired && service.desired.properties) || {};
  const names = [...new Set([...Object.keys(reported), ...Object.keys(desired)])].sort();
  const rows = names.map((name) => {
    const hasDesired = Object.prototype.hasOwnProperty.call(desired, name);
    const hasReported = Object.prototype.hasOwnProperty.call(reported, name);
    const pending = hasDesired && JSON.stringify(desired[name]) !== JSON.stringify(reported[name]);
    return h(
      'tr',
      { class: pending ? 'pending' : null },
      h('th', { scope: 'row' }, h('code', null, name)),
      h('td', null, valueCell(reported[name], hasReported)),
      h('td', null, valueCell(desired[name], hasDesired), pending ? h('span', { class: 'badge badge-info' }, 'not applied yet') : null),
    );
  });
  return h(
    'section',
    { class: 'panel', testid: 'shadow-service', 'aria-label': `Service ${service.service_id}` },
    h('div', { class: 'panel-head' }, h('h3', null, h('code', null, service.service_id)), h('span', { class: 'muted' }, `version ${service.version}`)),
    h(
      'p',
      { class: 'muted small' },
      'Reported ',
      service.reported && service.reported.event_time ? timeEl(service.reported.event_time) : '—',
      ' · desired set ',
      service.desired && service.desired.event_time ? timeEl(service.desired.event_time) : '—',
    ),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' }, h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'Property'), h('th', { scope: 'col' }, 'Reported'), h('th', { scope: 'col' }, 'Desired'))), h('tbody', null, rows)))
      : h('p', { class: 'muted' }, 'No value reported or desired yet.'),
  );
}

export async function renderShadow(ctx, body, device) {
  const tables = h('div', { class: 'shadow-services' }, loading());
  const general = messageArea();
  const editorBox = h('section', { class: 'panel', 'aria-labelledby': 'desired-title' });
  replace(body, tables, editorBox);

  let product = null;
  try {
    product = await loadProduct(device.product_id, ctx.signal);
  } catch (error) {
    if (error.code === 'ABORTED') return;
  }
  if (!ctx.alive) return;

  let shadow = [];
  let dirty = false;
  /** The last poll run started before the last save: its answer may be older than the save. */
  let lastRunBeforeSave = 0;
  const serviceIds = () => {
    const ids = new Set(shadow.map((s) => s.service_id));
    for (const s of (product && product.service_capabilities) || []) {
      if ((s.properties || []).some((p) => (p.method || '').includes('W'))) ids.add(s.service_id);
    }
    return [...ids].sort();
  };

  const serviceSelect = select([], { name: 'service_id', testid: 'desired-service' });
  const desired = h('textarea', { class: 'mono', rows: 8, spellcheck: 'false', testid: 'desired-json', name: 'desired' });
  const version = h('input', { type: 'number', min: '0', step: '1', testid: 'desired-version', name: 'version' });
  const checkVersion = h('input', { type: 'checkbox', checked: true, id: 'desired-check-version', testid: 'desired-check-version' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'desired-save' }, 'Save desired values');
  const fVersion = field('Version', version, { names: ['shadow[0].version'], hint: 'The service\'s current version; a stale one is refused and nothing changes.' });
  const fService = field('Service', serviceSelect, { names: ['shadow[0].service_id'] });
  const fDesired = field('Desired values (JSON object)', desired, { names: ['shadow[0]', 'shadow'], hint: '{} clears every desired value of the service; "name": null clears one. Writable properties only.' });
  const fields = [fVersion, fService, fDesired];

  /** Puts the chosen service's current desired values and version in the editor. */
  function fill() {
    const current = shadow.find((s) => s.service_id === serviceSelect.value);
    desired.value = json((current && current.desired && current.desired.properties) || {});
    version.value = String(current ? current.version : 0);
    dirty = false;
    for (const f of fields) f.clearError();
  }

  function fillServices() {
    const chosen = serviceSelect.value;
    replace(serviceSelect, serviceIds().map((id) => h('option', { value: id }, id)));
    if (chosen && [...serviceSelect.options].some((o) => o.value === chosen)) serviceSelect.value = chosen;
  }

  serviceSelect.addEventListener('change', fill);
  desired.addEventListener('input', () => {
    dirty = true;
  });
  version.addEventListener('input', () => {
    dirty = true;
  });

  const form = h(
    'form',
    { class: 'form', novalidate: true },
    h('h2', { id: 'desired-title' }, 'Set desired values'),
    h('p', { class: 'muted' }, 'The device is sent what differs from its reported values when it is online; values it reports are cleared from desired.'),
    fService.el,
    fDesired.el,
    h('div', { class: 'row' }, fVersion.el, h('div', { class: 'field checkbox-field' }, h('label', { for: 'desired-check-version' }, checkVersion, ' Send the version (refuse if the shadow changed meanwhile)'))),
    general.el,
    h('div', { class: 'form-actions' }, save, h('button', { type: 'button', class: 'btn', on: { click: fill } }, 'Reset editor')),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    general.clear();
    let values;
    try {
      values = JSON.parse(desired.value);
    } catch (error) {
      fDesired.setError(`Not valid JSON: ${error.message}`);
      return;
    }
    if (values === null || typeof values !== 'object' || Array.isArray(values)) {
      fDesired.setError('Desired values must be a JSON object.');
      return;
    }
    const entry = { service_id: serviceSelect.value, desired: values };
    if (checkVersion.checked && version.value !== '') entry.version = Number(version.value);
    await busy(save, async () => {
      try {
        const answer = await api.put(`devices/${seg(device.device_id)}/shadow`, { shadow: [entry] }, { signal: ctx.signal });
        if (!ctx.alive) return;
        shadow = answer.shadow || [];
        renderTables();
        fill();
        // A poll in flight may hold the shadow of before the save: it is dropped, and only
        // a poll started from now on may refill the editor.
        lastRunBeforeSave = poller.started;
        poller.now();
        notify('Desired values saved.', 'ok');
      } catch (error) {
        if (ctx.alive) showFieldError(fields, error, general);
      }
    });
  });

  function renderTables() {
    fillServices();
    replace(tables, shadow.length ? shadow.map(serviceTable) : h('p', { class: 'empty' }, 'The shadow is empty: the device has reported nothing and no desired value is set.'));
  }

  let lastSignature = null;
  let formShown = false;
  const poller = ctx.poll(
    async (run) => {
      const answer = await api.get(`devices/${seg(device.device_id)}/shadow`, { signal: ctx.signal });
      if (run.stale) return;
      const signature = JSON.stringify(answer);
      if (signature === lastSignature) return;
      lastSignature = signature;
      shadow = answer.shadow || [];
      renderTables();
      if (!formShown) replace(editorBox, form);
      if (!formShown || (!dirty && run.number > lastRunBeforeSave)) fill();
      formShown = true;
    },
    POLL_MS,
    (error) => {
      lastSignature = null;
      replace(tables, errorBox(error));
    },
  );
}
