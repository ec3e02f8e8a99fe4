//! Codec tests. Client-side packets are built with mqttbytes (an independent encoder);
//! server-side packets are read back with mqttbytes' client-side readers.

mod connect;
mod encode;
mod framing;
mod packets;

use bytes::BytesMut;

use super::*;

/// Generous: the limit itself is tested in `framing`.
const MAX_BYTES: usize = 1024 * 1024;

/// Bytes an mqttbytes `write` produces.
fn encoded(write: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) -> Vec<u8> {
    let mut buffer = BytesMut::new();
    write(&mut buffer).expect("mqttbytes encodes the test packet");
    buffer.to_vec()
}

/// Decodes one packet that must fill `bytes` exactly.
fn decode(bytes: &[u8], version: Option<MqttVersion>) -> Result<Packet, CodecError> {
    let mut buffer = BytesMut::from(bytes);
    let packet = read_packet(&mut buffer, version, MAX_BYTES)?.expect("the frame is complete");
    assert!(buffer.is_empty(), "{} bytes left after the packet", buffer.len());
    Ok(packet)
}

fn decode_v4(bytes: &[u8]) -> Result<Packet, CodecError> {
    decode(bytes, Some(MqttVersion::V4))
}

fn decode_v5(bytes: &[u8]) -> Result<Packet, CodecError> {
    decode(bytes, Some(MqttVersion::V5))
}

fn assert_violation(result: Result<Packet, CodecError>, clause: &str) {
    match result {
        Err(CodecError::ProtocolViolation(message)) => {
            assert!(message.contains(clause), "{message:?} does not name {clause}")
        }
        other => panic!("expected a protocol violation naming {clause}, got {other:?}"),
    }
}

fn assert_malformed(result: Result<Packet, CodecError>, clause: &str) {
    match result {
        Err(CodecError::Malformed(message)) => {
            assert!(message.contains(clause), "{message:?} does not name {clause}")
        }
        other => panic!("expected a malformed packet naming {clause:?}, got {other:?}"),
    }
}
