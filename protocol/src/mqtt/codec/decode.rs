//! One decoder per client-to-server packet. Each gets a complete frame, so a field running
//! past the end is a malformed packet.

use bytes::{Bytes, BytesMut};

use super::frame::{write_string, write_variable_int, FixedHeader, Reader};
use super::{CodecError, Connect, MqttVersion, Packet, Publish, Subscribe, Unsubscribe};

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const PUBACK: u8 = 4;
const PUBREC: u8 = 5;
const PUBREL: u8 = 6;
const PUBCOMP: u8 = 7;
const SUBSCRIBE: u8 = 8;
const SUBACK: u8 = 9;
const UNSUBSCRIBE: u8 = 10;
const UNSUBACK: u8 = 11;
const PINGREQ: u8 = 12;
const PINGRESP: u8 = 13;
const DISCONNECT: u8 = 14;
const AUTH: u8 = 15;

/// Fixed-header flags SUBSCRIBE and UNSUBSCRIBE must carry.
const FLAGS_0010: u8 = 0b0010;

const CONNECT_FLAG_RESERVED: u8 = 0b0000_0001;
const CONNECT_FLAG_WILL: u8 = 0b0000_0100;
const CONNECT_FLAG_WILL_QOS: u8 = 0b0001_1000;
const CONNECT_FLAG_WILL_RETAIN: u8 = 0b0010_0000;
const CONNECT_FLAG_PASSWORD: u8 = 0b0100_0000;
const CONNECT_FLAG_USERNAME: u8 = 0b1000_0000;

/// v5 PUBACK reason codes (MQTT 5.0 §3.4.2.1).
const PUBACK_REASON_CODES: [u8; 9] = [0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];

/// The packet before CONNECT: it must be one, and its protocol level sets the version.
pub(super) fn first_packet(header: &FixedHeader, frame: Bytes) -> Result<Packet, CodecError> {
    if header.packet_type() != CONNECT {
        return Err(CodecError::ProtocolViolation("[MQTT-3.1.0-1] the first packet must be CONNECT".into()));
    }
    check_flags(header, 0, "CONNECT", "[MQTT-2.2.2-2]")?;
    let variable_header = ConnectHeader::read(&frame[header.header_bytes..])?;
    let version = variable_header.version()?;
    check_connect_flags(variable_header.flags, version)?;
    let connect = match (version, variable_header.level) {
        (MqttVersion::V5, _) => {
            let connect = mqttbytes::v5::Connect::read(header.to_mqttbytes(), frame)
                .map_err(|error| from_mqttbytes(error, "CONNECT"))?;
            let login = connect.login.map(|login| (login.username, login.password));
            Connect::from_parts(version, variable_header.flags, connect.client_id, connect.keep_alive, login)
        }
        (MqttVersion::V4, level) => {
            let (header, frame) =
                if level == 3 { mqtt31_as_mqtt311(header, &frame)? } else { (*header, frame) };
            let connect = mqttbytes::v4::Connect::read(header.to_mqttbytes(), frame)
                .map_err(|error| from_mqttbytes(error, "CONNECT"))?;
            let login = connect.login.map(|login| (login.username, login.password));
            Connect::from_parts(version, variable_header.flags, connect.client_id, connect.keep_alive, login)
        }
    };
    Ok(Packet::Connect(connect))
}

/// Any packet after CONNECT.
pub(super) fn next_packet(
    header: &FixedHeader,
    frame: Bytes,
    version: MqttVersion,
) -> Result<Packet, CodecError> {
    let reserved_clause = match version {
        MqttVersion::V4 => "[MQTT-2.2.2-2]",
        MqttVersion::V5 => "[MQTT-2.1.3-1]",
    };
    let body = &frame[header.header_bytes..];
    match header.packet_type() {
        CONNECT => Err(CodecError::ProtocolViolation("[MQTT-3.1.0-2] a second CONNECT".into())),
        PUBLISH => publish(header, frame.clone(), version),
        PUBACK => {
            check_flags(header, 0, "PUBACK", reserved_clause)?;
            pub_ack(body, version)
        }
        SUBSCRIBE => {
            check_flags(header, FLAGS_0010, "SUBSCRIBE", "[MQTT-3.8.1-1]")?;
            subscribe(body, version).map(Packet::Subscribe)
        }
        UNSUBSCRIBE => {
            check_flags(header, FLAGS_0010, "UNSUBSCRIBE", "[MQTT-3.10.1-1]")?;
            unsubscribe(body, version).map(Packet::Unsubscribe)
        }
        PINGREQ => {
            check_flags(header, 0, "PINGREQ", reserved_clause)?;
            Reader::new(body, "PINGREQ").finish()?;
            Ok(Packet::PingReq)
        }
        DISCONNECT => {
            check_flags(header, 0, "DISCONNECT", reserved_clause)?;
            disconnect(body, version)
        }
        AUTH if version == MqttVersion::V5 => Ok(Packet::Unexpected("AUTH")),
        other => unexpected(other),
    }
}

/// A packet only a server sends, or a QoS 2 step; its body is not decoded.
fn unexpected(packet_type: u8) -> Result<Packet, CodecError> {
    let name = match packet_type {
        CONNACK => "CONNACK",
        PUBREC => "PUBREC",
        PUBREL => "PUBREL",
        PUBCOMP => "PUBCOMP",
        SUBACK => "SUBACK",
        UNSUBACK => "UNSUBACK",
        PINGRESP => "PINGRESP",
        reserved => return Err(CodecError::Malformed(format!("packet type {reserved} is reserved"))),
    };
    Ok(Packet::Unexpected(name))
}

fn check_flags(header: &FixedHeader, expected: u8, packet: &str, clause: &str) -> Result<(), CodecError> {
    if header.flags() == expected {
        return Ok(());
    }
    Err(CodecError::Malformed(format!(
        "{clause} {packet} fixed-header flags are {:#06b}, must be {expected:#06b}",
        header.flags()
    )))
}

/// The start of a CONNECT's variable header: enough to pick the version.
#[derive(Debug)]
struct ConnectHeader {
    name: String,
    level: u8,
    flags: u8,
}

impl ConnectHeader {
    fn read(body: &[u8]) -> Result<Self, CodecError> {
        let mut reader = Reader::new(body, "CONNECT");
        let name = reader.string("the protocol name")?;
        let level = reader.u8("the protocol level")?;
        let flags = reader.u8("the connect flags")?;
        Ok(ConnectHeader { name, level, flags })
    }

    fn version(&self) -> Result<MqttVersion, CodecError> {
        match (self.name.as_str(), self.level) {
            ("MQTT", 4) | ("MQIsdp", 3) => Ok(MqttVersion::V4),
            ("MQTT", 5) => Ok(MqttVersion::V5),
            ("MQTT" | "MQIsdp", level) => Err(CodecError::UnsupportedVersion(level)),
            _ => Err(CodecError::ProtocolViolation(
                "[MQTT-3.1.2-1] the protocol name is neither MQTT nor MQIsdp".into(),
            )),
        }
    }
}

/// The connect-flag rules mqttbytes does not check, or reports without the clause.
fn check_connect_flags(flags: u8, version: MqttVersion) -> Result<(), CodecError> {
    let violation = |message: &str| Err(CodecError::Malformed(format!("CONNECT: {message}")));
    let (will_qos_clause, will_qos_3_clause, will_retain_clause) = match version {
        MqttVersion::V4 => ("[MQTT-3.1.2-13]", "[MQTT-3.1.2-14]", "[MQTT-3.1.2-15]"),
        MqttVersion::V5 => ("[MQTT-3.1.2-11]", "[MQTT-3.1.2-12]", "[MQTT-3.1.2-13]"),
    };
    let has_will = flags & CONNECT_FLAG_WILL != 0;
    let will_qos = (flags & CONNECT_FLAG_WILL_QOS) >> 3;
    if flags & CONNECT_FLAG_RESERVED != 0 {
        return violation("[MQTT-3.1.2-3] the reserved connect flag is set");
    }
    if !has_will && will_qos != 0 {
        return violation(&format!("{will_qos_clause} will QoS is set without the will flag"));
    }
    if !has_will && flags & CONNECT_FLAG_WILL_RETAIN != 0 {
        return violation(&format!("{will_retain_clause} will retain is set without the will flag"));
    }
    if will_qos == 3 {
        return violation(&format!("{will_qos_3_clause} will QoS is 3"));
    }
    let password_without_username = flags & CONNECT_FLAG_PASSWORD != 0 && flags & CONNECT_FLAG_USERNAME == 0;
    if version == MqttVersion::V4 && password_without_username {
        return violation("[MQTT-3.1.2-22] the password flag is set without the username flag");
    }
    Ok(())
}

impl Connect {
    /// Presence of username and password comes from the flags: mqttbytes folds an empty
    /// login into `None`.
    fn from_parts(
        version: MqttVersion,
        flags: u8,
        client_id: String,
        keep_alive_s: u16,
        login: Option<(String, String)>,
    ) -> Connect {
        let (username, password) = login.unwrap_or_default();
        Connect {
            version,
            client_id,
            username: (flags & CONNECT_FLAG_USERNAME != 0).then_some(username),
            password: (flags & CONNECT_FLAG_PASSWORD != 0).then(|| password.into_bytes()),
            keep_alive_s,
            clean_session: flags & 0b0000_0010 != 0,
            has_will: flags & CONNECT_FLAG_WILL != 0,
        }
    }
}

/// An MQTT 3.1 CONNECT differs from 3.1.1 only in its protocol name (`MQIsdp`) and level (3):
/// rebuild the frame with the 3.1.1 header so mqttbytes can read it.
fn mqtt31_as_mqtt311(header: &FixedHeader, frame: &[u8]) -> Result<(FixedHeader, Bytes), CodecError> {
    const MQTT31_HEADER_BYTES: usize = 2 + "MQIsdp".len() + 1;
    let rest = &frame[header.header_bytes + MQTT31_HEADER_BYTES..];
    let remaining_bytes = 2 + "MQTT".len() + 1 + rest.len();
    let mut rebuilt = BytesMut::with_capacity(5 + remaining_bytes);
    rebuilt.extend_from_slice(&[header.byte1]);
    write_variable_int(&mut rebuilt, remaining_bytes);
    write_string(&mut rebuilt, "MQTT");
    rebuilt.extend_from_slice(&[4]);
    rebuilt.extend_from_slice(rest);
    let rebuilt_header = FixedHeader::parse(&rebuilt)?
        .ok_or_else(|| CodecError::Malformed("CONNECT: could not rebuild the 3.1 header".into()))?;
    Ok((rebuilt_header, rebuilt.freeze()))
}

fn publish(header: &FixedHeader, frame: Bytes, version: MqttVersion) -> Result<Packet, CodecError> {
    let qos = (header.flags() >> 1) & 0b11;
    let dup = header.flags() & 0b1000 != 0;
    if qos == 3 {
        return Err(CodecError::Malformed("[MQTT-3.3.1-4] PUBLISH with both QoS bits set".into()));
    }
    if qos == 0 && dup {
        return Err(CodecError::ProtocolViolation("[MQTT-3.3.1-2] DUP set on a QoS 0 PUBLISH".into()));
    }
    let publish = match version {
        MqttVersion::V4 => {
            let publish = mqttbytes::v4::Publish::read(header.to_mqttbytes(), frame)
                .map_err(|error| from_mqttbytes(error, "PUBLISH"))?;
            Publish::from_parts(publish.topic, publish.payload, qos, publish.pkid, dup, publish.retain)
        }
        MqttVersion::V5 => {
            let publish = mqttbytes::v5::Publish::read(header.to_mqttbytes(), frame)
                .map_err(|error| from_mqttbytes(error, "PUBLISH"))?;
            if let Some(properties) = &publish.properties {
                check_publish_properties(properties)?;
            }
            Publish::from_parts(publish.topic, publish.payload, qos, publish.pkid, dup, publish.retain)
        }
    };
    if publish.topic.is_empty() {
        return Err(CodecError::ProtocolViolation("[MQTT-4.7.3-1] PUBLISH with an empty topic name".into()));
    }
    Ok(Packet::Publish(publish))
}

impl Publish {
    fn from_parts(topic: String, payload: Bytes, qos: u8, packet_id: u16, dup: bool, retain: bool) -> Self {
        Publish { topic, payload, qos, packet_id, dup, retain }
    }
}

/// CONNACK advertises no Topic Alias Maximum (so 0), and Subscription Identifiers are for
/// the server to send.
fn check_publish_properties(properties: &mqttbytes::v5::PublishProperties) -> Result<(), CodecError> {
    match properties.topic_alias {
        Some(0) => {
            return Err(CodecError::ProtocolViolation("[MQTT-3.3.2-8] PUBLISH with Topic Alias 0".into()));
        }
        Some(_) => {
            return Err(CodecError::ProtocolViolation(
                "[MQTT-3.3.2-9] PUBLISH with a Topic Alias above the server's Topic Alias Maximum (0)".into(),
            ));
        }
        None => {}
    }
    if !properties.subscription_identifiers.is_empty() {
        return Err(CodecError::ProtocolViolation(
            "[MQTT-3.3.4-6] a client PUBLISH must not carry a Subscription Identifier".into(),
        ));
    }
    Ok(())
}

fn pub_ack(body: &[u8], version: MqttVersion) -> Result<Packet, CodecError> {
    let mut reader = Reader::new(body, "PUBACK");
    let packet_id = reader.packet_id()?;
    if version == MqttVersion::V5 && !reader.is_empty() {
        let reason_code = reader.u8("the reason code")?;
        if !PUBACK_REASON_CODES.contains(&reason_code) {
            return Err(CodecError::Malformed(format!(
                "PUBACK reason code {reason_code:#04x} is not defined"
            )));
        }
        if !reader.is_empty() {
            reader.skip_properties()?;
        }
    }
    reader.finish()?;
    Ok(Packet::PubAck { packet_id })
}

fn subscribe(body: &[u8], version: MqttVersion) -> Result<Subscribe, CodecError> {
    let mut reader = Reader::new(body, "SUBSCRIBE");
    let packet_id = reader.packet_id()?;
    if version == MqttVersion::V5 {
        reader.skip_properties()?;
    }
    // Each filter takes at least 3 bytes, so the body length bounds the vector.
    let mut filters = Vec::with_capacity(reader.remaining_bytes() / 3);
    while !reader.is_empty() {
        let filter = reader.string("a topic filter")?;
        let options = reader.u8("the subscription options")?;
        filters.push((filter, requested_qos(options, version)?));
    }
    if filters.is_empty() {
        let clause = match version {
            MqttVersion::V4 => "[MQTT-3.8.3-3]",
            MqttVersion::V5 => "[MQTT-3.8.3-2]",
        };
        return Err(CodecError::ProtocolViolation(format!("{clause} SUBSCRIBE without a topic filter")));
    }
    Ok(Subscribe { packet_id, filters })
}

/// The QoS in a subscription-options byte, after the reserved-bit rules.
fn requested_qos(options: u8, version: MqttVersion) -> Result<u8, CodecError> {
    let qos = options & 0b11;
    match version {
        MqttVersion::V4 if options & 0b1111_1100 != 0 || qos == 3 => Err(CodecError::Malformed(format!(
            "[MQTT-3.8.3-4] SUBSCRIBE options {options:#010b}: reserved bits set or QoS 3"
        ))),
        MqttVersion::V5 if options & 0b1100_0000 != 0 => Err(CodecError::Malformed(format!(
            "[MQTT-3.8.3-5] SUBSCRIBE options {options:#010b}: reserved bits set"
        ))),
        MqttVersion::V5 if qos == 3 => {
            Err(CodecError::ProtocolViolation("SUBSCRIBE with Maximum QoS 3 (MQTT 5.0 §3.8.3.1)".into()))
        }
        MqttVersion::V5 if (options >> 4) & 0b11 == 3 => {
            Err(CodecError::ProtocolViolation("SUBSCRIBE with Retain Handling 3 (MQTT 5.0 §3.8.3.1)".into()))
        }
        _ => Ok(qos),
    }
}

fn unsubscribe(body: &[u8], version: MqttVersion) -> Result<Unsubscribe, CodecError> {
    let mut reader = Reader::new(body, "UNSUBSCRIBE");
    let packet_id = reader.packet_id()?;
    if version == MqttVersion::V5 {
        reader.skip_properties()?;
    }
    // Each filter takes at least 2 bytes.
    let mut filters = Vec::with_capacity(reader.remaining_bytes() / 2);
    while !reader.is_empty() {
        filters.push(reader.string("a topic filter")?);
    }
    if filters.is_empty() {
        return Err(CodecError::ProtocolViolation(
            "[MQTT-3.10.3-2] UNSUBSCRIBE without a topic filter".into(),
        ));
    }
    Ok(Unsubscribe { packet_id, filters })
}

/// 3.1.1: no body. 5.0: an optional reason code (any value is accepted: the connection ends
/// either way, and IoTDA has no will to publish) and optional properties.
fn disconnect(body: &[u8], version: MqttVersion) -> Result<Packet, CodecError> {
    let mut reader = Reader::new(body, "DISCONNECT");
    if version == MqttVersion::V5 && !reader.is_empty() {
        reader.u8("the reason code")?;
        if !reader.is_empty() {
            reader.skip_properties()?;
        }
    }
    reader.finish()?;
    Ok(Packet::Disconnect)
}

fn from_mqttbytes(error: mqttbytes::Error, packet: &str) -> CodecError {
    match error {
        mqttbytes::Error::PacketIdZero => {
            CodecError::ProtocolViolation(format!("[MQTT-2.3.1-1] {packet} with packet identifier 0"))
        }
        mqttbytes::Error::TopicNotUtf8 => {
            CodecError::Malformed(format!("[MQTT-1.5.3-1] {packet}: a string is not valid UTF-8"))
        }
        // The frame was complete, so "insufficient" means a field overruns it.
        mqttbytes::Error::InsufficientBytes(_)
        | mqttbytes::Error::MalformedPacket
        | mqttbytes::Error::BoundaryCrossed(_) => {
            CodecError::Malformed(format!("{packet}: a field runs past the end of the packet"))
        }
        other => CodecError::Malformed(format!("{packet}: {other:?}")),
    }
}
