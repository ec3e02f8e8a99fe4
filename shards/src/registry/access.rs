//! The registry's side of device access: login look-ups, the live-session table (one
//! connection per device, newest wins), the MQTT connection count, and connection status.

use std::cell::OnceCell;
use std::rc::Rc;

use super::records::{DeviceRecord, DeviceStatus};
use super::Shard;
use crate::connection::Connection;
use crate::device_access::admission::Admission;
use crate::device_access::link::{SessionLink, ShutDownBy};
use crate::device_access::DeviceAccessConfig;
use crate::messages::{Adoption, Reply};
use crate::tls::stream::TlsStream;
use crate::tls::TlsMeter;

/// The connection a device is logged in on.
#[derive(Debug, Clone)]
pub struct LiveSession {
    pub session_id: u64,
    /// Its downlink; [`SessionLink::shut_down`] ends the session from outside.
    pub link: Rc<SessionLink>,
}

/// What a device published, for the uplink counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UplinkKind {
    Message,
    Event,
    PropertyReport,
    Other,
    /// A payload that could not be applied (bad JSON, bad report): counted, the session goes on.
    Malformed,
    /// A topic the device may not use.
    Refused,
}

/// Uplink counters of one shard (read by `/metrics`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UplinkCounts {
    pub messages: u64,
    pub events: u64,
    pub property_reports: u64,
    pub other: u64,
    pub malformed: u64,
    pub refused: u64,
}

/// Per-shard device-access state, kept in [`Shard`].
#[derive(Debug, Default)]
pub struct AccessState {
    pub(super) config: OnceCell<Rc<DeviceAccessConfig>>,
    pub(super) sessions: std::cell::RefCell<std::collections::HashMap<String, LiveSession>>,
    pub(super) next_session_id: std::cell::Cell<u64>,
    pub(super) open_connections: std::cell::Cell<usize>,
    pub(super) uplink: std::cell::Cell<UplinkCounts>,
    pub(super) admission: OnceCell<Rc<Admission>>,
    /// TLS handshakes and connections of this shard (MQTT and HTTPS).
    pub(super) tls: TlsMeter,
}

impl Shard {
    /// Called once before the MQTT listener starts.
    pub fn set_device_access_config(&self, config: DeviceAccessConfig) {
        self.calls.set_calls_per_device_max(config.device_calls_in_flight_max);
        let _ = self.access.admission.set(Admission::new(config.connecting_per_shard_max));
        let _ = self.access.config.set(Rc::new(config));
    }

    /// The shard's connections waiting for their CONNECT.
    pub fn admission(&self) -> Rc<Admission> {
        self.access.admission.get().cloned().expect("device access is configured before connections arrive")
    }

    /// This shard's TLS figures.
    pub fn tls_meter(&self) -> &TlsMeter {
        &self.access.tls
    }

    pub fn device_access_config(&self) -> Rc<DeviceAccessConfig> {
        self.access.config.get().cloned().expect("device access is configured before connections arrive")
    }

    /// Counts a new MQTT connection; `false` (and nothing counted) when the shard is full.
    pub fn connection_opened(&self) -> bool {
        let open = self.access.open_connections.get();
        if open >= self.device_access_config().connections_per_shard_max {
            return false;
        }
        self.access.open_connections.set(open + 1);
        true
    }

    pub fn connection_closed(&self) {
        let open = self.access.open_connections.get();
        self.access.open_connections.set(open.saturating_sub(1));
    }

    /// Open MQTT connections on this shard (being logged in, or sessions).
    pub fn open_connections(&self) -> usize {
        self.access.open_connections.get()
    }

    /// The device as the login needs it (any project: device ids are unique).
    pub fn device_for_login(&self, device_id: &str) -> Option<DeviceRecord> {
        self.devices.borrow().get(device_id).cloned()
    }

    /// Registers a new live session for the device, ending the older one (takeover).
    pub fn begin_session(&self, device_id: &str, link: Rc<SessionLink>) -> u64 {
        let session_id = self.access.next_session_id.get() + 1;
        self.access.next_session_id.set(session_id);
        let older =
            self.access.sessions.borrow_mut().insert(device_id.to_owned(), LiveSession { session_id, link });
        if let Some(older) = older {
            // The older session says "taken over" when it ends (once, at info).
            tracing::debug!(shard = self.id(), device_id, "a new login takes over the device's connection");
            older.link.shut_down(ShutDownBy::TakeOver);
        }
        session_id
    }

    /// The device's live session, if it is online.
    pub fn live_session(&self, device_id: &str) -> Option<LiveSession> {
        self.access.sessions.borrow().get(device_id).cloned()
    }

    /// The downlink of the device's live session, if it is online.
    pub fn session_link(&self, device_id: &str) -> Option<Rc<SessionLink>> {
        self.access.sessions.borrow().get(device_id).map(|live| live.link.clone())
    }

    /// Devices with a live session on this shard.
    pub fn live_sessions(&self) -> usize {
        self.access.sessions.borrow().len()
    }

    /// Removes the session if it is still the device's current one; `true` if it was.
    pub fn end_session(&self, device_id: &str, session_id: u64) -> bool {
        let mut sessions = self.access.sessions.borrow_mut();
        match sessions.get(device_id) {
            Some(live) if live.session_id == session_id => {
                sessions.remove(device_id);
                true
            }
            _ => false,
        }
    }

    /// Ends the device's connection, if it has one (the device was deleted).
    pub(super) fn disconnect_device(&self, device_id: &str) {
        self.disconnect_session(device_id, ShutDownBy::DeviceDeleted);
    }

    /// The sub-devices of `gateway_id` on this shard.
    pub(crate) fn devices_of_gateway(&self, gateway_id: &str) -> Vec<String> {
        self.devices.borrow().children_of(gateway_id)
    }

    /// Whether the device is frozen (its logins and calls are refused).
    pub fn is_frozen(&self, device_id: &str) -> bool {
        self.devices.borrow().get(device_id).is_some_and(|device| device.status == DeviceStatus::Frozen)
    }

    /// Ends the device's live session, if any, saying why.
    pub(super) fn disconnect_session(&self, device_id: &str, by: ShutDownBy) {
        if let Some(live) = self.access.sessions.borrow().get(device_id) {
            live.link.shut_down(by);
        }
    }

    /// Records ONLINE (with `active_time` on the very first login) or OFFLINE, durably.
    pub async fn set_connection_status(self: &Rc<Self>, device_id: &str, status: DeviceStatus) {
        if status == DeviceStatus::Offline && self.access.sessions.borrow().contains_key(device_id) {
            // The device logged in again while its old session was closing: it is online.
            return;
        }
        let Some(mut device) = self.device_for_login(device_id) else { return };
        if device.status == DeviceStatus::Frozen {
            // Frozen while its session was closing: it stays FROZEN.
            return;
        }
        let now_ms = crate::now_unix_ms();
        device.status = status;
        device.connection_status_update_time_ms = Some(now_ms);
        if status == DeviceStatus::Online && device.active_time_ms.is_none() {
            device.active_time_ms = Some(now_ms);
        }
        match self.write_device(device_id, Some(device.clone())).await {
            Ok(()) => self.notify_device_status(&device),
            Err(error) => {
                tracing::warn!(shard = self.id(), device_id, %error, "connection status not persisted")
            }
        }
    }

    pub fn count_uplink(&self, kind: UplinkKind) {
        let mut counts = self.access.uplink.get();
        let counter = match kind {
            UplinkKind::Message => &mut counts.messages,
            UplinkKind::Event => &mut counts.events,
            UplinkKind::PropertyReport => &mut counts.property_reports,
            UplinkKind::Other => &mut counts.other,
            UplinkKind::Malformed => &mut counts.malformed,
            UplinkKind::Refused => &mut counts.refused,
        };
        *counter += 1;
        self.access.uplink.set(counts);
    }

    pub fn uplink_counts(&self) -> UplinkCounts {
        self.access.uplink.get()
    }

    /// Runs a connection handed over by another shard.
    pub(super) fn adopt(self: &Rc<Self>, adoption: Adoption) -> Reply {
        use std::os::fd::{FromRawFd, IntoRawFd};
        // SAFETY: the descriptor is a connected TCP socket whose ownership the mesh moved here.
        let stream = unsafe { glommio::net::TcpStream::from_raw_fd(adoption.fd.into_raw_fd()) };
        let stream = match adoption.tls {
            None => Connection::Plain(stream),
            Some(tls) => Connection::Tls(Box::new(TlsStream::from_parts(stream, *tls))),
        };
        if !self.connection_opened() {
            tracing::warn!(
                shard = self.id(),
                "adopted MQTT connection refused: the per-shard bound is reached"
            );
            let version = adoption.connect.version;
            self.admission().count(|counts| counts.refused_full += 1);
            let slot = adoption.slot;
            glommio::spawn_local(async move {
                crate::device_access::session::refuse_unavailable(stream, version).await;
                drop(slot);
            })
            .detach();
            return Reply::Done;
        }
        let buffer = bytes::BytesMut::from(&adoption.buffered[..]);
        let shard = self.clone();
        glommio::spawn_local(async move {
            crate::device_access::session::run(shard, stream, buffer, adoption.connect, adoption.slot).await;
        })
        .detach();
        Reply::Done
    }
}

/// Applies a credential reset to `device`; a fingerprint for a device that does not log in
/// with a certificate is refused (it would never be checked).
pub(super) fn change_credentials(
    device: &mut crate::registry::records::DeviceRecord,
    change: crate::messages::CredentialChange,
) -> Result<(), protocol::error::ValidationError> {
    use crate::messages::CredentialChange;
    match change {
        CredentialChange::Secret { secondary, secret } => {
            if device.auth_type == "CERTIFICATES" {
                return Err(protocol::error::ValidationError::new(
                    "secret",
                    format!(
                        "device {} logs in with a certificate (auth_type CERTIFICATES): it has no secret",
                        device.device_id
                    ),
                ));
            }
            if secondary {
                device.secondary_secret = Some(secret);
            } else {
                device.secret = Some(secret);
            }
        }
        CredentialChange::Fingerprint { secondary, fingerprint } => {
            if device.auth_type != "CERTIFICATES" {
                return Err(protocol::error::ValidationError::new(
                    "fingerprint",
                    format!(
                        "device {} logs in with a secret (auth_type SECRET): it has no fingerprint",
                        device.device_id
                    ),
                ));
            }
            match (secondary, fingerprint.is_empty()) {
                (false, _) => device.fingerprint = Some(fingerprint),
                (true, true) => device.secondary_fingerprint = None,
                (true, false) => device.secondary_fingerprint = Some(fingerprint),
            }
        }
    }
    Ok(())
}

/// Freezes or unfreezes `device` (spec §7.3): FROZEN, or back to OFFLINE (INACTIVE if it never
/// logged in). Freezing a frozen device changes nothing; unfreezing one that is not frozen is
/// refused (IOTDA.014040, unconfirmed).
pub(super) fn change_frozen(
    device: &mut crate::registry::records::DeviceRecord,
    freeze: bool,
    now_ms: i64,
) -> Result<(), crate::messages::ShardError> {
    if freeze && device.gateway_id != device.device_id {
        // Spec §7.1: a sub-device is not frozen (its gateway is; IOTDA.014038 on IoTDA).
        return Err(crate::messages::ShardError::Invalid(protocol::error::ValidationError::new(
            "device_id",
            format!("{} is a sub-device: freeze its gateway {} instead", device.device_id, device.gateway_id),
        )));
    }
    let frozen = device.status == DeviceStatus::Frozen;
    match (freeze, frozen) {
        (true, true) => return Ok(()),
        (false, false) => return Err(crate::messages::ShardError::NotFrozen),
        (true, false) => device.status = DeviceStatus::Frozen,
        (false, true) => {
            device.status =
                if device.active_time_ms.is_some() { DeviceStatus::Offline } else { DeviceStatus::Inactive };
        }
    }
    device.connection_status_update_time_ms = Some(now_ms);
    Ok(())
}
