// Batch tasks: create createCommands / createMessages tasks for a selection of devices or
// every device of a product, list the tasks of both types, and watch one task's progress
// and per-device details (polled every 2 s).

import { h, replace, badge, timeEl, json, hashLink, shortJson } from '../dom.js';
import { api, seg, listAll } from '../api.js';
import { pageHeader, pager, loading, field, messageArea, busy, notify, showFieldError, select, confirmDialog, errorBox, errorText } from '../ui.js';
import { commandForm, loadProduct } from '../model.js';

const POLL_MS = 2000;
const TYPES = ['createCommands', 'createMessages'];
const FINAL = new Set(['Success', 'Fail', 'PartialSuccess', 'Stopped']);
const SELECTION_KEY = 'ringiot.console.batchSelection';
const DETAIL_STATUSES = ['', 'Waitting', 'Processing', 'Success', 'Fail', 'Stopped'];
const DETAILS_PER_PAGE = 50;

/** Device ids picked on the device list, handed to the create form once. */
export function setBatchSelection(ids) {
  sessionStorage.setItem(SELECTION_KEY, JSON.stringify(ids));
}

function takeBatchSelection() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(SELECTION_KEY));
    sessionStorage.removeItem(SELECTION_KEY);
    return Array.isArray(ids) ? ids : [];
  } catch {
    return [];
  }
}

/** Device ids from the targets box: one per line, or separated by commas or spaces. */
function parseTargets(text) {
  return [...new Set(text.split(/[\s,]+/).map((t) => t.trim()).filter(Boolean))];
}

/** The segmented progress bar of a task. */
function progressBar(progress, props = {}) {
  const total = progress.total || 0;
  const done = (progress.success || 0) + (progress.fail || 0) + (progress.stopped || 0);
  const bar = h('div', {
    ...props,
    class: ['progress', props.class],
    role: 'progressbar',
    'aria-valuemin': '0',
    'aria-valuemax': String(total),
    'aria-valuenow': String(done),
    'aria-valuetext': `${done} of ${total} targets finished: ${progress.success || 0} succeeded, ${progress.fail || 0} failed, ${progress.stopped || 0} stopped`,
    dataset: { total: String(total), done: String(done) },
  });
  for (const [key, cls] of [['success', 'seg-ok'], ['fail', 'seg-bad'], ['stopped', 'seg-warn'], ['processing', 'seg-info']]) {
    const value = progress[key] || 0;
    if (!value || !total) continue;
    const segment = h('span', { class: ['progress-seg', cls], title: `${key}: ${value}` });
    segment.style.width = `${(value / total) * 100}%`;
    bar.append(segment);
  }
  return bar;
}

export async function renderList(ctx) {
  const createOpen = ctx.query.get('create') === '1';
  const createButton = h('button', { type: 'button', class: 'btn btn-primary', testid: 'batch-create', 'aria-expanded': String(createOpen) }, createOpen ? 'Close the form' : 'Create batch task');
  createButton.addEventListener('click', () => ctx.go(createOpen ? '#/batch' : '#/batch?create=1'));
  const messages = messageArea();
  const listBox = h('div', null, loading());
  replace(
    ctx.root,
    pageHeader('Batch tasks', { subtitle: 'Commands or messages to many devices at once.', actions: [createButton] }),
    createOpen ? createForm(ctx) : null,
    messages.el,
    h('section', { 'aria-labelledby': 'tasks-title' }, h('h2', { id: 'tasks-title' }, 'Tasks'), listBox),
  );

  let lastSignature = null;
  ctx.poll(
    async (run) => {
      // ListBatchTasks needs a task_type: one call per type, merged newest first.
      const pages = await Promise.all(TYPES.map((type) => api.get('batchtasks', { query: { task_type: type, limit: 50 }, signal: ctx.signal })));
      if (run.stale) return;
      messages.clear();
      const tasks = pages.flatMap((p) => p.batchtasks || []).sort((a, b) => (a.create_time < b.create_time ? 1 : a.create_time > b.create_time ? -1 : 0));
      const signature = JSON.stringify(tasks);
      if (signature === lastSignature) return;
      lastSignature = signature;
      const total = pages.reduce((n, p) => n + ((p.page && p.page.count) || 0), 0);
      if (tasks.length === 0) {
        replace(listBox, h('p', { class: 'empty' }, 'No batch task yet.'));
        return;
      }
      replace(
        listBox,
        total > tasks.length ? h('p', { class: 'muted' }, `The newest ${tasks.length} of ${total} tasks.`) : null,
        h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { class: 'table' },
            h('thead', null, h('tr', null, ['Name', 'Type', 'Status', 'Progress', 'Targets', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
            h(
              'tbody',
              null,
              tasks.map((task) =>
                h(
                  'tr',
                  { testid: 'batch-row', dataset: { taskId: task.task_id } },
                  h('td', null, h('a', { href: hashLink(['batch', task.task_id]) }, task.task_name)),
                  h('td', null, task.task_type),
                  h('td', null, badge(task.status)),
                  h('td', { class: 'progress-cell' }, progressBar(task.task_progress || {}, { class: 'progress-small' })),
                  h('td', { class: 'num' }, String((task.task_progress && task.task_progress.total) || 0)),
                  h('td', null, timeEl(task.create_time)),
                ),
              ),
            ),
          ),
        ),
      );
    },
    POLL_MS,
    (error) => {
      lastSignature = null;
      messages.error(error);
    },
  );
}

const TEMPLATES = {
  createCommands: { service_id: '', command_name: '', paras: {} },
  createMessages: { message: 'Hello from the console', name: 'hello' },
};

function createForm(ctx) {
  const name = h('input', { type: 'text', name: 'task_name', testid: 'batch-name', autocomplete: 'off', value: `task ${new Date().toISOString().slice(0, 16).replace('T', ' ').replace(':', '')}` });
  const type = select(TYPES, { name: 'task_type', testid: 'batch-type' });
  const targets = h('textarea', { name: 'targets', rows: 6, class: 'mono', testid: 'batch-targets', spellcheck: 'false', placeholder: 'device ids, one per line' });
  const documentBox = h('textarea', { name: 'document', rows: 8, class: 'mono', testid: 'batch-document', spellcheck: 'false' });
  const targetCount = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const fields = [
    field('Task name', name, { names: ['task_name'], required: true, hint: 'Up to 128 letters, digits, _, - and spaces.' }),
    field('Task type', type, { names: ['task_type'], required: true }),
    field('Targets (device ids)', targets, { names: ['targets'], required: true, hint: 'One per line, or separated by commas.' }),
    field('Document (JSON)', documentBox, { names: ['document'], required: true, hint: 'createCommands: a CreateCommand body; createMessages: a CreateMessage body.' }),
  ];
  const [, fType, fTargets, fDocument] = fields;
  const general = messageArea();
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'batch-submit' }, 'Create task');

  const countTargets = () => replace(targetCount, `${parseTargets(targets.value).length} device(s)`);
  targets.addEventListener('input', countTargets);
  const selected = takeBatchSelection();
  if (selected.length) targets.value = selected.join('\n');
  countTargets();

  let templateFor = null;
  const fillTemplate = () => {
    // Replace the document only while it is empty or still the other type's template.
    const current = documentBox.value.trim();
    if (!current || (templateFor && current === json(TEMPLATES[templateFor]))) {
      documentBox.value = json(TEMPLATES[type.value]);
      templateFor = type.value;
    }
  };
  type.addEventListener('change', () => {
    fillTemplate();
    builder.hidden = type.value !== 'createCommands';
  });
  fillTemplate();

  // Every device of a product as targets.
  const productSelect = select([['', 'Loading products…']], { 'aria-label': 'Product', testid: 'batch-product' });
  const addProduct = h('button', { type: 'button', class: 'btn', testid: 'batch-add-product' }, 'Add all its devices');
  const productsNote = h('span', { class: 'muted small', 'aria-live': 'polite' });
  listAll('products', 'products', {}, { max: 500, signal: ctx.signal })
    .then((products) => {
      replace(productSelect, h('option', { value: '' }, '— a product —'), products.map((p) => h('option', { value: p.product_id }, `${p.name} (${p.product_id})`)));
    })
    .catch((error) => replace(productsNote, errorText(error)));
  addProduct.addEventListener('click', async () => {
    const productId = productSelect.value;
    if (!productId) return;
    await busy(addProduct, async () => {
      try {
        replace(productsNote, 'Listing devices…');
        const devices = await listAll('devices', 'devices', { product_id: productId }, { signal: ctx.signal });
        const ids = parseTargets(`${targets.value}\n${devices.map((d) => d.device_id).join('\n')}`);
        targets.value = ids.join('\n');
        countTargets();
        replace(productsNote, `${devices.length} device(s) of ${productId} added.`);
      } catch (error) {
        if (ctx.alive) replace(productsNote, errorText(error));
      }
    });
  });

  // Build a createCommands document from a product model's command.
  const builderBody = h('div');
  const builder = h(
    'details',
    { class: 'builder', hidden: type.value !== 'createCommands' },
    h('summary', null, 'Build the command from the product model'),
    h('p', { class: 'muted small' }, 'Uses the product chosen above.'),
    builderBody,
  );
  let builderForm = null;
  productSelect.addEventListener('change', async () => {
    builderForm = null;
    if (!productSelect.value) {
      replace(builderBody);
      return;
    }
    try {
      const product = await loadProduct(productSelect.value, ctx.signal);
      builderForm = commandForm(product, { testIds: false });
      const use = h('button', { type: 'button', class: 'btn', on: { click: () => { documentBox.value = json(JSON.parse(builderForm.read().text)); templateFor = null; } } }, 'Use as document');
      replace(builderBody, builderForm.el, use);
    } catch (error) {
      if (ctx.alive) replace(builderBody, errorBox(error));
    }
  });

  const form = h(
    'form',
    { class: 'panel form', novalidate: true, 'aria-labelledby': 'batch-form-title' },
    h('h2', { id: 'batch-form-title' }, 'Create a batch task'),
    h('div', { class: 'row' }, fields[0].el, fType.el),
    fTargets.el,
    h('div', { class: 'inline-tools' }, targetCount, productSelect, addProduct, productsNote),
    builder,
    fDocument.el,
    general.el,
    h('div', { class: 'form-actions' }, submit),
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const f of fields) f.clearError();
    general.clear();
    let document;
    try {
      document = JSON.parse(documentBox.value);
    } catch (error) {
      fDocument.setError(`Not valid JSON: ${error.message}`);
      documentBox.focus();
      return;
    }
    const body = { task_name: name.value.trim(), task_type: type.value, targets: parseTargets(targets.value), document };
    await busy(submit, async () => {
      try {
        const task = await api.post('batchtasks', body, { signal: ctx.signal });
        notify(`Batch task ${task.task_name} created.`, 'ok');
        ctx.go(hashLink(['batch', task.task_id]));
      } catch (error) {
        if (ctx.alive) showFieldError(fields, error, general);
      }
    });
  });
  return form;
}

function counts(progress) {
  const items = [
    ['Total', progress.total],
    ['Succeeded', progress.success],
    ['Failed', progress.fail],
    ['Processing', progress.processing],
    ['Waiting', progress.waitting],
    ['Stopped', progress.stopped],
    ['Fail, waiting retry', progress.fail_wait_retry],
    ['Removed', progress.removed],
  ];
  return h('ul', { class: 'counts', testid: 'batch-counts' }, items.filter(([, v]) => v !== undefined).map(([label, value]) => h('li', null, h('span', { class: 'count-value' }, String(value || 0)), h('span', { class: 'count-label' }, label))));
}

export async function renderDetail(ctx) {
  const [taskId] = ctx.params;
  const statusFilter = DETAIL_STATUSES.includes(ctx.query.get('status')) ? ctx.query.get('status') : '';
  const offset = Math.max(0, Math.min(500, Number(ctx.query.get('offset')) || 0));
  const address = (changes) => hashLink(['batch', taskId], { status: statusFilter, offset, ...changes });

  const head = h('div', null, loading());
  const summary = h('section', { class: 'panel' });
  const detailsBox = h('div');
  const messages = messageArea();
  const filter = select(DETAIL_STATUSES.map((s) => [s, s || 'All statuses']), { value: statusFilter, 'aria-label': 'Target status', testid: 'batch-detail-filter' });
  filter.addEventListener('change', () => ctx.go(address({ status: filter.value, offset: 0 })));
  replace(
    ctx.root,
    h('nav', { class: 'breadcrumb', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/batch' }, 'Batch tasks'), ' / ', taskId),
    head,
    messages.el,
    summary,
    h('section', { class: 'panel', 'aria-labelledby': 'details-title' }, h('div', { class: 'panel-head' }, h('h2', { id: 'details-title' }, 'Targets'), filter), detailsBox),
  );

  let lastSignature = null;
  let lastStatus = null;
  const poller = ctx.poll(
    async (run) => {
      const answer = await api.get(`batchtasks/${seg(taskId)}`, { query: { limit: DETAILS_PER_PAGE, offset, task_detail_status: statusFilter }, signal: ctx.signal });
      if (run.stale) return;
      messages.clear();
      const signature = JSON.stringify(answer);
      if (signature === lastSignature) return;
      lastSignature = signature;
      const task = answer.batchtask;
      const progress = task.task_progress || {};
      if (task.status !== lastStatus) {
        lastStatus = task.status;
        renderHead(task);
      }
      replace(
        summary,
        progressBar(progress, { testid: 'batch-progress' }),
        h('p', { class: 'muted' }, task.status_desc),
        counts(progress),
        h('details', null, h('summary', null, 'Document'), h('pre', { class: 'code' }, json(task.document))),
      );
      renderDetails(answer);
    },
    POLL_MS,
    (error) => {
      lastSignature = null;
      messages.error(error);
    },
  );

  function renderHead(task) {
    const actions = [];
    if (!FINAL.has(task.status)) {
      const stop = h('button', { type: 'button', class: 'btn', testid: 'batch-stop' }, 'Stop');
      stop.addEventListener('click', async () => {
        if (!(await confirmDialog('Stop task', 'Stop every target that has not started yet?', { confirmLabel: 'Stop' }))) return;
        await busy(stop, async () => {
          try {
            await api.post(`batchtasks/${seg(taskId)}/stop`);
            notify('Stop requested.', 'ok');
            poller.now();
          } catch (error) {
            messages.error(error);
          }
        });
      });
      actions.push(stop);
    } else {
      const remove = h('button', { type: 'button', class: 'btn btn-danger', testid: 'batch-delete' }, 'Delete');
      remove.addEventListener('click', async () => {
        if (!(await confirmDialog('Delete task', `Delete the task ${task.task_name} and its details?`, { confirmLabel: 'Delete' }))) return;
        await busy(remove, async () => {
          try {
            await api.delete(`batchtasks/${seg(taskId)}`);
            notify('Task deleted.', 'ok');
            ctx.go('#/batch');
          } catch (error) {
            messages.error(error);
          }
        });
      });
      actions.push(remove);
    }
    replace(
      head,
      pageHeader(h('span', null, task.task_name, ' ', badge(task.status, { testid: 'batch-status' })), {
        subtitle: h('span', null, task.task_type, ' · created ', timeEl(task.create_time), ' · ', h('code', null, task.task_id)),
        actions,
      }),
    );
  }

  function renderDetails(answer) {
    const details = answer.task_details || [];
    const count = (answer.page && answer.page.count) || 0;
    const rows = details.map((d) =>
      h(
        'tr',
        { testid: 'batch-detail-row', dataset: { target: d.target } },
        h('td', null, h('a', { href: hashLink(['devices', d.target]), class: 'mono' }, d.target)),
        h('td', null, badge(d.status, { testid: 'batch-detail-status' })),
        h('td', null, outputCell(d.output)),
        h('td', null, d.error ? h('span', null, h('code', null, d.error.error_code), ' ', d.error.error_msg) : h('span', { class: 'muted' }, '—')),
      ),
    );
    replace(
      detailsBox,
      rows.length
        ? h('div', { class: 'table-wrap' }, h('table', { class: 'table compact' }, h('thead', null, h('tr', null, ['Device', 'Status', 'Output', 'Error'].map((t) => h('th', { scope: 'col' }, t)))), h('tbody', null, rows)))
        : h('p', { class: 'muted' }, 'No target with this status.'),
      pager({
        from: offset,
        shown: rows.length,
        count,
        onPrev: offset > 0 ? () => ctx.go(address({ offset: Math.max(0, offset - DETAILS_PER_PAGE) })) : null,
        onNext: offset + rows.length < count && offset + DETAILS_PER_PAGE <= 500 ? () => ctx.go(address({ offset: offset + DETAILS_PER_PAGE })) : null,
      }),
    );
  }
}

/** A short output as is; a long one folded, indented when it holds JSON. */
function outputCell(output) {
  if (!output) return h('span', { class: 'muted' }, '—');
  if (output.length <= 60 && !output.includes('\n')) return h('code', null, output);
  return h('details', null, h('summary', null, shortJson(output, 60)), h('pre', { class: 'code' }, prettyOutput(output)));
}

/** A detail's output is a string; when it holds JSON, show it indented. */
function prettyOutput(output) {
  try {
    return json(JSON.parse(output));
  } catch {
    return output;
  }
}
