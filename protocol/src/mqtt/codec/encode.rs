//! The server-to-client packets, written by hand: each is a few bytes, and owning the bytes
//! means owning the v5 details (a property length where one is required, none of mqttbytes'
//! omissions).
//!
//! Decisions:
//! - CONNACK never reports a present session: sessions are not kept across connections
//!   (IoTDA devices connect with clean session), which [MQTT-3.2.2-2] allows.
//! - A v5 CONNACK that accepts tells the client what this server lacks: Maximum QoS 1,
//!   Retain Available 0, Subscription Identifiers Available 0, Shared Subscriptions Available
//!   0. Topic Alias Maximum is left out, which means 0.
//! - A refused subscription is `0x80` in both versions: the result does not say why it was
//!   refused, and "unspecified error" is never wrong.
//! - A v5 UNSUBACK reports success (0x00) for every filter, whether or not it was subscribed.
//! - [`write_puback_refused`] on a 3.1.1 connection writes a plain PUBACK: 3.1.1 cannot say
//!   "refused", and [MQTT-3.3.5-2] lets a server acknowledge normally (its alternative is to
//!   close the connection, which the session may prefer).

use bytes::{BufMut, BytesMut};

use super::frame::{write_string, write_variable_int, VARIABLE_INT_MAX};
use super::{ConnectCode, DisconnectReason, MqttVersion, Publish, PublishRefusal, TOPIC_BYTES_MAX};

const CONNACK: u8 = 0x20;
const PUBLISH: u8 = 0x30;
const PUBACK: u8 = 0x40;
const SUBACK: u8 = 0x90;
const UNSUBACK: u8 = 0xB0;
const PINGRESP: u8 = 0xD0;
const DISCONNECT: u8 = 0xE0;

const SUBSCRIBE_REFUSED: u8 = 0x80;

/// v5 CONNACK properties of an accepted connection: (identifier, value) pairs of one byte.
const CONNACK_ACCEPTED_PROPERTIES: [(u8, u8); 4] = [
    (0x24, 1), // Maximum QoS: QoS 2 is not supported
    (0x25, 0), // Retain Available: no
    (0x29, 0), // Subscription Identifiers Available: no
    (0x2A, 0), // Shared Subscriptions Available: no
];

/// CONNACK with `code`; session present is always 0.
pub fn write_connack(version: MqttVersion, code: ConnectCode, out: &mut BytesMut) {
    let code_byte = match version {
        MqttVersion::V4 => connect_return_code(code),
        MqttVersion::V5 => connect_reason_code(code),
    };
    out.put_u8(CONNACK);
    match version {
        MqttVersion::V4 => out.put_slice(&[2, 0, code_byte]),
        MqttVersion::V5 => {
            let properties: &[(u8, u8)] =
                if code == ConnectCode::Accepted { &CONNACK_ACCEPTED_PROPERTIES } else { &[] };
            let properties_bytes = 2 * properties.len();
            write_variable_int(out, 2 + 1 + properties_bytes);
            out.put_slice(&[0, code_byte]);
            write_variable_int(out, properties_bytes);
            for &(identifier, value) in properties {
                out.put_slice(&[identifier, value]);
            }
        }
    }
}

fn connect_return_code(code: ConnectCode) -> u8 {
    match code {
        ConnectCode::Accepted => 0,
        ConnectCode::UnsupportedProtocolVersion => 1,
        ConnectCode::IdentifierRejected => 2,
        ConnectCode::ServerUnavailable => 3,
        ConnectCode::BadUsernameOrPassword => 4,
        ConnectCode::NotAuthorized => 5,
    }
}

fn connect_reason_code(code: ConnectCode) -> u8 {
    match code {
        ConnectCode::Accepted => 0x00,
        ConnectCode::UnsupportedProtocolVersion => 0x84,
        ConnectCode::IdentifierRejected => 0x85,
        ConnectCode::ServerUnavailable => 0x88,
        ConnectCode::BadUsernameOrPassword => 0x86,
        ConnectCode::NotAuthorized => 0x87,
    }
}

/// PUBLISH. Panics on what only a caller bug produces: QoS above 2, packet id 0 with QoS > 0,
/// a topic over [`TOPIC_BYTES_MAX`], a packet over 256 MiB.
pub fn write_publish(version: MqttVersion, publish: &Publish, out: &mut BytesMut) {
    assert!(publish.qos <= 2, "PUBLISH QoS {} is not 0, 1 or 2", publish.qos);
    assert!(publish.qos == 0 || publish.packet_id != 0, "a QoS {} PUBLISH needs a packet id", publish.qos);
    assert!(publish.topic.len() <= TOPIC_BYTES_MAX, "PUBLISH topic of {} bytes", publish.topic.len());
    let packet_id_bytes = if publish.qos > 0 { 2 } else { 0 };
    let properties_bytes = match version {
        MqttVersion::V4 => 0,
        MqttVersion::V5 => 1,
    };
    let remaining_bytes =
        2 + publish.topic.len() + packet_id_bytes + properties_bytes + publish.payload.len();
    assert!(remaining_bytes <= VARIABLE_INT_MAX, "PUBLISH of {remaining_bytes} bytes");
    let flags = u8::from(publish.dup) << 3 | publish.qos << 1 | u8::from(publish.retain);
    out.reserve(5 + remaining_bytes);
    out.put_u8(PUBLISH | flags);
    write_variable_int(out, remaining_bytes);
    write_string(out, &publish.topic);
    if publish.qos > 0 {
        out.put_u16(publish.packet_id);
    }
    if version == MqttVersion::V5 {
        out.put_u8(0); // no properties
    }
    out.put_slice(&publish.payload);
}

/// PUBACK for an accepted QoS 1 PUBLISH (in v5 the success reason code is implied).
pub fn write_puback(_version: MqttVersion, packet_id: u16, out: &mut BytesMut) {
    out.put_u8(PUBACK);
    out.put_u8(2);
    out.put_u16(packet_id);
}

/// v5: PUBACK with the refusal's reason code. v4: a plain PUBACK ([MQTT-3.3.5-2]; see the
/// module doc).
pub fn write_puback_refused(
    version: MqttVersion,
    packet_id: u16,
    reason: PublishRefusal,
    out: &mut BytesMut,
) {
    if version == MqttVersion::V4 {
        write_puback(version, packet_id, out);
        return;
    }
    out.put_u8(PUBACK);
    out.put_u8(3);
    out.put_u16(packet_id);
    out.put_u8(publish_refusal_code(reason));
}

fn publish_refusal_code(reason: PublishRefusal) -> u8 {
    match reason {
        PublishRefusal::UnspecifiedError => 0x80,
        PublishRefusal::NotAuthorized => 0x87,
        PublishRefusal::TopicNameInvalid => 0x90,
        PublishRefusal::QuotaExceeded => 0x97,
        PublishRefusal::PayloadFormatInvalid => 0x99,
    }
}

/// SUBACK: one code per filter, `Some(granted QoS)` or `None` for refused (0x80). Panics on a
/// granted QoS above 2.
pub fn write_suback(version: MqttVersion, packet_id: u16, results: &[Option<u8>], out: &mut BytesMut) {
    let properties_bytes = usize::from(version == MqttVersion::V5);
    out.put_u8(SUBACK);
    write_variable_int(out, 2 + properties_bytes + results.len());
    out.put_u16(packet_id);
    if version == MqttVersion::V5 {
        out.put_u8(0); // no properties
    }
    for result in results {
        let code = match *result {
            Some(qos) => {
                assert!(qos <= 2, "granted QoS {qos} is not 0, 1 or 2");
                qos
            }
            None => SUBSCRIBE_REFUSED,
        };
        out.put_u8(code);
    }
}

/// UNSUBACK. v5 carries one success code per filter; 3.1.1 only the packet id.
pub fn write_unsuback(version: MqttVersion, packet_id: u16, filter_count: usize, out: &mut BytesMut) {
    out.put_u8(UNSUBACK);
    match version {
        MqttVersion::V4 => {
            out.put_u8(2);
            out.put_u16(packet_id);
        }
        MqttVersion::V5 => {
            write_variable_int(out, 2 + 1 + filter_count);
            out.put_u16(packet_id);
            out.put_u8(0); // no properties
            out.put_bytes(0x00, filter_count);
        }
    }
}

pub fn write_pingresp(out: &mut BytesMut) {
    out.put_slice(&[PINGRESP, 0]);
}

/// v5: DISCONNECT with the reason code (and an empty property block). v4: nothing — a 3.1.1
/// server just closes the connection.
pub fn write_disconnect(version: MqttVersion, reason: DisconnectReason, out: &mut BytesMut) {
    if version == MqttVersion::V4 {
        return;
    }
    let code = match reason {
        DisconnectReason::ProtocolError => 0x82,
        DisconnectReason::NotAuthorized => 0x87,
        DisconnectReason::SessionTakenOver => 0x8E,
        DisconnectReason::KeepAliveTimeout => 0x8D,
        DisconnectReason::PacketTooLarge => 0x95,
        DisconnectReason::ServerShuttingDown => 0x8B,
        DisconnectReason::MalformedPacket => 0x81,
    };
    out.put_slice(&[DISCONNECT, 2, code, 0]);
}
