//! One packet type for MQTT 3.1 / 3.1.1 (mqttbytes `v4`) and 5.0 (`v5`), limited to what an
//! IoTDA device may send (spec §1.1): CONNECT, PUBLISH (QoS 0/1; QoS 2 is passed up for the
//! session to refuse), PUBACK, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT.
//!
//! ## Layout
//! - this file: the types and [`read_packet`];
//! - `frame`: the fixed header, a bounds-checked field reader, variable byte integers;
//! - `decode`: one function per packet, turning a complete frame into a [`Packet`];
//! - `encode`: the server-to-client packets (`write_*`).
//!
//! ## Decisions
//! - **Framing is ours, bodies are mqttbytes' where they carry v5 properties.** The fixed
//!   header is parsed here, so a frame over `max_bytes` (counted with its fixed header, like
//!   MQTT 5's Maximum Packet Size) is refused before its body is buffered, and mqttbytes is
//!   only ever handed a *complete* frame — any "insufficient bytes" it reports then is a
//!   malformed packet, never a reason to wait (mqttbytes returns `InsufficientBytes(1)` for
//!   some malformed v5 properties). SUBSCRIBE, UNSUBSCRIBE, PUBACK and DISCONNECT are read by
//!   hand: mqttbytes masks the reserved subscription-option bits, accepts a SUBSCRIBE without
//!   filters, refuses a v5 DISCONNECT without a reason code, and prints a leftover `dbg!` on
//!   every v5 UNSUBSCRIBE.
//! - **MQTT 3.1** (protocol name `MQIsdp`, level 3) is accepted and reported as
//!   [`MqttVersion::V4`]: its packets are byte-identical to 3.1.1 for everything a device sends,
//!   so its CONNECT is rewritten to the 3.1.1 header and read as one. The 3.1 limit of 23
//!   characters on the clientId is not applied (IoTDA clientIds are longer). 3.1 has no SUBACK
//!   failure code; a refused filter still gets `0x80`.
//! - **v5 properties** are validated (mqttbytes rejects unknown or ill-sized ones) but not
//!   reported, except where ignoring one would be wrong: a Topic Alias (we advertise no Topic
//!   Alias Maximum, so any alias is a protocol error) and a Subscription Identifier on a client
//!   PUBLISH. Subscription Identifiers on SUBSCRIBE are skipped (CONNACK says they are not
//!   available). A CONNECT's Authentication Method is ignored (no AUTH exchange).
//! - **Username / password presence** comes from the CONNECT flags, so an empty password that
//!   was sent is `Some(vec![])`, not `None`. mqttbytes reads the password as UTF-8; a non-UTF-8
//!   password is a malformed CONNECT (IoTDA passwords are hex).
//! - Wildcards in a PUBLISH topic are left to [`crate::mqtt::topic::classify_uplink`]; an empty
//!   topic is refused here ([MQTT-4.7.3-1]).
//!
//! ## Invariants
//! - `Ok(None)` ⇔ the frame at the front is incomplete; the buffer is then untouched.
//! - Once a frame is complete it is consumed, whether it decodes or not: after an `Err` the
//!   caller closes the connection and the buffer's contents no longer matter.
//! - Nothing is clamped: an out-of-range field is an error, not a default.

mod decode;
mod encode;
mod frame;
#[cfg(test)]
mod tests;

use bytes::{Bytes, BytesMut};
use thiserror::Error;

pub use encode::{
    write_connack, write_disconnect, write_pingresp, write_puback, write_puback_refused, write_publish,
    write_suback, write_unsuback,
};
use frame::FixedHeader;

/// Longest topic a PUBLISH can carry: its length is a 16-bit prefix. `write_publish` asserts it.
pub const TOPIC_BYTES_MAX: usize = u16::MAX as usize;

/// The protocol generation a connection speaks, fixed by its CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    /// MQTT 3.1.1 (protocol level 4), and MQTT 3.1 (level 3), which reads the same.
    V4,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

/// A decoded CONNECT, reduced to what the login and the session use. `Debug` leaves the
/// password out.
#[derive(Clone, PartialEq, Eq)]
pub struct Connect {
    pub version: MqttVersion,
    pub client_id: String,
    /// `None` when the username flag was not set.
    pub username: Option<String>,
    /// `None` when the password flag was not set.
    pub password: Option<Vec<u8>>,
    pub keep_alive_s: u16,
    /// "Clean session" in 3.1.1, "clean start" in 5.0.
    pub clean_session: bool,
    /// The will flag. IoTDA does not support wills; the session decides what to do.
    pub has_will: bool,
}

impl std::fmt::Debug for Connect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connect")
            .field("version", &self.version)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive_s", &self.keep_alive_s)
            .field("clean_session", &self.clean_session)
            .field("has_will", &self.has_will)
            .finish()
    }
}

/// A PUBLISH in either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub topic: String,
    pub payload: Bytes,
    /// 0, 1 or 2 as received (2 is not supported by IoTDA; the session refuses it).
    pub qos: u8,
    /// 0 for QoS 0.
    pub packet_id: u16,
    pub dup: bool,
    pub retain: bool,
}

/// A SUBSCRIBE: at least one filter, each with its requested QoS (0..=2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<(String, u8)>,
}

/// An UNSUBSCRIBE: at least one filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<String>,
}

/// What a client sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Connect),
    Publish(Publish),
    PubAck {
        packet_id: u16,
    },
    Subscribe(Subscribe),
    Unsubscribe(Unsubscribe),
    PingReq,
    Disconnect,
    /// A well-framed packet a client must not send or that IoTDA does not support (PUBREC,
    /// PUBREL, PUBCOMP, CONNACK, SUBACK, UNSUBACK, PINGRESP, AUTH), by name. Its body is not
    /// decoded.
    Unexpected(&'static str),
}

/// Why bytes could not be decoded. Every variant ends the connection.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// Decided from the fixed header; the body was not read.
    #[error("packet of {declared_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    TooLarge { declared_bytes: usize, max_bytes: usize },
    #[error("malformed packet: {0}")]
    Malformed(String),
    /// The message names the clause violated.
    #[error("protocol violation: {0}")]
    ProtocolViolation(String),
    /// A CONNECT with a protocol level we do not speak. [MQTT-3.1.2-2]: answer with a 3.1.1
    /// CONNACK `UnsupportedProtocolVersion` (see [`CodecError::connack_code`]), then close.
    #[error("unsupported MQTT protocol level {0} [MQTT-3.1.2-2]")]
    UnsupportedVersion(u8),
}

impl CodecError {
    /// The CONNACK to send before closing, if any: only an unsupported protocol level gets one
    /// (written with [`MqttVersion::V4`]); any other broken CONNECT is closed without an
    /// answer [MQTT-3.1.4-1].
    pub fn connack_code(&self) -> Option<ConnectCode> {
        match self {
            CodecError::UnsupportedVersion(_) => Some(ConnectCode::UnsupportedProtocolVersion),
            _ => None,
        }
    }

    /// The v5 DISCONNECT reason for this error once connected.
    pub fn disconnect_reason(&self) -> DisconnectReason {
        match self {
            CodecError::TooLarge { .. } => DisconnectReason::PacketTooLarge,
            CodecError::Malformed(_) => DisconnectReason::MalformedPacket,
            CodecError::ProtocolViolation(_) | CodecError::UnsupportedVersion(_) => {
                DisconnectReason::ProtocolError
            }
        }
    }
}

/// The answer to a CONNECT. v4 return codes 0..=5; v5 reason codes 0x00, 0x84, 0x85, 0x88,
/// 0x86, 0x87.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectCode {
    Accepted,
    UnsupportedProtocolVersion,
    IdentifierRejected,
    ServerUnavailable,
    BadUsernameOrPassword,
    NotAuthorized,
}

/// Why the server closes a v5 connection (reason codes 0x82, 0x87, 0x8E, 0x8D, 0x95, 0x8B,
/// 0x81).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    ProtocolError,
    NotAuthorized,
    SessionTakenOver,
    KeepAliveTimeout,
    PacketTooLarge,
    ServerShuttingDown,
    MalformedPacket,
}

/// Why a QoS 1 PUBLISH was not accepted (v5 PUBACK reason codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishRefusal {
    /// 0x80
    UnspecifiedError,
    /// 0x87: the topic ACL refused it.
    NotAuthorized,
    /// 0x90: not a valid topic name.
    TopicNameInvalid,
    /// 0x97: a rate or size quota.
    QuotaExceeded,
    /// 0x99
    PayloadFormatInvalid,
}

/// Decodes one packet from the front of `buffer`.
///
/// `version` is `None` before the CONNECT: the first packet must then be a CONNECT
/// ([MQTT-3.1.0-1]), and its protocol level picks the version (3 and 4 → [`MqttVersion::V4`],
/// 5 → [`MqttVersion::V5`]); afterwards pass the CONNECT's version. A second CONNECT is a
/// protocol violation ([MQTT-3.1.0-2]).
///
/// `max_bytes` bounds the whole frame, fixed header included; a larger one is refused as
/// [`CodecError::TooLarge`] as soon as its fixed header is buffered.
///
/// `Ok(None)`: the frame is incomplete and `buffer` is untouched. A complete frame is consumed
/// whatever the outcome.
pub fn read_packet(
    buffer: &mut BytesMut,
    version: Option<MqttVersion>,
    max_bytes: usize,
) -> Result<Option<Packet>, CodecError> {
    let Some(header) = FixedHeader::parse(buffer)? else {
        return Ok(None);
    };
    let declared_bytes = header.frame_bytes();
    if declared_bytes > max_bytes {
        return Err(CodecError::TooLarge { declared_bytes, max_bytes });
    }
    if buffer.len() < declared_bytes {
        return Ok(None);
    }
    let frame = buffer.split_to(declared_bytes).freeze();
    let packet = match version {
        None => decode::first_packet(&header, frame)?,
        Some(version) => decode::next_packet(&header, frame, version)?,
    };
    Ok(Some(packet))
}
