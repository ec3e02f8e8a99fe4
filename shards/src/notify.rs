//! Push notifications through the rule engine (spec §2.10): the shard that owns an event finds
//! the active rules of its subject and queues one push per HTTP target in its own outbox
//! ([`crate::push`]). Queuing never waits, so a notification never slows a device session.
//!
//! The envelope: `{"resource","event","event_time" (T1),"event_time_ms" (ISO-8601 with
//! milliseconds),"request_id","notify_data":{"header":{app_id, device_id, node_id,
//! product_id, gateway_id, tags},"body":{...}}}`. Bodies:
//! - `device.message.status:update`: `{message_id, name, topic, status, timestamp}`, plus
//!   `error_info` `{error_code, error_msg}` when the message failed (the spec leaves that
//!   unconfirmed; an extra field is harmless to a JSON client).
//! - `device.status:update`: `{status, status_update_time, last_online_time?}`.
//! - `device.property:report`: `{services: [...]}`: what the shadow accepted of the device's
//!   report — values that did not conform to the product model were not accepted, so they are
//!   not announced (a report with nothing accepted sends nothing).
//! - `device.message:report`: `{topic, content}` — the payload as JSON when it is JSON, else
//!   as a string when it is UTF-8, else base64 (with `"content_encoding":"base64"`).

use std::rc::Rc;

use serde::Serialize;
use simd_json::OwnedValue;

use crate::registry::records::{DeviceRecord, MessageRecord};
use crate::registry::Shard;

#[derive(Serialize)]
struct Header<'a> {
    app_id: &'a str,
    device_id: &'a str,
    node_id: &'a str,
    product_id: &'a str,
    gateway_id: &'a str,
    tags: [(); 0],
}

#[derive(Serialize)]
struct NotifyData<'a, B: Serialize> {
    header: Header<'a>,
    body: B,
}

#[derive(Serialize)]
struct Envelope<'a, B: Serialize> {
    resource: &'a str,
    event: &'a str,
    event_time: String,
    event_time_ms: String,
    request_id: String,
    notify_data: NotifyData<'a, B>,
}

#[derive(Serialize)]
struct ErrorInfo<'a> {
    error_code: &'a str,
    error_msg: &'a str,
}

#[derive(Serialize)]
struct MessageStatusBody<'a> {
    message_id: &'a str,
    name: Option<&'a str>,
    topic: Option<&'a str>,
    status: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_info: Option<ErrorInfo<'a>>,
}

#[derive(Serialize)]
struct DeviceStatusBody<'a> {
    status: &'a str,
    status_update_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_online_time: Option<String>,
}

#[derive(Serialize)]
struct MessageReportBody<'a> {
    topic: &'a str,
    content: OwnedValue,
    #[serde(skip_serializing_if = "Option::is_none")]
    content_encoding: Option<&'static str>,
}

impl Shard {
    /// Queues the body as a `resource:event` notification about `device` to every target. The
    /// body is only made (`None`: nothing to send) when some active rule wants the event.
    fn notify<B: Serialize>(
        self: &Rc<Self>,
        device: &DeviceRecord,
        resource: &str,
        event: &str,
        body: impl FnOnce() -> Option<B>,
    ) {
        let targets = self.routing().targets(&device.project_id, &device.app_id, resource, event);
        if targets.is_empty() {
            return;
        }
        let Some(body) = body() else { return };
        let now = crate::now_unix_ms();
        let envelope = Envelope {
            resource,
            event,
            event_time: protocol::time::format_t1(now),
            event_time_ms: protocol::time::format_t2(now),
            request_id: self.calls.next_request_id(),
            notify_data: NotifyData {
                header: Header {
                    app_id: &device.app_id,
                    device_id: &device.device_id,
                    node_id: &device.node_id,
                    product_id: &device.product_id,
                    gateway_id: &device.gateway_id,
                    tags: [],
                },
                body,
            },
        };
        let bytes = protocol::json::to_vec(&envelope);
        for target in &targets {
            self.pusher.enqueue(target, bytes.clone());
        }
    }

    /// `device.message.status:update` for a message that entered `message.status`.
    pub(crate) fn notify_message_status(self: &Rc<Self>, message: &MessageRecord) {
        if self.routing().is_empty() {
            return;
        }
        let Some(device) = self.device_for_login(&message.device_id) else { return };
        let body = || MessageStatusBody {
            message_id: &message.message_id,
            name: message.name.as_deref(),
            topic: message.topic.as_deref().or(message.topic_full_name.as_deref()),
            status: message.status.as_str(),
            timestamp: protocol::time::format_t1(message.finished_ms.unwrap_or(message.created_ms)),
            error_info: message.error_code.as_deref().map(|code| ErrorInfo {
                error_code: code,
                error_msg: message.error_msg.as_deref().unwrap_or(""),
            }),
        };
        self.notify(&device, "device.message.status", "update", || Some(body()));
    }

    /// `device.status:update` after the device's status changed.
    pub(crate) fn notify_device_status(self: &Rc<Self>, device: &DeviceRecord) {
        let now = device.connection_status_update_time_ms.unwrap_or_else(crate::now_unix_ms);
        let body = DeviceStatusBody {
            status: device.status.as_str(),
            status_update_time: protocol::time::format_t1(now),
            last_online_time: device.active_time_ms.map(protocol::time::format_t1),
        };
        self.notify(device, "device.status", "update", || Some(body));
    }

    /// `device.property:report` with the accepted services of the report the device published
    /// (`payload`, already applied to the shadow). It is parsed and checked against the model
    /// again only when a rule wants the event, so a report costs nothing more without rules.
    pub(crate) fn notify_property_report(self: &Rc<Self>, device_id: &str, payload: &[u8]) {
        if self.routing().is_empty() {
            return;
        }
        let Some(device) = self.device_for_login(device_id) else { return };
        #[derive(Serialize)]
        struct Body {
            services: Vec<protocol::shadow::ReportedService>,
        }
        self.notify(&device, "device.property", "report", || {
            let report = protocol::json::from_bytes::<protocol::shadow::PropertyReport>(payload).ok()?;
            let accepted = self.accepted_part(device_id, report);
            (!accepted.services.is_empty()).then_some(Body { services: accepted.services })
        });
    }

    /// `device.message:report` with what the device published on `topic`.
    pub(crate) fn notify_message_report(self: &Rc<Self>, device_id: &str, topic: &str, payload: &[u8]) {
        if self.routing().is_empty() {
            return;
        }
        let Some(device) = self.device_for_login(device_id) else { return };
        self.notify(&device, "device.message", "report", || {
            let (content, content_encoding) = message_report_content(payload);
            Some(MessageReportBody { topic, content, content_encoding })
        });
    }
}

/// What a `device.message:report` carries for a device's payload: its JSON when it is JSON,
/// else its text when it is UTF-8, else its base64 (with `content_encoding` "base64").
pub fn message_report_content(payload: &[u8]) -> (OwnedValue, Option<&'static str>) {
    let mut scratch = payload.to_vec();
    match simd_json::to_owned_value(&mut scratch) {
        Ok(value) => (value, None),
        Err(_) => match std::str::from_utf8(payload) {
            Ok(text) => (OwnedValue::from(text), None),
            Err(_) => (OwnedValue::from(protocol::base64::encode(payload)), Some("base64")),
        },
    }
}
