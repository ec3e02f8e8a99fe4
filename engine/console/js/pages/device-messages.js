// The messages tab: CreateMessage (text or JSON, optional name, topic and ttl) and the
// device's 20-message history with live statuses (polled every 2 s).

import { h, replace, timeEl, badge, shortJson, json } from '../dom.js';
import { api, seg } from '../api.js';
import { field, messageArea, busy, showFieldError, select, loading, errorBox } from '../ui.js';

const POLL_MS = 2000;

/** The `message` value: JSON when asked (or, in auto mode, an object or array that parses). */
function messageValue(text, format) {
  if (format === 'text') return text;
  try {
    const parsed = JSON.parse(text);
    if (format === 'json' || (parsed !== null && typeof parsed === 'object')) return parsed;
  } catch (error) {
    if (format === 'json') throw new Error(`Not valid JSON: ${error.message}`);
  }
  return text;
}

function messageRow(message) {
  const error = message.error_info ? h('div', { class: 'small' }, h('code', null, message.error_info.error_code), ' ', message.error_info.error_msg) : null;
  const topic = message.topic || message.topic_full_name;
  return h(
    'tr',
    { testid: 'message-row', dataset: { messageId: message.message_id } },
    h('td', null, timeEl(message.created_time)),
    h('td', null, h('code', { class: 'small' }, message.message_id), message.name ? h('div', null, message.name) : null),
    h('td', null, h('details', null, h('summary', null, shortJson(message.message, 50)), h('pre', { class: 'code' }, json(message.message)))),
    h('td', null, topic ? h('code', null, topic) : h('span', { class: 'muted' }, 'default')),
    h('td', null, badge(message.status, { testid: 'message-status' }), error),
    h('td', null, message.finished_time ? timeEl(message.finished_time) : h('span', { class: 'muted' }, '—')),
  );
}

export function renderMessages(ctx, body, device) {
  const deviceId = device.device_id;
  const input = h('textarea', { name: 'message', rows: 4, class: 'mono', testid: 'message-input', spellcheck: 'false', placeholder: 'Hello, device' });
  const format = select(
    [
      ['auto', 'Auto: a JSON object or array is sent as JSON, anything else as text'],
      ['text', 'Text (a JSON string)'],
      ['json', 'JSON (any value)'],
    ],
    { name: 'format', testid: 'message-format' },
  );
  const name = h('input', { type: 'text', name: 'name', testid: 'message-name', autocomplete: 'off' });
  const topic = h('input', { type: 'text', name: 'topic', testid: 'message-topic', autocomplete: 'off', placeholder: 'default topic' });
  const ttl = h('input', { type: 'text', name: 'ttl', testid: 'message-ttl', inputmode: 'numeric', autocomplete: 'off', placeholder: '1440' });
  const fMessage = field('Message', input, { names: ['message', 'encoding', 'payload_format', 'properties'], required: true });
  const fields = [
    fMessage,
    field('Format', format, { names: [] }),
    field('Name', name, { names: ['name', 'message_id'], hint: 'Optional, up to 128 characters.' }),
    field('Topic', topic, { names: ['topic', 'topic_full_name'], hint: `Optional: published on $oc/devices/${device.gateway_id}/user/{topic}; the device must subscribe to it.` }),
    field('Cache time (minutes)', ttl, { names: ['ttl'], hint: 'A multiple of 5 from 0 to 1440 (default). 0: fails at once when the device is offline.' }),
  ];
  const general = messageArea();
  const sent = h('div', { class: 'message-sent', 'aria-live': 'polite', testid: 'message-result' });
  const send = h('button', { type: 'submit', class: 'btn btn-primary', testid: 'message-send' }, 'Send message');
  const form = h(
    'form',
    { class: 'form panel', novalidate: true, 'aria-labelledby': 'message-form-title' },
    h('h2', { id: 'message-form-title' }, 'Send a message'),
    h('p', { class: 'muted' }, 'Messages are delivered at once to an online device, or kept until it next logs in.'),
    fields[0].el,
    h('div', { class: 'row' }, fields.slice(1).map((f) => f.el)),
    general.el,
    h('div', { class: 'form-actions' }, send, sent),
  );
  const historyBox = h('div', null, loading());
  replace(body, form, h('section', { class: 'panel', 'aria-labelledby': 'messages-title' }, h('h2', { id: 'messages-title' }, 'Last 20 messages'), historyBox));

  let lastSignature = null;
  const poller = ctx.poll(
    async (run) => {
      const answer = await api.get(`devices/${seg(deviceId)}/messages`, { signal: ctx.signal });
      if (run.stale) return;
      const signature = JSON.stringify(answer);
      if (signature === lastSignature) return;
      lastSignature = signature;
      const messages = [...(answer.messages || [])].reverse(); // the API lists oldest first
      replace(
        historyBox,
        messages.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { class: 'table compact', testid: 'message-table' },
                h('thead', null, h('tr', null, ['Created', 'Message id / name', 'Message', 'Topic', 'Status', 'Finished'].map((t) => h('th', { scope: 'col' }, t)))),
                h('tbody', null, messages.map(messageRow)),
              ),
            )
          : h('p', { class: 'muted' }, 'No message sent to this device yet.'),
      );
    },
    POLL_MS,
    (error) => {
      lastSignature = null;
      replace(historyBox, errorBox(error));
    },
  );

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const f of fields) f.clearError();
    general.clear();
    replace(sent);
    if (input.value === '') {
      fMessage.setError('Write the message to send.');
      input.focus();
      return;
    }
    const request = {};
    try {
      request.message = messageValue(input.value, format.value);
    } catch (error) {
      fMessage.setError(error.message);
      return;
    }
    if (name.value.trim()) request.name = name.value.trim();
    if (topic.value.trim()) request.topic = topic.value.trim();
    const ttlText = ttl.value.trim();
    // A ttl that is not a whole number is sent as typed: the API says what is wrong with it.
    if (ttlText) request.ttl = /^\d+$/.test(ttlText) ? Number(ttlText) : ttlText;
    await busy(send, async () => {
      try {
        const answer = await api.post(`devices/${seg(deviceId)}/messages`, request, { signal: ctx.signal });
        if (!ctx.alive) return;
        replace(sent, 'Message ', h('code', null, answer.message_id), ' accepted: ', badge(answer.result && answer.result.status));
        input.value = '';
        lastSignature = null;
        poller.now();
      } catch (error) {
        if (ctx.alive) showFieldError(fields, error, general);
      }
    });
  });
}
