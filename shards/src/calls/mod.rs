//! Synchronous calls to a device (spec §2.5–§2.6, DESIGN.md §4): a command, a property set or
//! a property get, served on the device's home shard.
//!
//! The flow: the device exists in the caller's project? → the call fits the product model? →
//! the device is online? → a fresh request id (for a command it *is* the `command_id`) and a
//! waiter → PUBLISH on `.../sys/{commands|properties/set|properties/get}/request_id={id}` → the
//! device's answer on `.../response/request_id={id}` completes the waiter → the answer goes back
//! verbatim. No answer before the deadline → [`Reply::TimedOut`].
//!
//! Decisions where the spec is silent:
//! - Validation comes before the online check: an invalid call is refused with 400 whether or
//!   not the device is connected (it is a bug in the caller either way).
//! - A waiter survives a disconnect: a device that reconnects before the deadline may still
//!   answer by the request id (the official SDKs reconnect on their own, and an answer that
//!   arrives is worth more than a timeout). Request ids are unique, so nothing is misdelivered.
//! - An answer must be JSON (any value; an empty payload reads as `{}`). One that is not is
//!   dropped and counted as malformed, and the call goes on waiting. An answer with an unknown
//!   or late request id, or from another device's call, is dropped and counted as unmatched.
//! - At most `device_calls_in_flight_max` calls wait per device ([`ShardError::TooManyCalls`],
//!   429), and at most [`waiters::GATEWAY_CALLS_MAX`] for one gateway's answers
//!   ([`ShardError::GatewayTooManyCalls`], 429); across the shard the total is bounded by the
//!   HTTP connections that can wait.
//! - Deleting the device fails its waiting calls at once with "device not found".
//! - A QoS 1 subscription to the command topic is honoured (resent with DUP while
//!   unacknowledged, like a QoS 1 message); a call that would have to wait for room in the
//!   session's QoS 1 window is refused as busy (429) rather than queued, so it can never go out
//!   after its caller timed out.
//! - A sub-device's call goes through its gateway's connection with `object_device_id`
//!   ([`gateway`]).

pub mod gateway;
pub mod metrics;
pub mod waiters;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalSender};
use protocol::model::{check, Product};
use protocol::mqtt::topic;
use simd_json::OwnedValue;

use crate::device_access::link::DeliverError;
use crate::messages::{Reply, ShardError};
use crate::registry::Shard;
use metrics::{CallMetrics, Outcome};
use waiters::{Busy, Waiters};

/// Which synchronous call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallKind {
    Command = 0,
    PropertiesSet = 1,
    PropertiesGet = 2,
}

impl CallKind {
    pub const ALL: [CallKind; 3] = [CallKind::Command, CallKind::PropertiesSet, CallKind::PropertiesGet];

    pub fn as_str(self) -> &'static str {
        match self {
            CallKind::Command => "command",
            CallKind::PropertiesSet => "properties_set",
            CallKind::PropertiesGet => "properties_get",
        }
    }

    /// The downlink topic the call is published on.
    pub fn topic(self, device_id: &str, request_id: &str) -> String {
        match self {
            CallKind::Command => topic::command_topic(device_id, request_id),
            CallKind::PropertiesSet => topic::properties_set_topic(device_id, request_id),
            CallKind::PropertiesGet => topic::properties_get_topic(device_id, request_id),
        }
    }
}

/// What the application asked for, parsed and shape-checked by the front desk.
#[derive(Debug, Clone, PartialEq)]
pub enum CallBody {
    Command {
        service_id: Option<String>,
        command_name: Option<String>,
        paras: OwnedValue,
    },
    /// `(service_id, properties)` per service, in request order.
    PropertiesSet {
        services: Vec<(String, OwnedValue)>,
    },
    PropertiesGet {
        service_id: String,
    },
}

impl CallBody {
    pub fn kind(&self) -> CallKind {
        match self {
            CallBody::Command { .. } => CallKind::Command,
            CallBody::PropertiesSet { .. } => CallKind::PropertiesSet,
            CallBody::PropertiesGet { .. } => CallKind::PropertiesGet,
        }
    }

    /// Checks the call against the device's product model (`None`: the product is unknown
    /// here, so only a free-format command passes).
    pub fn check(
        &self,
        product: Option<&Product>,
        product_id: &str,
    ) -> Result<(), protocol::error::ValidationError> {
        let unknown_product = || {
            protocol::error::ValidationError::new(
                "service_id",
                format!("the device's product '{product_id}' has no model on this shard"),
            )
        };
        match self {
            CallBody::Command { service_id: None, paras, .. } => match product {
                Some(product) => check::check_command(product, None, None, Some(paras)),
                None if matches!(paras, OwnedValue::Object(_)) => Ok(()),
                None => Err(protocol::error::ValidationError::new("paras", "paras must be a JSON object")),
            },
            CallBody::Command { service_id, command_name, paras } => check::check_command(
                product.ok_or_else(unknown_product)?,
                service_id.as_deref(),
                command_name.as_deref(),
                Some(paras),
            ),
            CallBody::PropertiesSet { services } => {
                check::check_property_set(product.ok_or_else(unknown_product)?, services)
            }
            CallBody::PropertiesGet { service_id } => {
                check::check_property_get(product.ok_or_else(unknown_product)?, service_id)
            }
        }
    }

    /// The JSON the device receives (spec §1.5); `object_device_id` names the sub-device when
    /// the call goes to its gateway (spec §7.1).
    fn payload(&self, object_device_id: Option<&str>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Command<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            object_device_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            service_id: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            command_name: Option<&'a str>,
            paras: &'a OwnedValue,
        }
        #[derive(serde::Serialize)]
        struct Service<'a> {
            service_id: &'a str,
            properties: &'a OwnedValue,
        }
        #[derive(serde::Serialize)]
        struct PropertiesSet<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            object_device_id: Option<&'a str>,
            services: Vec<Service<'a>>,
        }
        #[derive(serde::Serialize)]
        struct PropertiesGet<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            object_device_id: Option<&'a str>,
            service_id: &'a str,
        }
        match self {
            CallBody::Command { service_id, command_name, paras } => protocol::json::to_vec(&Command {
                object_device_id,
                service_id: service_id.as_deref(),
                command_name: command_name.as_deref(),
                paras,
            }),
            CallBody::PropertiesSet { services } => protocol::json::to_vec(&PropertiesSet {
                object_device_id,
                services: services
                    .iter()
                    .map(|(service_id, properties)| Service { service_id, properties })
                    .collect(),
            }),
            CallBody::PropertiesGet { service_id } => {
                protocol::json::to_vec(&PropertiesGet { object_device_id, service_id })
            }
        }
    }
}

/// A synchronous call on its way to the device's home shard.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceCall {
    pub project_id: String,
    pub device_id: String,
    pub body: CallBody,
    /// How long to wait for the device's answer.
    pub timeout_ms: u64,
}

/// What wakes a waiting call.
#[derive(Debug)]
enum Wake {
    Answered { response: Vec<u8>, at: Instant },
    DeviceDeleted,
    DeviceFrozen,
}

/// Per-shard state of the calls: the waiters, the request-id generator, the figures.
#[derive(Debug)]
pub struct CallState {
    waiters: RefCell<Waiters<LocalSender<Wake>>>,
    metrics: RefCell<CallMetrics>,
    /// Random per start, so ids never repeat across restarts.
    id_nonce: u64,
    id_counter: Cell<u64>,
}

impl Default for CallState {
    fn default() -> Self {
        let mut nonce = [0u8; 8];
        // Without OS randomness the ids are still unique within this run (the counter).
        let _ = getrandom::getrandom(&mut nonce);
        CallState {
            waiters: RefCell::new(Waiters::new(DEFAULT_CALLS_PER_DEVICE_MAX)),
            metrics: RefCell::new(CallMetrics::default()),
            id_nonce: u64::from_le_bytes(nonce),
            id_counter: Cell::new(0),
        }
    }
}

/// Calls waiting per device unless configured (`device_calls_in_flight_max`).
pub const DEFAULT_CALLS_PER_DEVICE_MAX: usize = 64;

impl CallState {
    pub fn set_calls_per_device_max(&self, max: usize) {
        self.waiters.borrow_mut().set_per_device_max(max);
    }

    /// A fresh request id shaped like a UUID v4 (IoTDA's `command_id`s are): a random nonce per
    /// start and a counter, so unique within a run and, with overwhelming odds, across runs.
    pub(crate) fn next_request_id(&self) -> String {
        let counter = self.id_counter.get().wrapping_add(1);
        self.id_counter.set(counter);
        let nonce = self.id_nonce;
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            nonce >> 32,
            (nonce >> 16) & 0xffff,
            nonce & 0x0fff,
            0x8000 | ((counter >> 48) & 0x3fff),
            counter & 0xffff_ffff_ffff,
        )
    }

    pub fn metrics(&self) -> CallMetrics {
        self.metrics.borrow().clone()
    }

    pub fn waiting(&self) -> usize {
        self.waiters.borrow().len()
    }

    pub fn count(&self, kind: CallKind, outcome: Outcome) {
        self.metrics.borrow_mut().count(kind, outcome);
    }
}

/// Removes the waiter when the waiting call ends, however it ends (answered, deadline, or its
/// caller dropped — then counted as cancelled).
struct WaiterGuard<'a> {
    shard: &'a Shard,
    request_id: String,
    kind: CallKind,
    counted: bool,
}

impl Drop for WaiterGuard<'_> {
    fn drop(&mut self) {
        self.shard.calls.waiters.borrow_mut().remove(&self.request_id);
        if !self.counted {
            self.shard.calls.count(self.kind, Outcome::Cancelled);
        }
    }
}

impl Shard {
    /// Counts a call the front desk refused before it reached the home shard.
    pub fn count_call(&self, kind: CallKind, outcome: Outcome) {
        self.calls.count(kind, outcome);
    }

    /// Runs a synchronous call to a device of this shard (see the module doc).
    pub(crate) async fn device_call(self: &Rc<Self>, call: DeviceCall) -> Reply {
        let kind = call.body.kind();
        let started = self.check_call(&call).and_then(|gateway| match gateway {
            Some(gateway_id) => Ok(Err(gateway_id)),
            None => self.publish_call(&call.device_id, None, &call.body).map(Ok),
        });
        let started = match started {
            Ok(Ok(started)) => started,
            Ok(Err(gateway_id)) => return self.call_through_gateway(gateway_id, call).await,
            Err((outcome, error)) => {
                self.calls.count(kind, outcome);
                return Reply::Failed(error);
            }
        };
        self.await_call(kind, started, call.timeout_ms, &call.device_id).await
    }

    /// Waits for the answer to a published call, its deadline, or the device's delete.
    async fn await_call(
        self: &Rc<Self>,
        kind: CallKind,
        (request_id, receiver, sent_at): (String, local_channel::LocalReceiver<Wake>, Instant),
        timeout_ms: u64,
        device_id: &str,
    ) -> Reply {
        let mut guard = WaiterGuard { shard: self, request_id: request_id.clone(), kind, counted: false };
        let deadline = Duration::from_millis(timeout_ms);
        let woken = futures_lite::future::or(receiver.recv(), async {
            glommio::timer::sleep(deadline.saturating_sub(sent_at.elapsed())).await;
            None
        })
        .await;
        guard.counted = true;
        match woken {
            Some(Wake::Answered { response, at }) => {
                let mut metrics = self.calls.metrics.borrow_mut();
                metrics.count(kind, Outcome::Ok);
                metrics.record_round_trip(kind, at.duration_since(sent_at).as_micros() as u64);
                Reply::Answered { request_id, response }
            }
            Some(Wake::DeviceDeleted) => {
                self.calls.count(kind, Outcome::Unknown);
                Reply::Failed(ShardError::DeviceNotFound)
            }
            Some(Wake::DeviceFrozen) => {
                self.calls.count(kind, Outcome::Offline);
                Reply::Failed(ShardError::DeviceFrozen)
            }
            None => {
                self.calls.count(kind, Outcome::Timeout);
                tracing::debug!(
                    shard = self.id(),
                    device_id,
                    request_id,
                    kind = kind.as_str(),
                    "device call timed out"
                );
                Reply::TimedOut { request_id }
            }
        }
    }

    /// The checks on the device's home shard: it exists in the caller's project, the call fits
    /// its product model, it is not frozen. `Some(gateway)`: a sub-device, whose call goes
    /// through that gateway.
    fn check_call(&self, call: &DeviceCall) -> Result<Option<String>, (Outcome, ShardError)> {
        let (product_id, product) = self
            .model_of_device(&call.project_id, &call.device_id)
            .ok_or((Outcome::Unknown, ShardError::DeviceNotFound))?;
        call.body
            .check(product.as_deref(), &product_id)
            .map_err(|error| (Outcome::Invalid, ShardError::Invalid(error)))?;
        if self.is_frozen(&call.device_id) {
            return Err((Outcome::Offline, ShardError::DeviceFrozen));
        }
        Ok(self.gateway_of(&call.device_id))
    }

    /// Publishes a checked call on the connection of `session_device` (the device itself, or
    /// the gateway of `object_device_id`), synchronously: waiter, then PUBLISH.
    #[allow(clippy::type_complexity)]
    fn publish_call(
        &self,
        session_device: &str,
        object_device_id: Option<&str>,
        body: &CallBody,
    ) -> Result<(String, local_channel::LocalReceiver<Wake>, Instant), (Outcome, ShardError)> {
        let kind = body.kind();
        let link = self.session_link(session_device).ok_or((Outcome::Offline, ShardError::DeviceOffline))?;
        let request_id = self.calls.next_request_id();
        let (sender, receiver) = local_channel::new_bounded(1);
        // Bounded per device the call is for; completed by the connection's answer.
        let bounded = object_device_id.unwrap_or(session_device);
        let registered = self.calls.waiters.borrow_mut().register_answered_by(
            &request_id,
            bounded,
            session_device,
            kind,
            sender,
        );
        registered.map_err(|busy| match busy {
            Busy::Device => {
                let max = self.device_access_config().device_calls_in_flight_max;
                (Outcome::Busy, ShardError::TooManyCalls(max))
            }
            Busy::Gateway => (Outcome::Busy, ShardError::GatewayTooManyCalls(waiters::GATEWAY_CALLS_MAX)),
        })?;
        let sent_at = Instant::now();
        let delivered = link.deliver_now(
            kind.topic(session_device, &request_id),
            Bytes::from(body.payload(object_device_id)),
        );
        if let Err(error) = delivered {
            self.calls.waiters.borrow_mut().remove(&request_id);
            tracing::debug!(shard = self.id(), device_id = session_device, %error, "device call not delivered");
            return Err(match error {
                DeliverError::Full(error) => (Outcome::Busy, ShardError::DeviceBusy(error.to_string())),
                DeliverError::NotSubscribed(_) | DeliverError::NotReading => {
                    (Outcome::Offline, ShardError::DeviceOffline)
                }
            });
        }
        if delivered == Ok(1) {
            // Resent with DUP while unacknowledged, like a QoS 1 message (spec §1.6).
            self.note_qos1_in_flight(session_device);
        }
        Ok((request_id, receiver, sent_at))
    }

    /// The device published on a `.../response/request_id={id}` topic.
    pub(crate) fn device_answered(&self, device_id: &str, kind: CallKind, request_id: &str, payload: &[u8]) {
        let at = Instant::now();
        let Some(response) = answer_json(payload) else {
            self.calls.metrics.borrow_mut().malformed_answers += 1;
            tracing::debug!(
                shard = self.id(),
                device_id,
                request_id,
                "an answer that is not JSON was dropped"
            );
            return;
        };
        let waiter = self.calls.waiters.borrow_mut().complete(device_id, kind, request_id);
        match waiter {
            Some(sender) => {
                let _ = sender.try_send(Wake::Answered { response, at });
            }
            None => {
                self.calls.metrics.borrow_mut().unmatched_answers += 1;
                tracing::debug!(
                    shard = self.id(),
                    device_id,
                    request_id,
                    kind = kind.as_str(),
                    "an answer with an unknown or late request id was dropped"
                );
            }
        }
    }

    /// The device was deleted: its waiting calls fail now, not at their deadline.
    pub(crate) fn cancel_device_calls(&self, device_id: &str) {
        let removed = self.calls.waiters.borrow_mut().remove_device(device_id);
        for sender in removed {
            let _ = sender.try_send(Wake::DeviceDeleted);
        }
    }

    /// The device was frozen: its waiting calls fail now (403 frozen), not at their deadline.
    pub(crate) fn fail_calls_of_frozen(&self, device_id: &str) {
        let removed = self.calls.waiters.borrow_mut().remove_device(device_id);
        for sender in removed {
            let _ = sender.try_send(Wake::DeviceFrozen);
        }
    }
}

/// The answer as JSON text to embed verbatim, or `None` if it is not JSON. An empty (or blank)
/// payload is `{}`: every field of an answer is optional (spec §1.5).
pub fn answer_json(payload: &[u8]) -> Option<Vec<u8>> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Some(b"{}".to_vec());
    }
    // simd-json parses in place: check a copy, hand back the original bytes.
    let mut scratch = payload.to_vec();
    simd_json::to_tape(&mut scratch).ok()?;
    scratch.clear();
    scratch.extend_from_slice(payload);
    Some(scratch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_must_be_json_and_empty_ones_are_empty_objects() {
        assert_eq!(answer_json(b"").unwrap(), b"{}");
        assert_eq!(answer_json(b" \n").unwrap(), b"{}");
        let text = "{\"z\":1,\"a\":{\"k\":[1,2,{\"x\":\"温度\"}]}}";
        assert_eq!(answer_json(text.as_bytes()).unwrap(), text.as_bytes(), "verbatim, key order kept");
        assert_eq!(answer_json(b"42").unwrap(), b"42");
        assert!(answer_json(b"{not json").is_none());
        assert!(answer_json(b"{\"a\":1} trailing").is_none());
        assert!(answer_json(&[0xff, 0xfe]).is_none());
    }

    #[test]
    fn request_ids_are_uuid_shaped_and_unique() {
        let state = CallState::default();
        let a = state.next_request_id();
        let b = state.next_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36, "{a}");
        let groups: Vec<&str> = a.split('-').collect();
        assert_eq!(groups.iter().map(|g| g.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12]);
        assert!(groups[2].starts_with('4'), "version 4: {a}");
        assert!(a.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    }

    #[test]
    fn payloads_follow_the_spec_shapes() {
        let paras: OwnedValue = simd_json::json!({"value": 1});
        let command = CallBody::Command { service_id: None, command_name: Some("ON".into()), paras };
        assert_eq!(
            String::from_utf8(command.payload(None)).unwrap(),
            r#"{"command_name":"ON","paras":{"value":1}}"#
        );
        let get = CallBody::PropertiesGet { service_id: "water".into() };
        assert_eq!(String::from_utf8(get.payload(None)).unwrap(), r#"{"service_id":"water"}"#);
        let set =
            CallBody::PropertiesSet { services: vec![("water".into(), simd_json::json!({"level": 3}))] };
        assert_eq!(
            String::from_utf8(set.payload(None)).unwrap(),
            r#"{"services":[{"service_id":"water","properties":{"level":3}}]}"#
        );
    }
}
