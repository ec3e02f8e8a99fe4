//! One device connection on its home shard.
//!
//! Login (spec §1.2) → CONNACK → the session loop. The reader owns the read half and handles
//! every packet; the writer task owns the write half and drains a bounded queue of encoded
//! packets, which the reader fills without ever waiting (a full queue ends the connection).
//! The keep-alive is the socket's read timeout at 1.5 × the CONNECT's keep-alive; a write that
//! stalls for `WRITE_TIMEOUT` (30 s) ends the writer.
//!
//! Decisions where the spec leaves room:
//! - Login by transport (spec §1.2, §7.2): a `secure_access` device on the plain listener gets
//!   0x05 (not authorized). A CERTIFICATES device logs in over TLS with a client certificate
//!   whose SHA-1 or SHA-256 fingerprint is its `fingerprint` or `secondary_fingerprint` and
//!   which is valid now (username = device id, any password ignored); no certificate, another
//!   one, or an expired one gets 0x04 (bad username or password), as a wrong secret does —
//!   there is no CA-chain check: the registered fingerprint is the trust. A SECRET device logs
//!   in with its password (primary, else secondary secret) on either listener.
//! - A second CONNECT on a live connection is a protocol error [MQTT-3.1.0-2]: closed.
//! - Will messages are not supported by IoTDA: a will in CONNECT is accepted and never sent.
//!   Retain flags on uplink publishes are ignored.
//! - QoS 2 is not supported: a QoS 2 PUBLISH closes the connection (v5: DISCONNECT 0x82).
//! - An uplink to a topic the device may not use closes a 3.1.1 connection; a 5.0 client gets
//!   PUBACK 0x87 (QoS 1) or the message is dropped (QoS 0) and the connection stays up.
//! - At most [`SUBSCRIPTIONS_MAX`] filters per connection; more are refused in SUBACK.

use std::rc::Rc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::channels::local_channel;
use protocol::mqtt::codec::{
    self, Connect, ConnectCode, DisconnectReason, MqttVersion, Packet, Publish, PublishRefusal, Subscribe,
};
use protocol::mqtt::topic::Uplink;
use protocol::mqtt::{login, topic};
use protocol::shadow::PropertyReport;

use super::close::CloseReason;
use super::link::{DeliverError, SessionLink, ShutDownBy};
use super::{read_into, shrink_if_idle};
use crate::calls::CallKind;
use crate::connection::{Connection, Transport};
use crate::listen::BudgetSlot;
use crate::registry::access::UplinkKind;
use crate::registry::records::{DeviceRecord, DeviceStatus};
use crate::registry::Shard;
use crate::tls::TlsListener;

/// A write that makes no progress for this long ends the connection (the device stopped
/// reading and its socket buffer is full).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a closing session gives its writer to send what is queued.
const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Longest `request_id` accepted in an uplink topic; the answer's topic repeats it.
const REQUEST_ID_BYTES_MAX: usize = 128;
/// Subscriptions one connection may hold (spec §5: 100).
pub const SUBSCRIPTIONS_MAX: usize = 100;

/// Logs the device in and serves the connection until it ends. Owns one unit of the shard's
/// connection count and the connection's process-wide slot, and gives both back.
pub async fn run(shard: Rc<Shard>, stream: Connection, buffer: BytesMut, connect: Connect, slot: BudgetSlot) {
    let _slot = slot;
    let tls = stream.is_tls();
    let device_id = match login_device(&shard, &connect, &stream.transport()) {
        Ok(device_id) => device_id,
        Err(refusal) => {
            refuse(stream, &connect, refusal).await;
            shard.connection_closed();
            return;
        }
    };
    let keep_alive = Duration::from_millis(u64::from(connect.keep_alive_s) * 1500);
    if tls {
        shard.tls_meter().opened(TlsListener::Mqtt);
    }
    let (reason, was_current) = serve(&shard, stream, buffer, &connect, &device_id, keep_alive).await;
    if tls {
        shard.tls_meter().closed(TlsListener::Mqtt);
    }
    // Once per session, at info: which of the reasons in `close` ended it.
    tracing::info!(shard = shard.id(), device_id, reason = reason.label(), "device session ended: {reason}");
    if was_current {
        shard.set_connection_status(&device_id, DeviceStatus::Offline).await;
    }
    shard.connection_closed();
}

/// The device id, if the login is good; else the CONNACK code and a reason for the log (the
/// rules are in the module doc).
fn login_device(
    shard: &Shard,
    connect: &Connect,
    transport: &Transport,
) -> Result<String, login::LoginRefusal> {
    let device_id = login::device_id_of(&connect.client_id).unwrap_or_default().to_owned();
    let device = shard.device_for_login(&device_id);
    let refused = |code, reason: &str| login::LoginRefusal { code, reason: reason.into() };
    if device.as_ref().is_some_and(|d| d.secure_access) && !transport.tls {
        return Err(refused(
            ConnectCode::NotAuthorized,
            "secure_access: this device may connect over TLS only",
        ));
    }
    let now = crate::now_unix_s();
    let device = match device {
        Some(device) if device.auth_type == "CERTIFICATES" => {
            login::check_identity(connect)?;
            check_certificate(&device, transport, now)?;
            device
        }
        device => {
            let secret = device.as_ref().and_then(|d| d.secret.as_deref());
            let first = login::check_login(connect, secret, now);
            let secondary = device.as_ref().and_then(|d| d.secondary_secret.as_deref());
            match (first, secondary) {
                (Err(refusal), Some(secondary)) if refusal.code == ConnectCode::BadUsernameOrPassword => {
                    // The secondary secret, tried only when the primary was wrong: a refusal
                    // for another reason (clientId, keep-alive) stands.
                    login::check_login(connect, Some(secondary), now).map_err(|_| refusal)?
                }
                (first, _) => first?,
            }
            device.expect("check_login refuses an unknown device")
        }
    };
    if device.status == DeviceStatus::Frozen {
        return Err(login::LoginRefusal {
            code: ConnectCode::NotAuthorized,
            reason: "the device is frozen".into(),
        });
    }
    Ok(device_id)
}

/// A CERTIFICATES device's client certificate: presented, registered, valid now.
fn check_certificate(
    device: &DeviceRecord,
    transport: &Transport,
    now: i64,
) -> Result<(), login::LoginRefusal> {
    let refused = |reason: &str| login::LoginRefusal {
        code: ConnectCode::BadUsernameOrPassword,
        reason: reason.into(),
    };
    let Some(certificate) = &transport.client_certificate else {
        return Err(refused(if transport.tls {
            "a CERTIFICATES device must present its client certificate"
        } else {
            "a CERTIFICATES device must log in over TLS with its client certificate"
        }));
    };
    let registered = [&device.fingerprint, &device.secondary_fingerprint];
    if !registered.into_iter().flatten().any(|fingerprint| certificate.matches(fingerprint)) {
        return Err(refused("the client certificate's fingerprint is not one registered for the device"));
    }
    if !certificate.valid_at(now) {
        return Err(refused("the client certificate is expired or not yet valid"));
    }
    Ok(())
}

/// CONNACK "server unavailable" and close: the home shard has no room for the connection.
pub async fn refuse_unavailable(mut stream: Connection, version: MqttVersion) {
    let mut out = BytesMut::new();
    codec::write_connack(version, ConnectCode::ServerUnavailable, &mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

async fn refuse(mut stream: Connection, connect: &Connect, refusal: login::LoginRefusal) {
    tracing::info!(client_id = connect.client_id, code = ?refusal.code, reason = refusal.reason, "device login refused");
    let mut out = BytesMut::new();
    codec::write_connack(connect.version, refusal.code, &mut out);
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Serves the connection until it ends. Returns why, and whether this was still the device's
/// current session (a taken-over one must not mark the device OFFLINE). A reason recorded by
/// whoever shut the socket down from outside (takeover, delete, a stalled writer) wins over
/// what the reader saw, which is only the EOF that shutdown caused.
async fn serve(
    shard: &Rc<Shard>,
    stream: Connection,
    mut buffer: BytesMut,
    connect: &Connect,
    device_id: &str,
    keep_alive: Duration,
) -> (CloseReason, bool) {
    let raw_fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
    let armed = stream.set_read_timeout(Some(keep_alive)).and(stream.set_write_timeout(Some(WRITE_TIMEOUT)));
    let (mut reader, mut writer) = futures_lite::io::split(stream);
    // Unbounded in glommio's terms (nothing preallocated for an idle connection); the link
    // bounds it (`OUTBOUND_PACKETS_MAX`, `OUTBOUND_BYTES_MAX`).
    let (outbound, queue) = local_channel::new_unbounded::<Bytes>();
    let link = Rc::new(SessionLink::new(device_id, connect.version, raw_fd, outbound));
    // The writer holds the link only to say why it stopped; `link.close()` drops the queue's
    // sender, which ends the loop.
    let writer_link = link.clone();
    let writer_task = glommio::spawn_local(async move {
        while let Some(packet) = queue.recv().await {
            writer_link.taken(packet.len());
            // A flush after each packet: over TLS, encrypted bytes the socket did not take yet
            // wait in rustls until then (for plain TCP it does nothing).
            let written = async {
                writer.write_all(&packet).await?;
                writer.flush().await
            };
            if let Err(error) = written.await {
                use std::io::ErrorKind;
                let by = match error.kind() {
                    ErrorKind::TimedOut => ShutDownBy::WriteStalled,
                    // The device went away mid-write: what its reader sees too, a hang-up.
                    ErrorKind::BrokenPipe | ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                        ShutDownBy::PeerGone
                    }
                    _ => ShutDownBy::WriteFailed,
                };
                writer_link.shut_down(by);
                break;
            }
        }
        drop(writer_link);
        let _ = writer.close().await;
    });
    // The CONNACK is queued before the session becomes visible to the shard, so it is the
    // first packet the device gets [MQTT-3.2.0-1]; cached messages follow at once, before any
    // command or new message can be published (no await in between).
    let mut connack = BytesMut::new();
    codec::write_connack(connect.version, ConnectCode::Accepted, &mut connack);
    let _ = link.send(connack);
    let session_id = shard.begin_session(device_id, link.clone());
    shard.deliver_pending(device_id);
    shard.push_desired(device_id);
    shard.set_connection_status(device_id, DeviceStatus::Online).await;
    let mut state = SessionState { shard, device_id, version: connect.version, link: &link };
    let seen = match armed {
        Ok(()) => state.run(&mut reader, &mut buffer, keep_alive).await,
        Err(error) => CloseReason::Failed(format!("could not arm the socket timeouts: {error}")),
    };
    // What the device itself did (DISCONNECT, silence, a protocol error) is the reason; an EOF,
    // a socket error or a failed send may only be the echo of a shutdown from outside.
    let reason = match (link.shut_down_by(), seen) {
        (Some(by), CloseReason::HungUp | CloseReason::Failed(_) | CloseReason::Stalled(_)) => by.reason(),
        (_, seen) => seen,
    };
    // Leave the live-session table while the descriptor is still open (`reader` owns it): a
    // takeover can never shut down a descriptor that was closed, and perhaps reused, already.
    let was_current = shard.end_session(device_id, session_id);
    if was_current {
        shard.gateway_session_ended(device_id);
    }
    // The writer sends what is queued (a v5 DISCONNECT) and stops; a device that does not take
    // it within the grace time is cut off (dropping the task cancels its write).
    link.close();
    drop(link);
    let drained = futures_lite::future::or(
        async {
            writer_task.await;
            true
        },
        async {
            glommio::timer::sleep(DRAIN_GRACE).await;
            false
        },
    )
    .await;
    if !drained {
        tracing::debug!(device_id, "the device did not take its last packets in time");
    }
    // SAFETY: `reader` still owns the descriptor, so it is open; shutdown(2) does not close it.
    unsafe { libc::shutdown(raw_fd, libc::SHUT_RDWR) };
    drop(reader);
    (reason, was_current)
}

struct SessionState<'a> {
    shard: &'a Rc<Shard>,
    device_id: &'a str,
    version: MqttVersion,
    link: &'a Rc<SessionLink>,
}

impl SessionState<'_> {
    /// The reader loop: packets until the connection ends (the CONNACK is already queued).
    async fn run(
        &mut self,
        reader: &mut (impl futures_lite::AsyncRead + Unpin),
        buffer: &mut BytesMut,
        keep_alive: Duration,
    ) -> CloseReason {
        let packet_bytes_max = self.shard.device_access_config().packet_bytes_max;
        loop {
            match codec::read_packet(buffer, Some(self.version), packet_bytes_max) {
                Ok(Some(packet)) => match self.handle(packet).await {
                    Ok(true) => continue,
                    Ok(false) => return CloseReason::Disconnected,
                    Err(reason) => return reason,
                },
                Ok(None) => shrink_if_idle(buffer),
                Err(error) => {
                    self.disconnect(error.disconnect_reason());
                    return CloseReason::ProtocolError(error.to_string());
                }
            }
            match read_into(reader, buffer).await {
                Ok(0) => return CloseReason::HungUp,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                    self.disconnect(DisconnectReason::KeepAliveTimeout);
                    return CloseReason::KeepAliveExpired(keep_alive);
                }
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                    return CloseReason::HungUp
                }
                Err(error) => return CloseReason::Failed(error.to_string()),
            }
        }
    }

    /// `Ok(true)`: go on; `Ok(false)`: the client disconnected; `Err`: close, with the reason.
    async fn handle(&mut self, packet: Packet) -> Result<bool, CloseReason> {
        match packet {
            Packet::PingReq => {
                let mut out = BytesMut::new();
                codec::write_pingresp(&mut out);
                self.send(out)?;
            }
            Packet::Publish(publish) => self.uplink(publish).await?,
            Packet::Subscribe(subscribe) => self.subscribe(subscribe)?,
            Packet::Unsubscribe(unsubscribe) => {
                self.link.unsubscribe(&unsubscribe.filters);
                let mut out = BytesMut::new();
                codec::write_unsuback(
                    self.version,
                    unsubscribe.packet_id,
                    unsubscribe.filters.len(),
                    &mut out,
                );
                self.send(out)?;
            }
            Packet::PubAck { packet_id } => {
                let (message_id, written) = self.link.acknowledge(packet_id);
                if let Some(message_id) = message_id {
                    self.shard.message_acknowledged(self.device_id, &message_id);
                }
                written.map_err(|e| CloseReason::Stalled(e.to_string()))?;
            }
            Packet::Disconnect => return Ok(false),
            Packet::Connect(_) => {
                self.disconnect(DisconnectReason::ProtocolError);
                return Err(CloseReason::ProtocolError("[MQTT-3.1.0-2] a second CONNECT".into()));
            }
            Packet::Unexpected(what) => {
                self.disconnect(DisconnectReason::ProtocolError);
                return Err(CloseReason::ProtocolError(format!("unexpected packet from a client: {what}")));
            }
        }
        Ok(true)
    }

    async fn uplink(&mut self, publish: Publish) -> Result<(), CloseReason> {
        if publish.qos > 1 {
            self.disconnect(DisconnectReason::ProtocolError);
            return Err(CloseReason::ProtocolError("QoS 2 is not supported (spec §1.1)".into()));
        }
        let uplink = match topic::classify_uplink(self.device_id, &publish.topic) {
            Ok(uplink) => uplink,
            Err(refusal) => {
                tracing::warn!(device_id = self.device_id, topic = publish.topic, %refusal, "uplink refused");
                self.shard.count_uplink(UplinkKind::Refused);
                if self.version == MqttVersion::V4 {
                    return Err(CloseReason::ProtocolError(format!(
                        "publish to '{}' refused: {refusal}",
                        publish.topic
                    )));
                }
                if publish.qos == 1 {
                    let mut out = BytesMut::new();
                    codec::write_puback_refused(
                        self.version,
                        publish.packet_id,
                        PublishRefusal::NotAuthorized,
                        &mut out,
                    );
                    self.send(out)?;
                }
                return Ok(());
            }
        };
        match uplink {
            Uplink::PropertiesReport => self.report_properties(&publish.payload).await,
            Uplink::MessagesUp => {
                self.shard.count_uplink(UplinkKind::Message);
                self.shard.gateway_message_up(self.device_id, &publish.topic, &publish.payload).await;
            }
            Uplink::EventsUp => {
                self.shard.count_uplink(UplinkKind::Event);
                // A gateway's sub-device status event is answered on its events/down topic.
                if let Some(response) = self.shard.gateway_event(self.device_id, &publish.payload).await {
                    let topic_name = format!("$oc/devices/{}/sys/events/down", self.device_id);
                    self.deliver(topic_name, response)?;
                }
            }
            Uplink::GatewaySubDevicesPropertiesReport => {
                self.shard.count_uplink(UplinkKind::PropertyReport);
                self.shard.gateway_sub_devices_report(self.device_id, &publish.payload).await;
            }
            Uplink::ShadowGet { request_id } => self.answer_shadow_get(request_id, &publish.payload).await?,
            Uplink::CommandResponse { request_id } => {
                self.shard.device_answered(self.device_id, CallKind::Command, request_id, &publish.payload)
            }
            Uplink::PropertiesSetResponse { request_id } => self.shard.device_answered(
                self.device_id,
                CallKind::PropertiesSet,
                request_id,
                &publish.payload,
            ),
            Uplink::PropertiesGetResponse { request_id } => self.shard.device_answered(
                self.device_id,
                CallKind::PropertiesGet,
                request_id,
                &publish.payload,
            ),
            _ => self.shard.count_uplink(UplinkKind::Other),
        }
        if publish.qos == 1 {
            let mut out = BytesMut::new();
            codec::write_puback(self.version, publish.packet_id, &mut out);
            self.send(out)?;
        }
        Ok(())
    }

    /// A property report updates the shadow (durably, before a QoS 1 PUBACK). A malformed one
    /// is counted and logged; it never ends the session.
    async fn report_properties(&self, payload: &[u8]) {
        self.shard.count_uplink(UplinkKind::PropertyReport);
        let report = match protocol::json::from_bytes::<PropertyReport>(payload) {
            Ok(report) => report,
            Err(error) => {
                self.shard.count_uplink(UplinkKind::Malformed);
                tracing::debug!(device_id = self.device_id, %error, "malformed property report ignored");
                return;
            }
        };
        match self.shard.report_properties(self.device_id, report).await {
            Ok(()) => self.shard.notify_property_report(self.device_id, payload),
            Err(error) => {
                self.shard.count_uplink(UplinkKind::Malformed);
                tracing::debug!(device_id = self.device_id, %error, "property report not applied");
            }
        }
    }

    /// `.../sys/shadow/get/request_id={id}` (spec §1.5): the shadow goes back on
    /// `.../sys/shadow/get/response/request_id={id}`, at the QoS the device subscribed with
    /// (QoS 0 through the implicit system subscription if it never subscribed).
    /// A gateway may name one of its sub-devices in `object_device_id` (`crate::gateway`).
    async fn answer_shadow_get(&mut self, request_id: &str, payload: &[u8]) -> Result<(), CloseReason> {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            self.shard.count_uplink(UplinkKind::Malformed);
            tracing::debug!(
                device_id = self.device_id,
                "shadow get with an empty or oversized request_id ignored"
            );
            return Ok(());
        }
        #[derive(serde::Deserialize, Default)]
        struct ShadowGet {
            object_device_id: Option<String>,
            service_id: Option<String>,
        }
        #[derive(serde::Serialize)]
        struct ShadowGetResponse<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            object_device_id: Option<&'a str>,
            shadow: Vec<&'a protocol::shadow::ServiceShadow>,
        }
        let request = if payload.is_empty() {
            ShadowGet::default()
        } else {
            match protocol::json::from_bytes::<ShadowGet>(payload) {
                Ok(request) => request,
                Err(error) => {
                    self.shard.count_uplink(UplinkKind::Malformed);
                    tracing::debug!(device_id = self.device_id, %error, "malformed shadow get ignored");
                    return Ok(());
                }
            }
        };
        // The official SDK sends unset fields as "": absent, like the device's own id.
        let sub_device =
            request.object_device_id.as_deref().filter(|id| !id.is_empty() && *id != self.device_id);
        let shadow = match sub_device {
            None => self.shard.shadow_of(self.device_id).unwrap_or_default(),
            Some(sub_device_id) => match self.shard.sub_device_shadow(self.device_id, sub_device_id).await {
                Some(shadow) => shadow,
                None => return Ok(()),
            },
        };
        let services = shadow
            .services
            .iter()
            .filter(|s| request.service_id.as_deref().is_none_or(|wanted| wanted == s.service_id))
            .collect();
        let response =
            ShadowGetResponse { object_device_id: request.object_device_id.as_deref(), shadow: services };
        let topic_name = topic::shadow_get_response_topic(self.device_id, request_id);
        self.deliver(topic_name, Bytes::from(protocol::json::to_vec(&response)))
    }

    /// Sends a downlink publish at the QoS the device's subscriptions give the topic.
    /// `Err` only when the connection must close (the device does not read).
    fn deliver(&mut self, topic_name: String, payload: Bytes) -> Result<(), CloseReason> {
        match self.link.deliver(topic_name, payload) {
            Ok(_) => Ok(()),
            Err(DeliverError::NotReading) => Err(ShutDownBy::QueueFull.reason()),
            Err(error) => {
                tracing::debug!(device_id = self.device_id, %error, "downlink publish not sent");
                Ok(())
            }
        }
    }

    fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), CloseReason> {
        let mut results = Vec::with_capacity(subscribe.filters.len());
        for (filter, qos) in subscribe.filters {
            match topic::filter_allowed(self.device_id, &filter) {
                Ok(()) => {
                    let granted = qos.min(1);
                    let added = self.link.subscribe(filter, granted, SUBSCRIPTIONS_MAX);
                    results.push(added.then_some(granted));
                }
                Err(refusal) => {
                    tracing::warn!(device_id = self.device_id, filter, %refusal, "subscription refused");
                    results.push(None);
                }
            }
        }
        let mut out = BytesMut::new();
        codec::write_suback(self.version, subscribe.packet_id, &results, &mut out);
        self.send(out)?;
        // Cached messages for a custom topic wait for the device to subscribe to it.
        if results.iter().any(Option::is_some) {
            self.shard.deliver_pending(self.device_id);
        }
        Ok(())
    }

    /// A v5 DISCONNECT with `reason`, if there is room; the connection closes either way, for
    /// the reason the caller gives (a full queue here is not what ended it).
    fn disconnect(&self, reason: DisconnectReason) {
        let mut out = BytesMut::new();
        codec::write_disconnect(self.version, reason, &mut out);
        if !out.is_empty() {
            self.link.send_farewell(out);
        }
    }

    /// Queues a packet for the writer without waiting: the reader never blocks on a device
    /// that does not read. A full queue (or a writer that failed) closes the connection.
    fn send(&self, packet: BytesMut) -> Result<(), CloseReason> {
        self.link.send(packet).map_err(|_| ShutDownBy::QueueFull.reason())
    }
}
