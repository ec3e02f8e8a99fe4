// Device actions shared by the device list and the device page: register (AddDevice),
// freeze / unfreeze, reset the secret, delete. Secrets are shown once, in a dialog, and
// kept nowhere.

import { h } from './dom.js';
import { api, seg } from './api.js';
import { field, showFieldError, messageArea, openDialog, busy, confirmDialog, secretDialog, notify, errorText, select } from './ui.js';

/**
 * The buttons of device actions in flight, by action and device id: a list row or page
 * header drawn again meanwhile (they refresh every 2 s) gets that action's button disabled
 * too, and every one of them is enabled again when the action ends.
 */
const inFlight = new Map();

const flightKey = (action, device) => JSON.stringify([action, device.device_id]);

function setBusy(button, on) {
  button.disabled = on;
  if (on) button.setAttribute('aria-busy', 'true');
  else button.removeAttribute('aria-busy');
}

/** Runs `task` as `device`'s `action` (freeze, secret, delete) with its buttons disabled meanwhile. */
async function track(action, device, button, task) {
  const key = flightKey(action, device);
  const buttons = inFlight.get(key) || new Set();
  inFlight.set(key, buttons.add(button));
  for (const b of buttons) setBusy(b, true);
  try {
    return await task();
  } finally {
    inFlight.delete(key);
    for (const b of buttons) setBusy(b, false);
  }
}

/** A button for `device`'s `action`, disabled while that action is in flight. */
function actionButton(action, device, props, label) {
  const button = h('button', props, label);
  const buttons = inFlight.get(flightKey(action, device));
  if (buttons) {
    buttons.add(button);
    setBusy(button, true);
  }
  return button;
}

/** Error codes that belong to one field of the register form though the message names none. */
const REGISTER_CODE_FIELDS = { 'IOTDA.014031': 'node_id', 'IOTDA.013000': 'product_id' };

/** Opens the register dialog. `products` are ProductSummary objects; `onDone(device)` after a 201. */
export function registerDialog(products, { productId, gatewayId, onDone } = {}) {
  const productSelect = select(products.map((p) => [p.product_id, `${p.name} (${p.product_id})`]), { name: 'product_id', testid: 'register-product', value: productId || undefined });
  const input = (name, props = {}) => h('input', { type: 'text', name, autocomplete: 'off', spellcheck: 'false', ...props });
  const fields = [
    field('Product', productSelect, { names: ['product_id'], required: true }),
    field('Node id', input('node_id', { testid: 'register-node', required: true }), { names: ['node_id', 'device_id'], required: true, hint: 'IMEI, MAC or serial number: 1–64 letters, digits, _ or -. The device id becomes {product_id}_{node_id}.' }),
    field('Name', input('device_name', { testid: 'register-name' }), { names: ['device_name'], hint: 'Optional; the node id when left empty.' }),
    field('Secret', input('secret', { testid: 'register-secret', type: 'password', autocomplete: 'new-password' }), { names: ['auth_info'], hint: 'Optional: 8–32 letters, digits, _ or -. Generated when left empty.' }),
    field('Gateway id', input('gateway_id', { testid: 'register-gateway', value: gatewayId || '' }), { names: ['gateway_id'], hint: 'Optional: makes this a sub-device of that gateway.' }),
  ];
  const [fProduct, fNode, fName, fSecret, fGateway] = fields;
  const general = messageArea();
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'register-submit' }, 'Register');
  const form = h('form', { class: 'form', novalidate: true, id: 'register-form' }, fields.map((f) => f.el), general.el);
  submit.setAttribute('form', 'register-form');

  if (products.length === 0) {
    general.info('Create a product first: every device follows a product model.');
    submit.disabled = true;
  }
  const handle = openDialog({ title: 'Register a device', content: form, actions: [submit], testid: 'register-dialog' });
  fNode.input.focus();

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = { node_id: fNode.input.value.trim(), product_id: fProduct.input.value, auth_info: {} };
    if (fName.input.value.trim()) body.device_name = fName.input.value.trim();
    if (fSecret.input.value) body.auth_info.secret = fSecret.input.value;
    if (fGateway.input.value.trim()) body.gateway_id = fGateway.input.value.trim();
    await busy(submit, async () => {
      try {
        const device = await api.post('devices', body);
        fSecret.input.value = '';
        handle.close();
        notify(`Device ${device.device_id} registered.`, 'ok');
        if (device.auth_info && device.auth_info.secret) {
          secretDialog(`Secret of ${device.device_id}`, device.auth_info.secret, [`The device logs in with client id ${device.device_id}_0_0_{timestamp} and this secret.`]);
        }
        if (onDone) onDone(device);
      } catch (error) {
        showFieldError(fields, error, general, error.field || REGISTER_CODE_FIELDS[error.code] || null);
      }
    });
  });
}

/** Freezes or unfreezes `device` (by its status), then calls `onDone`. */
export async function toggleFreeze(device, button, onDone) {
  const freeze = device.status !== 'FROZEN';
  if (freeze && !(await confirmDialog('Freeze device', `Freeze ${device.device_id}? It is disconnected, its logins are refused and calls and messages to it fail until it is unfrozen.`, { confirmLabel: 'Freeze' }))) return;
  await track('freeze', device, button, async () => {
    try {
      await api.post(`devices/${seg(device.device_id)}/${freeze ? 'freeze' : 'unfreeze'}`);
      notify(`Device ${device.device_id} ${freeze ? 'frozen' : 'unfrozen'}.`, 'ok');
      if (onDone) onDone();
    } catch (error) {
      notify(errorText(error), 'bad');
    }
  });
}

/** ResetDeviceSecret: a generated secret, shown once. */
export async function resetSecret(device, button) {
  const ok = await confirmDialog('Reset secret', `Generate a new secret for ${device.device_id}? The current secret stops working at once.`, { confirmLabel: 'Reset secret' });
  if (!ok) return;
  await track('secret', device, button, async () => {
    try {
      const answer = await api.post(`devices/${seg(device.device_id)}/action`, {}, { query: { action_id: 'resetSecret' } });
      secretDialog(`New secret of ${device.device_id}`, answer.secret, [`Secret type: ${answer.secret_type}.`]);
    } catch (error) {
      notify(errorText(error), 'bad');
    }
  });
}

/** DeleteDevice after a confirmation; `onDone` after the 204. */
export async function deleteDevice(device, button, onDone) {
  const ok = await confirmDialog('Delete device', `Delete ${device.device_id}? Its shadow, messages and credentials are deleted too. A gateway with sub-devices is refused.`, { confirmLabel: 'Delete' });
  if (!ok) return;
  await track('delete', device, button, async () => {
    try {
      await api.delete(`devices/${seg(device.device_id)}`);
      notify(`Device ${device.device_id} deleted.`, 'ok');
      if (onDone) onDone();
    } catch (error) {
      notify(errorText(error), 'bad');
    }
  });
}

/** The three buttons for a device (list row or device page). */
export function deviceActionButtons(device, { onChange, onDeleted, compact = false } = {}) {
  const cls = compact ? 'btn btn-small' : 'btn';
  const freeze = actionButton('freeze', device, { type: 'button', class: cls, testid: 'device-freeze' }, device.status === 'FROZEN' ? 'Unfreeze' : 'Freeze');
  const secret = actionButton('secret', device, { type: 'button', class: cls, testid: 'device-reset-secret' }, 'Reset secret');
  const remove = actionButton('delete', device, { type: 'button', class: `${cls} btn-danger`, testid: 'device-delete' }, 'Delete');
  freeze.addEventListener('click', () => toggleFreeze(device, freeze, onChange));
  secret.addEventListener('click', () => resetSecret(device, secret));
  remove.addEventListener('click', () => deleteDevice(device, remove, onDeleted));
  return [freeze, secret, remove];
}
