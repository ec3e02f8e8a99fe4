//! Framing: incomplete frames, the size limit, back-to-back packets, garbage.

use mqttbytes::{v4, v5, QoS};

use super::*;

const TWO_MIB: usize = 2 * 1024 * 1024;

fn v5_connect_bytes() -> Vec<u8> {
    let mut connect = v5::Connect::new("d1_0_0_2025041401");
    connect.set_login("d1", "password");
    encoded(|out| connect.write(out))
}

fn v4_publish_bytes(payload_bytes: usize) -> Vec<u8> {
    let mut publish =
        v4::Publish::new("$oc/devices/d1/sys/messages/up", QoS::AtLeastOnce, vec![7; payload_bytes]);
    publish.pkid = 1;
    encoded(|out| publish.write(out))
}

/// Every strict prefix of `frame` is "need more bytes", with the buffer untouched.
fn assert_every_prefix_incomplete(frame: &[u8], version: Option<MqttVersion>) {
    for length in 0..frame.len() {
        let mut buffer = BytesMut::from(&frame[..length]);
        assert_eq!(read_packet(&mut buffer, version, MAX_BYTES), Ok(None), "prefix of {length} bytes");
        assert_eq!(&buffer[..], &frame[..length], "prefix of {length} bytes was modified");
    }
}

#[test]
fn incomplete_frames_wait_and_leave_the_buffer_alone() {
    assert_every_prefix_incomplete(&v5_connect_bytes(), None);
    let mut v4_connect = v4::Connect::new("d1_0_0_2025041401");
    v4_connect.set_login("d1", "password");
    assert_every_prefix_incomplete(&encoded(|out| v4_connect.write(out)), None);
    // 300 bytes of payload: a two-byte remaining length.
    assert_every_prefix_incomplete(&v4_publish_bytes(300), Some(MqttVersion::V4));
    assert_every_prefix_incomplete(&[0xC0, 0], Some(MqttVersion::V5));
}

#[test]
fn back_to_back_packets_are_read_one_at_a_time() {
    let mut stream = v5_connect_bytes();
    let ping = [0xC0, 0];
    stream.extend_from_slice(&ping);
    stream.extend_from_slice(&[0xE0]); // the start of a DISCONNECT
    let mut buffer = BytesMut::from(&stream[..]);
    let Some(Packet::Connect(connect)) = read_packet(&mut buffer, None, MAX_BYTES).unwrap() else {
        panic!("expected CONNECT first");
    };
    let version = Some(connect.version);
    assert_eq!(read_packet(&mut buffer, version, MAX_BYTES), Ok(Some(Packet::PingReq)));
    assert_eq!(read_packet(&mut buffer, version, MAX_BYTES), Ok(None));
    assert_eq!(&buffer[..], &[0xE0]);
    buffer.extend_from_slice(&[0]);
    assert_eq!(read_packet(&mut buffer, version, MAX_BYTES), Ok(Some(Packet::Disconnect)));
    assert!(buffer.is_empty());
}

#[test]
fn oversized_frame_is_refused_from_its_fixed_header() {
    // The first 5 bytes of a 2 MiB PUBLISH: type and a 4-byte remaining length, no body.
    let mut header = BytesMut::new();
    header.extend_from_slice(&[0x32]);
    super::super::frame::write_variable_int(&mut header, TWO_MIB);
    assert_eq!(header.len(), 5);
    for version in [None, Some(MqttVersion::V4), Some(MqttVersion::V5)] {
        let mut buffer = header.clone();
        assert_eq!(
            read_packet(&mut buffer, version, MAX_BYTES),
            Err(CodecError::TooLarge { declared_bytes: TWO_MIB + 5, max_bytes: MAX_BYTES })
        );
    }
}

#[test]
fn size_limit_counts_the_whole_frame() {
    let frame = v4_publish_bytes(100);
    let mut buffer = BytesMut::from(&frame[..]);
    assert!(matches!(
        read_packet(&mut buffer, Some(MqttVersion::V4), frame.len()),
        Ok(Some(Packet::Publish(_)))
    ));
    let mut buffer = BytesMut::from(&frame[..]);
    assert_eq!(
        read_packet(&mut buffer, Some(MqttVersion::V4), frame.len() - 1),
        Err(CodecError::TooLarge { declared_bytes: frame.len(), max_bytes: frame.len() - 1 })
    );
}

#[test]
fn remaining_length_over_four_bytes_is_malformed() {
    let mut buffer = BytesMut::from(&[0x30, 0xff, 0xff, 0xff, 0xff, 0x01][..]);
    assert!(matches!(
        read_packet(&mut buffer, Some(MqttVersion::V4), MAX_BYTES),
        Err(CodecError::Malformed(_))
    ));
    // Four continuation bytes are already enough to know.
    let mut buffer = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80][..]);
    assert!(matches!(read_packet(&mut buffer, None, usize::MAX), Err(CodecError::Malformed(_))));
}

/// A small deterministic generator, so a failure reproduces.
struct Lcg(u64);

impl Lcg {
    fn next_byte(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 56) as u8
    }
}

#[test]
fn garbage_never_panics_and_always_progresses() {
    let mut random = Lcg(0x5eed);
    let valid_connect = v5_connect_bytes();
    for round in 0..20_000 {
        let length = usize::from(random.next_byte() % 48);
        let mut bytes: Vec<u8> = (0..length).map(|_| random.next_byte()).collect();
        if round % 4 == 0 {
            // Mutate a valid packet too: most random bytes fail at the first byte.
            bytes = valid_connect.clone();
            let position = usize::from(random.next_byte()) % bytes.len();
            bytes[position] = random.next_byte();
        }
        for version in [None, Some(MqttVersion::V4), Some(MqttVersion::V5)] {
            let mut buffer = BytesMut::from(&bytes[..]);
            for _ in 0..=bytes.len() {
                let before = buffer.len();
                match read_packet(&mut buffer, version, 64) {
                    Ok(Some(_)) => assert!(buffer.len() < before, "a packet was decoded from nothing"),
                    Ok(None) => {
                        assert_eq!(buffer.len(), before);
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    }
}
