// The product model (spec §2.3) on the page: readable summaries of properties and paras,
// one input per command para chosen by its data_type, and the conversion of what was typed
// into the JSON value the API expects.

import { h, replace } from './dom.js';
import { field, select } from './ui.js';
import { api, seg, getSession } from './api.js';

/** Product models by project and product id with the time they were fetched (a model changes rarely). */
const productCache = new Map();
const PRODUCT_CACHE_MS = 30_000;

/** The product (ShowProduct), from the cache when fetched within the last 30 s. */
export async function loadProduct(productId, signal) {
  const session = getSession();
  const key = JSON.stringify([session ? session.projectId : '', productId]);
  const cached = productCache.get(key);
  if (cached && Date.now() - cached.at < PRODUCT_CACHE_MS) return cached.product;
  const product = await api.get(`products/${seg(productId)}`, { signal });
  productCache.set(key, { product, at: Date.now() });
  return product;
}

/** Forgets every cached product (on sign-out). */
export function clearProductCache() {
  productCache.clear();
}

/** A number written exactly as typed (JSON number grammar), spliced into the body as is. */
export class RawJson {
  constructor(text) {
    this.text = text;
  }
}

/** JSON text of `value`, with RawJson values written verbatim (so `long` keeps every digit). */
export function toJson(value, indent) {
  const raws = [];
  const nonce = Math.random().toString(36).slice(2);
  const text = JSON.stringify(value, (_, v) => (v instanceof RawJson ? `\u0000${nonce}:${raws.push(v.text) - 1}\u0000` : v), indent);
  const pattern = new RegExp(`"\\\\u0000${nonce}:(\\d+)\\\\u0000"`, 'g');
  return text.replace(pattern, (_, index) => raws[Number(index)]);
}

const JSON_NUMBER = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/;
const NUMERIC_TYPES = new Set(['int', 'long', 'decimal']);

/**
 * What the API gets for a para typed as `raw`, or undefined to leave the para out (empty).
 * Numbers that do not parse are sent as the raw string, so the API's model error shows.
 */
export function convertPara(para, raw) {
  const type = para.data_type;
  const trimmed = raw.trim();
  if (trimmed === '') return undefined;
  if (NUMERIC_TYPES.has(type)) {
    if (JSON_NUMBER.test(trimmed)) return new RawJson(trimmed);
    const number = Number(trimmed);
    return Number.isFinite(number) && /^[+-]?[\d.]+([eE][+-]?\d+)?$/.test(trimmed) ? number : raw;
  }
  if (type === 'boolean') {
    if (trimmed === 'true') return true;
    if (trimmed === 'false') return false;
    return raw;
  }
  if (type === 'jsonObject') {
    try {
      return JSON.parse(trimmed);
    } catch {
      return raw;
    }
  }
  if (type === 'string list') {
    if (trimmed.startsWith('[')) {
      try {
        return JSON.parse(trimmed);
      } catch {
        return raw;
      }
    }
    return trimmed.split(/[\n,]/).map((s) => s.trim()).filter((s) => s !== '');
  }
  return raw; // string, DateTime, enum
}

/** "int · 0 to 100 · step 1 · unit % · max 16 chars · required" */
export function describeSpec(spec) {
  const parts = [spec.data_type || '?'];
  if (spec.min !== undefined || spec.max !== undefined) parts.push(`${spec.min ?? '…'} to ${spec.max ?? '…'}`);
  if (spec.step !== undefined) parts.push(`step ${spec.step}`);
  if (spec.unit) parts.push(`unit ${spec.unit}`);
  if (spec.max_length !== undefined) parts.push(`max ${spec.max_length} chars`);
  if (spec.enum_list && spec.enum_list.length) parts.push(`one of ${spec.enum_list.join(', ')}`);
  if (spec.required) parts.push('required');
  return parts.join(' · ');
}

/** A plausible example value for a para (for document templates). */
export function exampleValue(para) {
  if (para.enum_list && para.enum_list.length) {
    return NUMERIC_TYPES.has(para.data_type) ? Number(para.enum_list[0]) : para.enum_list[0];
  }
  switch (para.data_type) {
    case 'int':
    case 'long':
    case 'decimal':
      return para.min !== undefined && Number.isFinite(Number(para.min)) ? Number(para.min) : 0;
    case 'boolean':
      return false;
    case 'jsonObject':
      return {};
    case 'string list':
      return [];
    case 'DateTime':
      return new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '');
    default:
      return '';
  }
}

/** The input for one para: a select for enums and booleans, a textarea for JSON and lists. */
function paraInput(para, testid) {
  const hasEnum = para.enum_list && para.enum_list.length > 0;
  if (hasEnum || para.data_type === 'boolean') {
    const values = hasEnum ? para.enum_list : ['true', 'false'];
    const options = [['', para.required ? '— choose —' : '— leave out —'], ...values.map((v) => [String(v), String(v)])];
    return select(options, { testid, name: para.para_name });
  }
  if (para.data_type === 'jsonObject' || para.data_type === 'string list') {
    const placeholder = para.data_type === 'jsonObject' ? '{"key": "value"}' : 'one item per line, or a JSON array';
    return h('textarea', { testid, name: para.para_name, rows: 3, class: 'mono', placeholder, spellcheck: 'false' });
  }
  const numeric = NUMERIC_TYPES.has(para.data_type);
  return h('input', {
    type: 'text',
    testid,
    name: para.para_name,
    inputmode: numeric ? (para.data_type === 'decimal' ? 'decimal' : 'numeric') : null,
    placeholder: numeric && (para.min !== undefined || para.max !== undefined) ? `${para.min ?? ''} … ${para.max ?? ''}` : para.data_type === 'DateTime' ? 'yyyyMMddTHHmmssZ' : '',
    autocomplete: 'off',
    spellcheck: 'false',
  });
}

/**
 * The command form for `product`: service → command → one input per para. With no command
 * in the model, a free-format form (service_id, command_name, paras as JSON).
 * Returns `{el, read(), fields}`; `read()` gives `{body, text}` (text is the JSON sent).
 * `testIds` adds the console's data-testid hooks (the device page's dialog only).
 */
export function commandForm(product, { testIds = true } = {}) {
  const tid = (name) => (testIds ? name : undefined);
  const services = ((product && product.service_capabilities) || []).filter((s) => (s.commands || []).length > 0);
  if (services.length === 0) return freeCommandForm(tid);

  const serviceSelect = select(services.map((s) => [s.service_id, s.service_id]), { testid: tid('command-service'), name: 'service_id' });
  const commandSelect = h('select', { testid: tid('command-name'), name: 'command_name' });
  const parasBox = h('div', { class: 'paras' });
  const serviceField = field('Service', serviceSelect, { names: ['service_id'] });
  const commandField = field('Command', commandSelect, { names: ['command_name'] });
  let paraFields = [];

  const currentService = () => services.find((s) => s.service_id === serviceSelect.value) || services[0];
  const currentCommand = () => (currentService().commands || []).find((c) => c.command_name === commandSelect.value);

  function renderParas() {
    const command = currentCommand();
    const paras = (command && command.paras) || [];
    paraFields = paras.map((para) => {
      const input = paraInput(para, tid(`para-${para.para_name}`));
      const f = field(para.para_name, input, { hint: [describeSpec(para), para.description].filter(Boolean).join(' — '), names: [`paras.${para.para_name}`], required: para.required, errorTestid: tid(`para-error-${para.para_name}`) });
      f.para = para;
      return f;
    });
    replace(parasBox, paraFields.length ? paraFields.map((f) => f.el) : h('p', { class: 'muted' }, 'This command has no paras.'));
  }

  function renderCommands() {
    const commands = currentService().commands || [];
    replace(commandSelect, commands.map((c) => h('option', { value: c.command_name }, c.command_name)));
    renderParas();
  }

  serviceSelect.addEventListener('change', renderCommands);
  commandSelect.addEventListener('change', renderParas);
  renderCommands();

  return {
    el: h('div', { class: 'command-form' }, h('div', { class: 'row' }, serviceField.el, commandField.el), h('fieldset', { class: 'paras-set' }, h('legend', null, 'Paras'), parasBox)),
    get fields() {
      return [serviceField, commandField, ...paraFields];
    },
    read() {
      const paras = {};
      for (const f of paraFields) {
        const value = convertPara(f.para, f.input.value);
        if (value !== undefined) paras[f.para.para_name] = value;
      }
      const body = { service_id: serviceSelect.value, command_name: commandSelect.value, paras };
      return { body, text: toJson(body) };
    },
  };
}

function freeCommandForm(tid) {
  const service = h('input', { type: 'text', testid: tid('command-service'), name: 'service_id', autocomplete: 'off' });
  const command = h('input', { type: 'text', testid: tid('command-name'), name: 'command_name', autocomplete: 'off' });
  const paras = h('textarea', { testid: tid('command-paras'), name: 'paras', rows: 5, class: 'mono', spellcheck: 'false' }, '{}');
  const fields = [
    field('service_id', service, { names: ['service_id'], hint: 'The product model declares no command: free format.' }),
    field('command_name', command, { names: ['command_name'] }),
    field('paras (JSON object)', paras, { names: ['paras'] }),
  ];
  return {
    el: h('div', { class: 'command-form' }, fields.map((f) => f.el)),
    fields,
    read() {
      let parsed;
      try {
        parsed = JSON.parse(paras.value || '{}');
      } catch {
        parsed = paras.value; // sent as is: the API names the field
      }
      const body = { paras: parsed };
      if (service.value.trim()) body.service_id = service.value.trim();
      if (command.value.trim()) body.command_name = command.value.trim();
      return { body, text: toJson(body) };
    },
  };
}
