//! `mqtt_session`: a device's byte stream through the listener and the session.
//!
//! Input: one mode byte, then the bytes the device sends. Mode `% 3`: 0 starts at the
//! listener (the first packet must be a CONNECT, read with `CONNECT_BYTES_MAX`; it is then
//! logged in and its version reads the rest), 1 and 2 start inside an MQTT 3.1.1 / 5.0 session
//! so that mutations need not keep a valid CONNECT in front.

use bytes::{Bytes, BytesMut};
use protocol::mqtt::codec::{self, MqttVersion, Packet, Publish};
use protocol::mqtt::{login, topic};
use protocol::shadow::{DeviceShadow, PropertyReport, SHADOW_BYTES_MAX};
use shards::device_access::CONNECT_BYTES_MAX;

/// The engine's default `mqtt_packet_bytes_max`.
const PACKET_BYTES_MAX: usize = 1024 * 1024;
/// Mirrors the session's limit on a `request_id` in an uplink topic.
const REQUEST_ID_BYTES_MAX: usize = 128;
/// The session's limit on subscriptions per connection.
const SUBSCRIPTIONS_MAX: usize = shards::device_access::session::SUBSCRIPTIONS_MAX;
/// The device a session-mode input speaks as.
const DEVICE_ID: &str = "fuzz_device";
/// The receive time stamped on reports.
const RECEIVED_T1: &str = "20240101T000000Z";

pub fn mqtt_session(data: &[u8]) {
    let Some((&mode, stream)) = data.split_first() else { return };
    let mut buffer = BytesMut::from(stream);
    let (version, device_id) = match mode % 3 {
        0 => match listen(&mut buffer) {
            Some(login) => login,
            None => return,
        },
        1 => (MqttVersion::V4, DEVICE_ID.to_owned()),
        _ => (MqttVersion::V5, DEVICE_ID.to_owned()),
    };
    let mut session =
        Session { device_id: &device_id, version, shadow: DeviceShadow::default(), filters: Vec::new() };
    // Every packet consumes at least two bytes, which bounds the loop.
    for _ in 0..=buffer.len() {
        let before = buffer.len();
        match codec::read_packet(&mut buffer, Some(version), PACKET_BYTES_MAX) {
            Ok(Some(packet)) => {
                assert!(buffer.len() < before, "a decoded packet consumed no bytes");
                if !session.handle(packet) {
                    return;
                }
            }
            Ok(None) => {
                assert_eq!(buffer.len(), before, "an incomplete frame was consumed");
                return;
            }
            Err(error) => {
                let mut out = BytesMut::new();
                codec::write_disconnect(version, error.disconnect_reason(), &mut out);
                return;
            }
        }
    }
    unreachable!("more packets than bytes");
}

/// The listener's first read and the home shard's login; the session's version and device id
/// when the CONNECT decodes (whether or not the login succeeds, the codec goes on).
fn listen(buffer: &mut BytesMut) -> Option<(MqttVersion, String)> {
    let before = buffer.len();
    let connect = match codec::read_packet(buffer, None, CONNECT_BYTES_MAX) {
        Ok(Some(Packet::Connect(connect))) => connect,
        Ok(Some(other)) => panic!("the first packet decoded as {other:?}, not a CONNECT"),
        Ok(None) => {
            assert_eq!(buffer.len(), before, "an incomplete CONNECT was consumed");
            return None;
        }
        Err(error) => {
            if let Some(code) = error.connack_code() {
                codec::write_connack(MqttVersion::V4, code, &mut BytesMut::new());
            }
            return None;
        }
    };
    let device_id =
        login::device_id_of(&connect.client_id).or(connect.username.as_deref()).unwrap_or_default();
    let code = match login::check_login(&connect, Some(crate::SECRET), crate::NOW_UNIX_S) {
        Ok(()) => codec::ConnectCode::Accepted,
        Err(refusal) => refusal.code,
    };
    codec::write_connack(connect.version, code, &mut BytesMut::new());
    Some((connect.version, device_id.to_owned()))
}

struct Session<'a> {
    device_id: &'a str,
    version: MqttVersion,
    shadow: DeviceShadow,
    filters: Vec<String>,
}

impl Session<'_> {
    /// The session's reaction to one packet; `false` when it closes the connection.
    fn handle(&mut self, packet: Packet) -> bool {
        let mut out = BytesMut::new();
        match packet {
            Packet::PingReq => codec::write_pingresp(&mut out),
            Packet::Publish(publish) => return self.uplink(publish),
            Packet::Subscribe(subscribe) => {
                let mut results = Vec::with_capacity(subscribe.filters.len());
                for (filter, qos) in subscribe.filters {
                    let granted = topic::filter_allowed(self.device_id, &filter).ok().map(|()| qos.min(1));
                    if granted.is_some() && self.filters.len() < SUBSCRIPTIONS_MAX {
                        self.filters.push(filter);
                    }
                    results.push(granted);
                }
                codec::write_suback(self.version, subscribe.packet_id, &results, &mut out);
            }
            Packet::Unsubscribe(unsubscribe) => {
                self.filters.retain(|filter| !unsubscribe.filters.contains(filter));
                codec::write_unsuback(
                    self.version,
                    unsubscribe.packet_id,
                    unsubscribe.filters.len(),
                    &mut out,
                );
            }
            Packet::PubAck { .. } => {}
            Packet::Disconnect => return false,
            Packet::Connect(_) | Packet::Unexpected(_) => {
                codec::write_disconnect(self.version, codec::DisconnectReason::ProtocolError, &mut out);
                return false;
            }
        }
        true
    }

    fn uplink(&mut self, publish: Publish) -> bool {
        if publish.qos > 1 {
            return false;
        }
        let mut out = BytesMut::new();
        let uplink = match topic::classify_uplink(self.device_id, &publish.topic) {
            Ok(uplink) => uplink,
            Err(refusal) => {
                if self.version == MqttVersion::V4 {
                    return false;
                }
                if publish.qos == 1 {
                    codec::write_puback_refused(
                        self.version,
                        publish.packet_id,
                        refusal.publish_refusal(),
                        &mut out,
                    );
                }
                return true;
            }
        };
        match uplink {
            topic::Uplink::PropertiesReport => self.report_properties(&publish.payload),
            topic::Uplink::MessagesUp => drop(shards::notify::message_report_content(&publish.payload)),
            topic::Uplink::ShadowGet { request_id } => self.answer_shadow_get(request_id, &publish.payload),
            topic::Uplink::CommandResponse { .. }
            | topic::Uplink::PropertiesSetResponse { .. }
            | topic::Uplink::PropertiesGetResponse { .. } => {
                drop(shards::calls::answer_json(&publish.payload))
            }
            _ => {}
        }
        // Not what the session does with an uplink, but the cheapest way to give the downlink's
        // filter matching arbitrary topic names against the filters this input subscribed.
        self.deliverable(&publish.topic);
        if publish.qos == 1 {
            codec::write_puback(self.version, publish.packet_id, &mut out);
        }
        true
    }

    /// What the shadow does with a report: merge, re-serialize, refuse a shadow over its limit.
    fn report_properties(&mut self, payload: &[u8]) {
        let Ok(report) = protocol::json::from_bytes::<PropertyReport>(payload) else { return };
        let mut shadow = self.shadow.clone();
        if shadow.apply_report(report, RECEIVED_T1).is_err() {
            return;
        }
        let shadow_json = protocol::json::to_vec(&shadow);
        if shadow_json.len() <= SHADOW_BYTES_MAX {
            protocol::json::from_bytes::<DeviceShadow>(&shadow_json).expect("a stored shadow parses back");
            self.shadow = shadow;
        }
    }

    /// The session's shadow-get: the request's optional fields, then the answer on the response
    /// topic, written as the downlink PUBLISH it becomes.
    fn answer_shadow_get(&self, request_id: &str, payload: &[u8]) {
        if request_id.is_empty() || request_id.len() > REQUEST_ID_BYTES_MAX {
            return;
        }
        #[derive(serde::Deserialize, Default)]
        struct ShadowGet {
            object_device_id: Option<String>,
            service_id: Option<String>,
        }
        let request = if payload.is_empty() {
            ShadowGet::default()
        } else {
            match protocol::json::from_bytes::<ShadowGet>(payload) {
                Ok(request) => request,
                Err(_) => return,
            }
        };
        let services: Vec<_> = self
            .shadow
            .services
            .iter()
            .filter(|s| request.service_id.as_deref().is_none_or(|wanted| wanted == s.service_id))
            .collect();
        #[derive(serde::Serialize)]
        struct ShadowGetResponse<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            object_device_id: Option<&'a str>,
            shadow: Vec<&'a protocol::shadow::ServiceShadow>,
        }
        let response =
            ShadowGetResponse { object_device_id: request.object_device_id.as_deref(), shadow: services };
        let answer = protocol::json::to_vec(&response);
        let downlink = Publish {
            topic: topic::shadow_get_response_topic(self.device_id, request_id),
            payload: Bytes::from(answer),
            qos: 0,
            packet_id: 0,
            dup: false,
            retain: false,
        };
        self.deliverable(&downlink.topic);
        codec::write_publish(self.version, &downlink, &mut BytesMut::new());
    }

    /// The downlink's subscription match of a topic: explicit filters, then the implicit
    /// system subscription.
    fn deliverable(&self, topic_name: &str) -> bool {
        self.filters.iter().any(|filter| topic::filter_matches(filter, topic_name))
            || topic::is_implicit_system_topic(self.device_id, topic_name)
    }
}
