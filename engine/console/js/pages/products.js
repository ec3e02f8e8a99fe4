// Products: the list (offset paging), one product's model (services, properties, commands),
// and CreateProduct from pasted or uploaded JSON with the API's field errors shown.

import { h, replace, timeEl, json, table, hashLink } from '../dom.js';
import { api, seg, ApiError } from '../api.js';
import { describeSpec } from '../model.js';
import { pageHeader, pager, loading, errorText, messageArea, busy, notify, confirmDialog, select } from '../ui.js';

const PAGE_SIZES = ['10', '20', '50'];

const EXAMPLE = {
  product_id: 'smoke_detector',
  name: 'Smoke detector',
  device_type: 'SmokeDetector',
  protocol_type: 'MQTT',
  data_format: 'json',
  manufacturer_name: 'ACME',
  service_capabilities: [
    {
      service_id: 'smokeDetector',
      service_type: 'smokeDetector',
      option: 'Mandatory',
      properties: [
        { property_name: 'alarm', data_type: 'int', required: true, min: '0', max: '1', method: 'RE' },
        { property_name: 'temperature', data_type: 'decimal', min: '-40', max: '120', step: 0.1, unit: '°C', method: 'RE' },
        { property_name: 'mode', data_type: 'string', enum_list: ['normal', 'test'], max_length: 16, method: 'RWE' },
      ],
      commands: [
        {
          command_name: 'ring',
          paras: [
            { para_name: 'value', data_type: 'string', required: true, enum_list: ['ON', 'OFF'] },
            { para_name: 'seconds', data_type: 'int', min: '1', max: '600' },
          ],
          responses: [{ response_name: 'ring_response', paras: [{ para_name: 'result', data_type: 'int', min: '0', max: '1' }] }],
        },
      ],
    },
  ],
};

export async function renderList(ctx) {
  const limit = PAGE_SIZES.includes(ctx.query.get('limit')) ? Number(ctx.query.get('limit')) : 10;
  const offset = Math.max(0, Math.min(500, Number(ctx.query.get('offset')) || 0));
  const createOpen = ctx.query.get('create') === '1';
  const listBox = h('div', null, loading());
  const createButton = h('button', { type: 'button', class: 'btn btn-primary', testid: 'product-create', 'aria-expanded': String(createOpen), on: { click: () => ctx.go(hashLink(['products'], createOpen ? { limit, offset } : { limit, offset, create: 1 })) } }, createOpen ? 'Close the form' : 'Create product');
  replace(ctx.root, pageHeader('Products', { subtitle: 'Product models: the services, properties and commands devices follow.', actions: [createButton] }), createOpen ? createForm(ctx) : null, listBox);

  const page = await api.get('products', { query: { limit, offset }, signal: ctx.signal });
  if (!ctx.alive) return;
  const rows = page.products.map((p) => [
    h('a', { href: hashLink(['products', p.product_id]) }, p.name),
    h('code', null, p.product_id),
    p.device_type,
    p.protocol_type,
    p.data_format,
    timeEl(p.create_time),
    h('a', { href: hashLink(['devices'], { product_id: p.product_id }) }, 'Devices'),
  ]);
  const sizeSelect = select(PAGE_SIZES, { value: String(limit), 'aria-label': 'Products per page', on: { change: () => ctx.go(hashLink(['products'], { limit: sizeSelect.value })) } });
  const count = page.page.count;
  replace(
    listBox,
    rows.length ? table(['Name', 'Product id', 'Device type', 'Protocol', 'Data format', 'Created', ''], rows) : h('p', { class: 'empty' }, 'No product yet. Create one to register devices.'),
    h(
      'div',
      { class: 'list-foot' },
      pager({
        from: offset,
        shown: rows.length,
        count,
        onPrev: offset > 0 ? () => ctx.go(hashLink(['products'], { limit, offset: Math.max(0, offset - limit) })) : null,
        onNext: offset + rows.length < count && offset + limit <= 500 ? () => ctx.go(hashLink(['products'], { limit, offset: offset + limit })) : null,
      }),
      h('label', { class: 'inline' }, 'Per page ', sizeSelect),
    ),
  );
}

/** Where in the pasted text a JSON.parse error is, when the engine says. */
function jsonErrorText(error, text) {
  const match = /position (\d+)/.exec(error.message);
  if (!match) return `Not valid JSON: ${error.message}`;
  const position = Number(match[1]);
  const before = text.slice(0, position);
  const line = before.split('\n').length;
  const column = position - before.lastIndexOf('\n');
  return `Not valid JSON at line ${line}, column ${column}: ${error.message}`;
}

function createForm(ctx) {
  const textarea = h('textarea', { id: 'product-json', class: 'mono', rows: 18, spellcheck: 'false', testid: 'product-json', 'aria-describedby': 'product-json-hint product-json-error' });
  const file = h('input', { type: 'file', accept: '.json,application/json', id: 'product-file', testid: 'product-file' });
  const fieldError = h('div', { id: 'product-json-error', class: 'field-error', role: 'alert', testid: 'product-error', hidden: true });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'product-submit' }, 'Create');
  const example = h('button', { type: 'button', class: 'btn', on: { click: () => { textarea.value = JSON.stringify(EXAMPLE, null, 2); } } }, 'Insert an example');

  const showError = (node) => {
    replace(fieldError, node);
    fieldError.hidden = false;
    textarea.setAttribute('aria-invalid', 'true');
  };
  const clearError = () => {
    fieldError.hidden = true;
    textarea.removeAttribute('aria-invalid');
  };

  file.addEventListener('change', async () => {
    const chosen = file.files && file.files[0];
    if (!chosen) return;
    textarea.value = await chosen.text();
    clearError();
  });

  const form = h(
    'form',
    { class: 'panel form', 'aria-labelledby': 'product-create-title', novalidate: true },
    h('h2', { id: 'product-create-title' }, 'Create a product'),
    h('div', { class: 'field' }, h('label', { for: 'product-file' }, 'Upload a product JSON file'), file),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'product-json' }, 'Product JSON (CreateProduct body)'),
      textarea,
      h('div', { class: 'field-hint', id: 'product-json-hint' }, 'name, device_type, protocol_type and service_capabilities are required; product_id is generated when left out.'),
      fieldError,
    ),
    h('div', { class: 'form-actions' }, submit, example),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearError();
    let body;
    try {
      body = JSON.parse(textarea.value);
    } catch (error) {
      showError(jsonErrorText(error, textarea.value));
      textarea.focus();
      return;
    }
    await busy(submit, async () => {
      try {
        const created = await api.post('products', body, { signal: ctx.signal });
        notify(`Product ${created.product_id} created.`, 'ok');
        ctx.go(hashLink(['products', created.product_id]));
      } catch (error) {
        if (!ctx.alive) return;
        const field = error instanceof ApiError ? error.field || (error.message.includes('product already exists') ? 'product_id' : null) : null;
        showError(h('span', null, field ? h('span', null, 'Field ', h('code', { class: 'field-name' }, field), ': ') : null, errorText(error)));
        textarea.focus();
      }
    });
  });
  return form;
}

function specTable(items, nameKey, extra = []) {
  if (!items || items.length === 0) return h('p', { class: 'muted' }, 'None.');
  return table(
    ['Name', 'Type and range', ...extra.map(([title]) => title), 'Description'],
    items.map((item) => [h('code', null, item[nameKey]), describeSpec(item), ...extra.map(([, get]) => get(item)), item.description || '']),
  );
}

function serviceSection(service) {
  const commands = service.commands || [];
  return h(
    'section',
    { class: 'panel service', 'aria-label': `Service ${service.service_id}` },
    h('h3', null, h('code', null, service.service_id), ' ', h('span', { class: 'muted' }, service.service_type), service.option ? h('span', { class: 'badge badge-muted' }, service.option) : null),
    service.description ? h('p', null, service.description) : null,
    h('h4', null, 'Properties'),
    specTable(service.properties, 'property_name', [
      ['Access', (p) => p.method || ''],
      ['Default', (p) => (p.default_value === undefined ? '' : h('code', null, JSON.stringify(p.default_value)))],
    ]),
    h('h4', null, 'Commands'),
    commands.length === 0
      ? h('p', { class: 'muted' }, 'None.')
      : commands.map((command) =>
          h(
            'div',
            { class: 'command-spec' },
            h('h5', null, h('code', null, command.command_name)),
            h('div', { class: 'muted' }, 'Paras'),
            specTable(command.paras, 'para_name'),
            (command.responses || []).map((response) => h('div', null, h('div', { class: 'muted' }, 'Response ', h('code', null, response.response_name)), specTable(response.paras, 'para_name'))),
          ),
        ),
    (service.events || []).length ? [h('h4', null, 'Events'), service.events.map((e) => h('div', null, h('code', null, e.event_type), specTable(e.paras, 'para_name')))] : null,
  );
}

export async function renderDetail(ctx) {
  const [productId] = ctx.params;
  replace(ctx.root, loading());
  const product = await api.get(`products/${seg(productId)}`, { signal: ctx.signal });
  if (!ctx.alive) return;
  const messages = messageArea();
  const remove = h('button', { type: 'button', class: 'btn btn-danger', testid: 'product-delete' }, 'Delete');
  remove.addEventListener('click', async () => {
    if (!(await confirmDialog('Delete product', `Delete product ${product.product_id}? A product that still has devices is refused.`, { confirmLabel: 'Delete' }))) return;
    await busy(remove, async () => {
      try {
        await api.delete(`products/${seg(product.product_id)}`, { signal: ctx.signal });
        notify(`Product ${product.product_id} deleted.`, 'ok');
        ctx.go('#/products');
      } catch (error) {
        if (ctx.alive) messages.error(error);
      }
    });
  });
  const services = product.service_capabilities || [];
  replace(
    ctx.root,
    h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/products' }, 'Products'), ' / ', product.name),
    pageHeader(product.name, {
      subtitle: h('code', null, product.product_id),
      actions: [h('a', { class: 'btn', href: hashLink(['devices'], { product_id: product.product_id }) }, 'Devices of this product'), remove],
    }),
    messages.el,
    h(
      'section',
      { class: 'panel' },
      h(
        'dl',
        { class: 'deflist' },
        [
          ['Device type', product.device_type],
          ['Protocol', product.protocol_type],
          ['Data format', product.data_format],
          ['Manufacturer', product.manufacturer_name],
          ['Industry', product.industry],
          ['Resource space', `${product.app_name || ''} (${product.app_id})`],
          ['Description', product.description],
          ['Created', timeEl(product.create_time)],
        ].flatMap(([label, value]) => [h('dt', null, label), h('dd', null, value === undefined || value === null || value === '' ? '—' : value)]),
      ),
    ),
    h('h2', null, `Services (${services.length})`),
    services.length ? services.map(serviceSection) : h('p', { class: 'empty' }, 'This product declares no service: devices may report and be sent anything (free format).'),
    h('details', { class: 'panel' }, h('summary', null, 'Product JSON'), h('pre', { class: 'code' }, json(product))),
  );
}

