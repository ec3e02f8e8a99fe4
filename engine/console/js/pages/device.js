// One device: a header with its live status and actions, and four tabs — overview (with a
// gateway's sub-devices), shadow, commands and messages (each in its own module).

import { h, replace, badge, timeEl, hashLink, json } from '../dom.js';
import { api, seg } from '../api.js';
import { loading, messageArea, errorBox } from '../ui.js';
import { deviceActionButtons } from '../actions.js';
import { renderShadow } from './device-shadow.js';
import { renderCommands } from './device-commands.js';
import { renderMessages } from './device-messages.js';

const POLL_MS = 2000;
const TABS = [
  ['overview', 'Overview'],
  ['shadow', 'Shadow'],
  ['commands', 'Commands'],
  ['messages', 'Messages'],
];

export async function render(ctx) {
  const [deviceId, tab = 'overview'] = ctx.params;
  replace(ctx.root, loading());
  const device = await api.get(`devices/${seg(deviceId)}`, { signal: ctx.signal });
  if (!ctx.alive) return;
  // The secret of a Show answer is never put on the page.
  if (device.auth_info) delete device.auth_info.secret;
  if (device.auth_info) delete device.auth_info.secondary_secret;

  const status = badge(device.status, { testid: 'device-status' });
  const actions = h('div', { class: 'page-actions' });
  const problems = messageArea();
  const body = h('div', { class: 'tab-body' });
  const state = { device, listeners: [] };

  const renderActions = () =>
    replace(
      actions,
      deviceActionButtons(state.device, {
        onChange: () => poller.now(),
        onDeleted: () => ctx.go('#/devices'),
      }),
    );

  const tabs = h(
    'nav',
    { class: 'tabs', 'aria-label': 'Device sections' },
    TABS.map(([key, label]) =>
      h('a', { href: hashLink(['devices', deviceId, ...(key === 'overview' ? [] : [key])]), class: ['tab', key === tab && 'active'], 'aria-current': key === tab ? 'page' : null, testid: `tab-${key}` }, label),
    ),
  );

  replace(
    ctx.root,
    h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/devices' }, 'Devices'), ' / ', device.device_id),
    h(
      'header',
      { class: 'page-header' },
      h('div', null, h('h1', null, device.device_name, ' ', status), h('p', { class: 'subtitle' }, h('code', { testid: 'device-id' }, device.device_id), ' · ', h('a', { href: hashLink(['products', device.product_id]) }, device.product_name || device.product_id))),
      actions,
    ),
    problems.el,
    tabs,
    body,
  );
  renderActions();

  // The device itself is polled on every tab, so the status in the header stays live.
  let lastSignature = JSON.stringify(device);
  const poller = ctx.poll(
    async (run) => {
      const fresh = await api.get(`devices/${seg(deviceId)}`, { signal: ctx.signal });
      if (run.stale) return;
      if (fresh.auth_info) {
        delete fresh.auth_info.secret;
        delete fresh.auth_info.secondary_secret;
      }
      problems.clear();
      const signature = JSON.stringify(fresh);
      if (signature === lastSignature) return;
      lastSignature = signature;
      state.device = fresh;
      replace(status, fresh.status);
      status.className = badge(fresh.status).className;
      renderActions();
      for (const listener of state.listeners) listener(fresh);
    },
    POLL_MS,
    (error) => problems.error(error),
  );
  ctx.onCleanup(() => {
    state.listeners = [];
  });
  const onDeviceChange = (fn) => state.listeners.push(fn);

  switch (tab) {
    case 'shadow':
      return renderShadow(ctx, body, state.device);
    case 'commands':
      return renderCommands(ctx, body, state.device, onDeviceChange);
    case 'messages':
      return renderMessages(ctx, body, state.device);
    default:
      return renderOverview(ctx, body, state.device, onDeviceChange);
  }
}

function overviewList(device) {
  const auth = device.auth_info || {};
  const gateway = device.gateway_id === device.device_id ? h('span', null, h('code', null, device.gateway_id), h('span', { class: 'muted' }, ' (itself: a direct device or gateway)')) : h('a', { href: hashLink(['devices', device.gateway_id]) }, device.gateway_id);
  return h(
    'dl',
    { class: 'deflist' },
    [
      ['Status', badge(device.status)],
      ['Device id', h('code', null, device.device_id)],
      ['Node id', h('code', null, device.node_id)],
      ['Name', device.device_name],
      ['Node type', device.node_type],
      ['Gateway id', gateway],
      ['Product', h('a', { href: hashLink(['products', device.product_id]) }, `${device.product_name} (${device.product_id})`)],
      ['Resource space', `${device.app_name} (${device.app_id})`],
      ['Authentication', `${auth.auth_type || '—'}${auth.secure_access ? ', TLS only' : ''}${auth.timeout ? `, must activate within ${auth.timeout} s` : ''}`],
      ['Created', timeEl(device.create_time)],
      ['First activated', timeEl(device.active_time)],
      ['Status changed', timeEl(device.connection_status_update_time)],
      ['Description', device.description || '—'],
      ['Extension info', device.extension_info === undefined ? '—' : h('pre', { class: 'code inline-code' }, json(device.extension_info))],
    ].flatMap(([label, value]) => [h('dt', null, label), h('dd', null, value === undefined || value === null || value === '' ? '—' : value)]),
  );
}

function renderOverview(ctx, body, device, onDeviceChange) {
  const info = h('section', { class: 'panel' }, overviewList(device));
  replace(body, info);
  onDeviceChange((fresh) => replace(info, overviewList(fresh)));
  if (device.node_type !== 'GATEWAY') return;

  // A direct device is its own gateway: its sub-devices are the others listing it.
  const subBox = h('div', null, loading());
  body.append(
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'subdevices-title' },
      h('div', { class: 'panel-head' }, h('h2', { id: 'subdevices-title' }, 'Sub-devices'), h('a', { class: 'btn btn-small', href: hashLink(['devices'], { gateway_id: device.device_id }) }, 'Open in the device list')),
      subBox,
    ),
  );
  let lastSignature = null;
  ctx.poll(
    async (run) => {
      const page = await api.get('devices', { query: { gateway_id: device.device_id, limit: 50 }, signal: ctx.signal });
      if (run.stale) return;
      const signature = JSON.stringify(page);
      if (signature === lastSignature) return;
      lastSignature = signature;
      const subs = (page.devices || []).filter((d) => d.device_id !== device.device_id);
      // The gateway matches its own gateway_id too: it is in the count.
      const total = Math.max(0, page.page.count - 1);
      if (subs.length === 0) {
        replace(subBox, h('p', { class: 'muted' }, 'No sub-device. Register one with this device as its gateway id.'));
        return;
      }
      replace(
        subBox,
        h('p', { class: 'muted' }, total > subs.length ? `The newest ${subs.length} of ${total}.` : `${total} sub-device${total === 1 ? '' : 's'}.`),
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'table compact' },
            h('thead', null, h('tr', null, ['Device id', 'Name', 'Node id', 'Status'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              null,
              subs.map((d) => h('tr', { testid: 'subdevice-row' }, h('td', null, h('a', { href: hashLink(['devices', d.device_id]), class: 'mono' }, d.device_id)), h('td', null, d.device_name), h('td', null, h('code', null, d.node_id)), h('td', null, badge(d.status)))),
            ),
          ),
        ),
      );
    },
    POLL_MS,
    (error) => replace(subBox, errorBox(error)),
  );
}
