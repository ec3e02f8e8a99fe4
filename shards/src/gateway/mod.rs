//! Gateways on the device side (spec §7.1): what a gateway publishes for its sub-devices, and
//! what its going offline does to them. (Their downlink calls are `crate::calls::gateway`.)
//!
//! - `sub_device_update_status` (`.../sys/events/up`, service `$sub_device_manager`): 1 to
//!   [`STATUS_ENTRIES_MAX`] `{device_id, status}`; each sub-device's home shard sets its status
//!   (durably, with its `device.status` push) if it is this gateway's child. The gateway gets
//!   `sub_device_update_status_response` on `.../sys/events/down` listing
//!   `successful_devices` and `failed_devices` (`{device_id, error_code, error_msg}`).
//! - The batch report `.../sys/gateway/sub_devices/properties/report`
//!   (`{"devices":[{"device_id","services":[…]}]}`): each entry goes to its sub-device's home
//!   shard and into its shadow like the sub-device's own report (model-checked, durable,
//!   `device.property` push); an entry for a device that is not this gateway's child, and
//!   every entry after the first [`REPORT_ENTRIES_MAX`], is counted (`refused` uplinks) and
//!   ignored.
//! - The entries of a status event or a batch report go to their home shards together and are
//!   awaited together: the gateway's reader waits about one mesh round trip per event (one
//!   naming a device twice goes one entry at a time, in order).
//! - `.../sys/shadow/get` with `object_device_id` naming one of its sub-devices answers that
//!   sub-device's shadow; `.../sys/messages/up` with one is that sub-device's message for its
//!   `device.message:report` push. Naming a device that is not its child — or of another
//!   project — is refused (logged at debug, nothing answered or pushed; counted `refused`,
//!   for messages only when a rule would have pushed them).
//! - A gateway whose session ends while some of its sub-devices are ONLINE makes them OFFLINE,
//!   on every shard that holds one.
//! - `add_sub_device_request` (`paras.devices: [{node_id, product_id, name?, description?,
//!   extension_info?, device_id?}]`, at most [`MANAGE_ENTRIES_MAX`]) and
//!   `delete_sub_device_request` (`paras.devices: ["id", …]`): each is an AddDevice /
//!   DeleteDevice run by the front desk on shard 0 (a forwarded call, so every REST rule
//!   holds: validation, the gateway checks, the sub-device bound, a delete only of this
//!   gateway's own child), answered with `add_sub_device_response` (successful devices with
//!   their `device_id`; failed ones with `node_id`, `product_id`, `error_code`, `error_msg`)
//!   or `delete_sub_device_response` (ids; failed ones with `device_id`, `error_code`,
//!   `error_msg`), `event_id` echoed.
//! - `add_sub_device_notify` / `delete_sub_device_notify` go to an online gateway when the
//!   application adds or deletes one of its sub-devices through the REST API
//!   ([`GatewayRequest::Notify`]); `paras.version` is the notify's time in unix ms (the spec
//!   leaves the version's meaning open; it only grows). A gateway's own add/delete requests
//!   are answered with their response instead.
//!
//! Decisions where the spec is silent:
//! - Failure codes in the status response: `IOTDA.014000` (no such device), `IOTDA.000021`
//!   (not this gateway's sub-device), `IOTDA.000006` (a status other than ONLINE/OFFLINE).
//! - Only the first `STATUS_ENTRIES_MAX` entries of an oversized event are considered; the
//!   rest are listed as failed.
//! - A sub-device's `ONLINE` says its gateway reached it; it stays ONLINE until the gateway
//!   says OFFLINE or goes offline itself.

use std::rc::Rc;

use bytes::Bytes;
use protocol::routing::home_shard;
use protocol::shadow::PropertyReport;
use serde::{Deserialize, Serialize};
use simd_json::prelude::*;
use simd_json::OwnedValue;

use crate::messages::{Reply, Request, ShardError};
use crate::registry::access::UplinkKind;
use crate::registry::records::DeviceStatus;
use crate::registry::Shard;

mod manage;

/// The service of the sub-device management events.
pub const SUB_DEVICE_MANAGER: &str = "$sub_device_manager";
/// Devices one add or delete request may name.
pub const MANAGE_ENTRIES_MAX: usize = 50;
/// The query of a front-desk AddDevice / DeleteDevice made for a gateway's own request: no
/// notify goes back to the gateway (it gets the response).
pub const FROM_GATEWAY_QUERY: &str = "origin=gateway";
/// Entries of one `sub_device_update_status` event.
pub const STATUS_ENTRIES_MAX: usize = 100;
/// Sub-devices of one batch property report (IoTDA: "a maximum of 100 child devices in each
/// batch"); the entries after the first 100 are counted `refused` and ignored.
pub const REPORT_ENTRIES_MAX: usize = 100;

/// On a gateway's home shard: the gateways that reported a sub-device ONLINE, so that the end
/// of their current session (whichever session reported it — a takeover keeps the mark)
/// takes their sub-devices offline.
#[derive(Debug, Default)]
pub struct GatewayState {
    reported_online: std::cell::RefCell<std::collections::HashSet<String>>,
}

/// What a gateway asks of one of its sub-devices' home shard.
#[derive(Debug, Clone, PartialEq)]
pub enum GatewayRequest {
    /// Set a sub-device ONLINE or OFFLINE.
    Status { gateway: GatewayKey, device_id: String, online: bool },
    /// A sub-device's part of a batch property report.
    Report { gateway: GatewayKey, device_id: String, report: PropertyReport },
    /// The gateway's session ended at `ended_ms`: its sub-devices here (of its project, when
    /// its record was still there to say which) that are ONLINE since before then become
    /// OFFLINE (one set ONLINE later, by a new session, stays).
    Offline { gateway_id: String, project_id: Option<String>, ended_ms: i64 },
    /// A sub-device's shadow, for its gateway's shadow get.
    Shadow { gateway: GatewayKey, device_id: String },
    /// A sub-device's message up, for its `device.message:report` push.
    MessageUp { gateway: GatewayKey, device_id: String, topic: String, payload: Bytes },
    /// On the gateway's home shard: publish a sub-device's message on the gateway's connection
    /// (`crate::mailbox::via_gateway`); refused when the gateway is not connected.
    Publish { gateway_id: String, topic_name: String, payload: Bytes },
    /// On the gateway's home shard: tell the gateway, if online, that the application added
    /// (`add_sub_device_notify`) or deleted (`delete_sub_device_notify`) sub-devices.
    Notify { gateway_id: String, event_type: &'static str, devices: Vec<OwnedValue> },
}

/// The gateway a request acts for, with its project: a sub-device answers only to a gateway
/// of its own project (a device id is unique only while it exists — an orphaned sub-device
/// must not be reached by another project's device registered later under its gateway's id).
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayKey {
    pub gateway_id: String,
    pub project_id: String,
}

#[derive(Debug, Deserialize)]
struct EventsUp {
    #[serde(default)]
    services: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(default)]
    service_id: String,
    #[serde(default)]
    event_type: String,
    #[serde(default)]
    event_id: Option<String>,
    #[serde(default)]
    paras: OwnedValue,
}

/// An event on `.../sys/events/down`.
#[derive(Debug, Serialize)]
struct EventsDown<P: Serialize> {
    services: Vec<DownEvent<P>>,
}

#[derive(Debug, Serialize)]
struct DownEvent<P: Serialize> {
    service_id: &'static str,
    event_type: &'static str,
    event_time: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    paras: P,
}

fn events_down<P: Serialize>(event_type: &'static str, event_id: Option<String>, paras: P) -> Bytes {
    let event = DownEvent {
        service_id: SUB_DEVICE_MANAGER,
        event_type,
        event_time: protocol::time::format_t1(crate::now_unix_ms()),
        event_id,
        paras,
    };
    Bytes::from(protocol::json::to_vec(&EventsDown { services: vec![event] }))
}

#[derive(Debug, Deserialize)]
struct StatusParas {
    #[serde(default)]
    device_statuses: Vec<StatusEntry>,
}

#[derive(Debug, Deserialize)]
struct StatusEntry {
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    status: String,
}

#[derive(Debug, Serialize)]
struct Succeeded {
    device_id: String,
    status: String,
}

#[derive(Debug, Serialize)]
struct Failed {
    device_id: String,
    error_code: &'static str,
    error_msg: String,
}

#[derive(Debug, Deserialize)]
struct SubDevicesReport {
    #[serde(default)]
    devices: Vec<SubDeviceReport>,
}

#[derive(Debug, Deserialize)]
struct SubDeviceReport {
    #[serde(default)]
    device_id: String,
    #[serde(default)]
    services: Vec<protocol::shadow::ReportedService>,
}

impl Shard {
    /// A gateway's `.../sys/events/up`: the sub-device status events are handled; the response
    /// to publish on `.../sys/events/down` comes back. Other events are only counted.
    pub async fn gateway_event(self: &Rc<Self>, gateway_id: &str, payload: &[u8]) -> Option<Bytes> {
        let Ok(events) = protocol::json::from_bytes::<EventsUp>(payload) else {
            self.count_uplink(UplinkKind::Malformed);
            return None;
        };
        let event = events.services.into_iter().find(|e| e.service_id == SUB_DEVICE_MANAGER)?;
        match event.event_type.as_str() {
            "sub_device_update_status" => self.update_statuses(gateway_id, event).await,
            "add_sub_device_request" => self.add_sub_devices(gateway_id, event).await,
            "delete_sub_device_request" => self.delete_sub_devices(gateway_id, event).await,
            _ => None,
        }
    }

    async fn update_statuses(self: &Rc<Self>, gateway_id: &str, event: Event) -> Option<Bytes> {
        let paras: StatusParas = simd_json::serde::from_owned_value(event.paras).ok()?;
        let gateway = self.gateway_key(gateway_id)?;
        // Each entry is refused here or sent; those sent go to their home shards together
        // (`to_sub_devices`). The response lists the entries in the event's order.
        let mut checked: Vec<Result<StatusEntry, Failed>> = Vec::new();
        let (mut ids, mut requests) = (Vec::new(), Vec::new());
        for (index, entry) in paras.device_statuses.into_iter().enumerate() {
            let online = match entry.status.as_str() {
                _ if index >= STATUS_ENTRIES_MAX => {
                    let message = "more than 100 entries in one event";
                    checked.push(Err(failure(entry.device_id, "IOTDA.000006", message)));
                    continue;
                }
                "ONLINE" => true,
                "OFFLINE" => false,
                other => {
                    let message = format!("status '{other}' is not ONLINE or OFFLINE");
                    checked.push(Err(failure(entry.device_id, "IOTDA.000006", &message)));
                    continue;
                }
            };
            ids.push(entry.device_id.clone());
            requests.push(GatewayRequest::Status {
                gateway: gateway.clone(),
                device_id: entry.device_id.clone(),
                online,
            });
            checked.push(Ok(entry));
        }
        let mut replies = self.to_sub_devices(ids, requests).await.into_iter();
        let (mut succeeded, mut failed) = (Vec::new(), Vec::new());
        for entry in checked {
            let entry = match entry {
                Ok(entry) => entry,
                Err(refused) => {
                    failed.push(refused);
                    continue;
                }
            };
            match replies.next().unwrap_or_else(|| Reply::Failed(ShardError::Unavailable("no reply".into())))
            {
                Reply::Done => {
                    if entry.status == "ONLINE" {
                        self.gateways.reported_online.borrow_mut().insert(gateway_id.to_owned());
                    }
                    succeeded.push(Succeeded { device_id: entry.device_id, status: entry.status })
                }
                Reply::Failed(error) => failed.push(refusal(entry.device_id, &error)),
                other => failed.push(failure(entry.device_id, "IOTDA.000503", &format!("{other:?}"))),
            }
        }
        #[derive(Serialize)]
        struct ResponseParas {
            successful_devices: Vec<Succeeded>,
            failed_devices: Vec<Failed>,
        }
        let paras = ResponseParas { successful_devices: succeeded, failed_devices: failed };
        Some(events_down("sub_device_update_status_response", event.event_id, paras))
    }

    /// A gateway's `.../sys/gateway/sub_devices/properties/report` (see the module doc).
    pub async fn gateway_sub_devices_report(self: &Rc<Self>, gateway_id: &str, payload: &[u8]) {
        let Ok(batch) = protocol::json::from_bytes::<SubDevicesReport>(payload) else {
            self.count_uplink(UplinkKind::Malformed);
            return;
        };
        let Some(gateway) = self.gateway_key(gateway_id) else { return };
        let mut entries = batch.devices;
        if entries.len() > REPORT_ENTRIES_MAX {
            let extra = entries.len() - REPORT_ENTRIES_MAX;
            entries.truncate(REPORT_ENTRIES_MAX);
            for _ in 0..extra {
                self.count_uplink(UplinkKind::Refused);
            }
            tracing::debug!(
                shard = self.id(),
                gateway_id,
                extra,
                "sub-device report entries beyond the first 100 ignored"
            );
        }
        let ids: Vec<String> = entries.iter().map(|entry| entry.device_id.clone()).collect();
        let requests = entries
            .into_iter()
            .map(|entry| GatewayRequest::Report {
                gateway: gateway.clone(),
                device_id: entry.device_id,
                report: PropertyReport { services: entry.services },
            })
            .collect();
        for (device_id, reply) in ids.iter().zip(self.to_sub_devices(ids.clone(), requests).await) {
            if let Reply::Failed(error) = reply {
                self.count_uplink(UplinkKind::Refused);
                tracing::debug!(shard = self.id(), gateway_id, device_id, %error, "sub-device report ignored");
            }
        }
    }

    /// A gateway's `.../sys/shadow/get` naming one of its sub-devices in `object_device_id`:
    /// that sub-device's shadow, from its home shard; `None` when it is not this gateway's
    /// sub-device (counted `refused`; the request goes unanswered, as for a malformed one).
    pub async fn sub_device_shadow(
        self: &Rc<Self>,
        gateway_id: &str,
        device_id: &str,
    ) -> Option<protocol::shadow::DeviceShadow> {
        let gateway = self.gateway_key(gateway_id)?;
        let request = GatewayRequest::Shadow { gateway, device_id: device_id.to_owned() };
        match self.to_sub_device(device_id, request).await {
            Reply::Shadow(shadow) => Some(*shadow),
            other => {
                self.count_uplink(UplinkKind::Refused);
                tracing::debug!(
                    shard = self.id(),
                    gateway_id,
                    device_id,
                    ?other,
                    "sub-device shadow get refused"
                );
                None
            }
        }
    }

    /// A gateway's `.../sys/messages/up`: one naming one of its sub-devices in
    /// `object_device_id` is that sub-device's message (its `device.message:report` push
    /// names the sub-device); one naming another device is pushed for nobody (and counted
    /// `refused` — when a rule exists: without one nothing is pushed for anybody, and the hop
    /// to check is skipped); any other is the gateway's own. The gateway's reader waits for
    /// the hop (one mesh round trip), which keeps its uplink in order and bounded.
    pub async fn gateway_message_up(self: &Rc<Self>, gateway_id: &str, topic: &str, payload: &Bytes) {
        let Some(object_device_id) = object_device_id(payload).filter(|id| id != gateway_id) else {
            self.notify_message_report(gateway_id, topic, payload);
            return;
        };
        if self.routing().is_empty() {
            return; // no rule to push it: the hop would change nothing
        }
        let Some(gateway) = self.gateway_key(gateway_id) else { return };
        let request = GatewayRequest::MessageUp {
            gateway,
            device_id: object_device_id.clone(),
            topic: topic.to_owned(),
            payload: payload.clone(),
        };
        if let Reply::Failed(error) = self.to_sub_device(&object_device_id, request).await {
            self.count_uplink(UplinkKind::Refused);
            tracing::debug!(shard = self.id(), gateway_id, device_id = object_device_id, %error, "sub-device message ignored");
        }
    }

    /// The device's current session ended: if it is a gateway that reported sub-devices ONLINE,
    /// every shard makes those OFFLINE (in a task of its own).
    pub fn gateway_session_ended(self: &Rc<Self>, gateway_id: &str) {
        if !self.gateways.reported_online.borrow_mut().remove(gateway_id) {
            return;
        }
        let project_id = self.device_for_login(gateway_id).map(|gateway| gateway.project_id);
        let (shard, gateway_id, ended_ms) = (self.clone(), gateway_id.to_owned(), crate::now_unix_ms());
        glommio::spawn_local(
            async move { shard.gateway_went_offline(&gateway_id, project_id, ended_ms).await },
        )
        .detach();
    }

    async fn gateway_went_offline(
        self: &Rc<Self>,
        gateway_id: &str,
        project_id: Option<String>,
        ended_ms: i64,
    ) {
        let replies = self
            .call_all(|_| {
                Request::Gateway(Box::new(GatewayRequest::Offline {
                    gateway_id: gateway_id.to_owned(),
                    project_id: project_id.clone(),
                    ended_ms,
                }))
            })
            .await;
        if replies.iter().any(|reply| !matches!(reply, Reply::Done)) {
            tracing::warn!(shard = self.id(), gateway_id, "some sub-devices could not be marked OFFLINE");
        }
    }

    async fn to_sub_device(self: &Rc<Self>, device_id: &str, request: GatewayRequest) -> Reply {
        let home = home_shard(device_id, self.shard_count());
        // Boxed: `call` runs requests, and this is one of their handlers.
        Box::pin(self.call(home, Request::Gateway(Box::new(request)))).await
    }

    /// Sends `requests[i]` to the home shard of `device_ids[i]`, all at once, and returns the
    /// replies in order: an event's 100 entries cost the gateway's reader about one mesh round
    /// trip and one group commit, not 100 of each. Entries naming the same device twice keep
    /// their order (the whole event then goes one entry at a time).
    async fn to_sub_devices(
        self: &Rc<Self>,
        device_ids: Vec<String>,
        requests: Vec<GatewayRequest>,
    ) -> Vec<Reply> {
        let distinct = device_ids.len() <= 1
            || device_ids.iter().collect::<std::collections::HashSet<_>>().len() == device_ids.len();
        if !distinct || device_ids.len() == 1 {
            let mut replies = Vec::with_capacity(requests.len());
            for (device_id, request) in device_ids.iter().zip(requests) {
                replies.push(self.to_sub_device(device_id, request).await);
            }
            return replies;
        }
        let tasks: Vec<_> = device_ids
            .into_iter()
            .zip(requests)
            .map(|(device_id, request)| {
                let shard = self.clone();
                glommio::spawn_local(async move { shard.to_sub_device(&device_id, request).await })
            })
            .collect();
        let mut replies = Vec::with_capacity(tasks.len());
        for task in tasks {
            replies.push(task.await);
        }
        replies
    }

    /// On the sub-device's home shard (the dispatcher of [`GatewayRequest`]).
    pub(crate) async fn gateway_request(self: &Rc<Self>, request: GatewayRequest) -> Reply {
        match request {
            GatewayRequest::Status { gateway, device_id, online } => {
                if let Err(error) = self.check_child(&gateway, &device_id) {
                    return Reply::Failed(error);
                }
                let status = if online { DeviceStatus::Online } else { DeviceStatus::Offline };
                self.set_connection_status(&device_id, status).await;
                if online {
                    // Its cached messages and desired properties go out through the gateway now.
                    self.deliver_pending(&device_id);
                    self.push_desired(&device_id);
                }
                Reply::Done
            }
            GatewayRequest::Report { gateway, device_id, report } => {
                if let Err(error) = self.check_child(&gateway, &device_id) {
                    return Reply::Failed(error);
                }
                let payload = protocol::json::to_vec(&report);
                match self.report_properties(&device_id, report).await {
                    Ok(()) => {
                        self.notify_property_report(&device_id, &payload);
                        Reply::Done
                    }
                    // Counted like a direct device's report that is not applied (`malformed`),
                    // not as a refusal of the gateway.
                    Err(error) => {
                        self.count_uplink(UplinkKind::Malformed);
                        let gateway_id = gateway.gateway_id;
                        tracing::debug!(shard = self.id(), gateway_id, device_id, %error, "sub-device report not applied");
                        Reply::Done
                    }
                }
            }
            GatewayRequest::Shadow { gateway, device_id } => {
                if let Err(error) = self.check_child(&gateway, &device_id) {
                    return Reply::Failed(error);
                }
                match self.shadow_of(&device_id) {
                    Some(shadow) => Reply::Shadow(Box::new(shadow)),
                    None => Reply::Failed(ShardError::DeviceNotFound),
                }
            }
            GatewayRequest::MessageUp { gateway, device_id, topic, payload } => {
                if let Err(error) = self.check_child(&gateway, &device_id) {
                    return Reply::Failed(error);
                }
                self.notify_message_report(&device_id, &topic, &payload);
                Reply::Done
            }
            GatewayRequest::Publish { gateway_id, topic_name, payload } => {
                match self.session_link(&gateway_id).map(|link| link.deliver(topic_name, payload)) {
                    Some(Ok(_)) => Reply::Done,
                    _ => Reply::Failed(ShardError::DeviceOffline),
                }
            }
            GatewayRequest::Notify { gateway_id, event_type, devices } => {
                if let Some(link) = self.session_link(&gateway_id) {
                    let paras = simd_json::json!({"version": crate::now_unix_ms(), "devices": devices});
                    let topic_name = format!("$oc/devices/{gateway_id}/sys/events/down");
                    if let Err(error) = link.deliver(topic_name, events_down(event_type, None, paras)) {
                        tracing::debug!(shard = self.id(), gateway_id, %error, "sub-device notify not sent");
                    }
                }
                Reply::Done
            }
            GatewayRequest::Offline { gateway_id, project_id, ended_ms } => {
                let children = self.devices_of_gateway(&gateway_id);
                for device_id in children {
                    let online_before = self.device_for_login(&device_id).is_some_and(|d| {
                        project_id.as_ref().is_none_or(|project| *project == d.project_id)
                            && d.status == DeviceStatus::Online
                            && d.connection_status_update_time_ms.is_none_or(|at| at <= ended_ms)
                    });
                    if online_before {
                        self.set_connection_status(&device_id, DeviceStatus::Offline).await;
                    }
                }
                Reply::Done
            }
        }
    }

    /// The gateway's key, on its home shard; `None` once its record is gone.
    fn gateway_key(&self, gateway_id: &str) -> Option<GatewayKey> {
        let project_id = self.device_for_login(gateway_id)?.project_id;
        Some(GatewayKey { gateway_id: gateway_id.to_owned(), project_id })
    }

    /// `device_id` is a sub-device of `gateway` (and of its project) on this shard.
    fn check_child(&self, gateway: &GatewayKey, device_id: &str) -> Result<(), ShardError> {
        let device = self.device_for_login(device_id).ok_or(ShardError::DeviceNotFound)?;
        let gateway_id = gateway.gateway_id.as_str();
        if device.project_id != gateway.project_id {
            // Another project's device: answered as if it did not exist.
            return Err(ShardError::DeviceNotFound);
        }
        if device.gateway_id != gateway_id || device.device_id == gateway_id {
            return Err(ShardError::Invalid(protocol::error::ValidationError::new(
                "device_id",
                format!("{device_id} is not a sub-device of gateway {gateway_id}"),
            )));
        }
        Ok(())
    }
}

/// The `object_device_id` of a message up, when it has one. Only payloads that mention the
/// field are parsed: a direct device's messages cost no parse.
fn object_device_id(payload: &[u8]) -> Option<String> {
    const FIELD: &[u8] = b"\"object_device_id\"";
    if !payload.windows(FIELD.len()).any(|window| window == FIELD) {
        return None;
    }
    #[derive(Deserialize)]
    struct Addressed {
        object_device_id: Option<String>,
    }
    protocol::json::from_bytes::<Addressed>(payload).ok()?.object_device_id.filter(|id| !id.is_empty())
}

fn failure(device_id: String, error_code: &'static str, error_msg: &str) -> Failed {
    Failed { device_id, error_code, error_msg: error_msg.to_owned() }
}

fn refusal(device_id: String, error: &ShardError) -> Failed {
    let code = match error {
        ShardError::DeviceNotFound => "IOTDA.014000",
        ShardError::Invalid(_) => "IOTDA.000021",
        _ => "IOTDA.000503",
    };
    failure(device_id, code, &error.to_string())
}
