// Devices: ListDevices with its filters (product_id, device_name, node_id, gateway_id — exact
// matches), marker paging (the markers of the pages before are kept in the address, so the
// back button and reloads work), live statuses (polled every 2 s), row actions, and a
// selection that can become a batch task.

import { h, replace, badge, hashLink } from '../dom.js';
import { api, listAll } from '../api.js';
import { pageHeader, pager, loading, messageArea, select } from '../ui.js';
import { registerDialog, deviceActionButtons } from '../actions.js';
import { setBatchSelection } from './batch.js';

const POLL_MS = 2000;
const PAGE_SIZES = ['10', '20', '50'];
const FILTERS = ['product_id', 'device_name', 'node_id', 'gateway_id'];

/** Device ids ticked in the list; kept while the operator pages and filters. */
const selection = new Set();

/** Forgets the ticked devices (on sign-out). */
export function clearSelection() {
  selection.clear();
}

/** The products of the project, for the filter and the register form; none when unreadable. */
async function loadProducts(signal) {
  try {
    return await listAll('products', 'products', {}, { max: 500, signal });
  } catch {
    return [];
  }
}

export async function render(ctx) {
  const q = ctx.query;
  const filters = Object.fromEntries(FILTERS.map((name) => [name, q.get(name) || '']));
  const limit = PAGE_SIZES.includes(q.get('limit')) ? Number(q.get('limit')) : 20;
  // Markers of the pages before this one (newest first lists: next page = ids < marker).
  const markers = (q.get('after') || '').split(',').filter((m) => /^[0-9a-fA-F]{24}$/.test(m));
  const address = (changes) => hashLink(['devices'], { ...filters, limit: limit === 20 ? '' : limit, after: markers.join(','), ...changes });

  const messages = messageArea();
  const listBox = h('div', null, loading());
  const selectionButton = h('button', { type: 'button', class: 'btn', testid: 'devices-batch', disabled: selection.size === 0 }, `Batch task for selected (${selection.size})`);
  const registerButton = h('button', { type: 'button', class: 'btn btn-primary', testid: 'device-register' }, 'Register device');

  const productSelect = select([['', 'All products']], { name: 'product_id', testid: 'filter-product', 'aria-label': 'Product' });
  const text = (name, label) => h('input', { type: 'search', name, value: filters[name], placeholder: label, 'aria-label': label, testid: `filter-${name}`, autocomplete: 'off', spellcheck: 'false' });
  const nameInput = text('device_name', 'Device name (exact)');
  const nodeInput = text('node_id', 'Node id (exact)');
  const gatewayInput = text('gateway_id', 'Gateway id');
  const filterForm = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Filter devices' },
    productSelect,
    nameInput,
    nodeInput,
    gatewayInput,
    h('button', { type: 'submit', class: 'btn', testid: 'filter-apply' }, 'Apply'),
    h('a', { class: 'btn btn-quiet', href: '#/devices' }, 'Clear'),
  );
  filterForm.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.go(
      hashLink(['devices'], {
        product_id: productSelect.value,
        device_name: nameInput.value.trim(),
        node_id: nodeInput.value.trim(),
        gateway_id: gatewayInput.value.trim(),
        limit: limit === 20 ? '' : limit,
      }),
    );
  });
  productSelect.addEventListener('change', () => filterForm.requestSubmit());

  replace(
    ctx.root,
    pageHeader('Devices', { subtitle: 'Statuses refresh every 2 seconds.', actions: [selectionButton, registerButton] }),
    filterForm,
    messages.el,
    listBox,
  );

  let products = [];
  const productsLoaded = loadProducts(ctx.signal).then((list) => {
    if (!ctx.alive) return;
    products = list;
    replace(productSelect, h('option', { value: '' }, 'All products'), list.map((p) => h('option', { value: p.product_id }, `${p.name} (${p.product_id})`)));
    productSelect.value = filters.product_id;
    if (filters.product_id && productSelect.value !== filters.product_id) {
      productSelect.append(h('option', { value: filters.product_id }, filters.product_id));
      productSelect.value = filters.product_id;
    }
  });

  let refresh = () => {};
  registerButton.addEventListener('click', async () => {
    await productsLoaded;
    registerDialog(products, { productId: filters.product_id || undefined, gatewayId: filters.gateway_id || undefined, onDone: () => refresh() });
  });
  selectionButton.addEventListener('click', () => {
    setBatchSelection([...selection]);
    ctx.go('#/batch?create=1');
  });
  const updateSelectionButton = () => {
    selectionButton.disabled = selection.size === 0;
    replace(selectionButton, `Batch task for selected (${selection.size})`);
  };

  let lastSignature = null;
  const poller = ctx.poll(
    async (run) => {
      const query = { ...filters, limit, marker: markers[markers.length - 1] };
      const page = await api.get('devices', { query, signal: ctx.signal });
      if (run.stale) return;
      messages.clear();
      const signature = JSON.stringify(page);
      if (signature === lastSignature) return;
      lastSignature = signature;
      renderList(page);
    },
    POLL_MS,
    (error) => messages.error(error),
  );
  refresh = () => {
    lastSignature = null;
    poller.now();
  };

  function renderList(page) {
    const devices = page.devices || [];
    const from = markers.length * limit;
    const allBox = h('input', { type: 'checkbox', 'aria-label': 'Select every device on this page', checked: devices.length > 0 && devices.every((d) => selection.has(d.device_id)) });
    allBox.addEventListener('change', () => {
      for (const d of devices) {
        if (allBox.checked) selection.add(d.device_id);
        else selection.delete(d.device_id);
      }
      for (const box of listBox.querySelectorAll('input[data-device]')) box.checked = selection.has(box.dataset.device);
      updateSelectionButton();
    });
    const rows = devices.map((device) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select ${device.device_id}`, dataset: { device: device.device_id }, checked: selection.has(device.device_id) });
      box.addEventListener('change', () => {
        if (box.checked) selection.add(device.device_id);
        else selection.delete(device.device_id);
        updateSelectionButton();
      });
      // GATEWAY: a direct device (its own gateway); ENDPOINT: a sub-device of its gateway.
      const type =
        device.gateway_id !== device.device_id
          ? h('span', null, 'sub-device of ', h('a', { href: hashLink(['devices', device.gateway_id]), class: 'mono' }, device.gateway_id))
          : h('span', null, 'direct / gateway');
      return h(
        'tr',
        { testid: 'device-row', dataset: { deviceId: device.device_id } },
        h('td', null, box),
        h('td', null, h('a', { href: hashLink(['devices', device.device_id]), class: 'mono' }, device.device_id)),
        h('td', null, device.device_name),
        h('td', null, h('code', null, device.node_id)),
        h('td', null, h('a', { href: hashLink(['products', device.product_id]) }, device.product_name || device.product_id)),
        h('td', { title: device.node_type }, type),
        h('td', null, badge(device.status, { testid: 'device-status' })),
        h('td', { class: 'row-actions' }, h('div', null, deviceActionButtons(device, { compact: true, onChange: refresh, onDeleted: refresh }))),
      );
    });
    const headers = [allBox, 'Device id', 'Name', 'Node id', 'Product', 'Type', 'Status', h('span', { class: 'sr-only' }, 'Actions')];
    const tableEl = h(
      'div',
      { class: 'table-wrap' },
      h('table', { class: 'table', testid: 'device-table' }, h('thead', null, h('tr', null, headers.map((title) => h('th', { scope: 'col' }, title)))), h('tbody', null, rows)),
    );
    const sizeSelect = select(PAGE_SIZES, { value: String(limit), 'aria-label': 'Devices per page' });
    sizeSelect.addEventListener('change', () => ctx.go(address({ limit: sizeSelect.value, after: '' })));
    const filtered = FILTERS.some((name) => filters[name]);
    replace(
      listBox,
      devices.length
        ? tableEl
        : h('p', { class: 'empty' }, filtered ? 'No device matches these filters (names and node ids must match exactly).' : 'No device yet. Register one.'),
      h(
        'div',
        { class: 'list-foot' },
        pager({
          from,
          shown: devices.length,
          count: page.page.count,
          onPrev: markers.length ? () => ctx.go(address({ after: markers.slice(0, -1).join(',') })) : null,
          onNext: from + devices.length < page.page.count && page.page.marker ? () => ctx.go(address({ after: [...markers, page.page.marker].join(',') })) : null,
        }),
        h('label', { class: 'inline' }, 'Per page ', sizeSelect),
      ),
    );
  }
}
