//! Server-to-client packets, read back with mqttbytes' client-side readers.

use bytes::Bytes;
use mqttbytes::{v4, v5, QoS};

use super::*;

const CODES: [ConnectCode; 6] = [
    ConnectCode::Accepted,
    ConnectCode::UnsupportedProtocolVersion,
    ConnectCode::IdentifierRejected,
    ConnectCode::ServerUnavailable,
    ConnectCode::BadUsernameOrPassword,
    ConnectCode::NotAuthorized,
];

fn written(write: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut out = BytesMut::new();
    write(&mut out);
    out
}

fn read_v4(mut bytes: BytesMut) -> v4::Packet {
    let packet = v4::read(&mut bytes, usize::MAX).expect("mqttbytes reads what we wrote");
    assert!(bytes.is_empty());
    packet
}

fn read_v5(mut bytes: BytesMut) -> v5::Packet {
    let packet = v5::read(&mut bytes, usize::MAX).expect("mqttbytes reads what we wrote");
    assert!(bytes.is_empty());
    packet
}

#[test]
fn v4_connack_return_codes() {
    for (code, expected) in CODES.into_iter().zip(0u8..) {
        let bytes = written(|out| write_connack(MqttVersion::V4, code, out));
        assert_eq!(&bytes[..], &[0x20, 2, 0, expected]);
        let v4::Packet::ConnAck(connack) = read_v4(bytes) else { panic!("expected CONNACK") };
        assert_eq!(connack.code as u8, expected);
        assert!(!connack.session_present);
    }
}

#[test]
fn v5_connack_reason_codes_and_properties() {
    let expected_codes = [0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
    for (code, expected) in CODES.into_iter().zip(expected_codes) {
        let v5::Packet::ConnAck(connack) = read_v5(written(|out| write_connack(MqttVersion::V5, code, out)))
        else {
            panic!("expected CONNACK");
        };
        assert_eq!(connack.code as u8, expected);
        assert!(!connack.session_present);
        if code == ConnectCode::Accepted {
            let properties = connack.properties.expect("an accepting CONNACK advertises limits");
            assert_eq!(properties.max_qos, Some(1));
            assert_eq!(properties.retain_available, Some(0));
            assert_eq!(properties.subscription_identifiers_available, Some(0));
            assert_eq!(properties.shared_subscription_available, Some(0));
            assert_eq!(properties.topic_alias_max, None);
        } else {
            assert_eq!(connack.properties, None);
        }
    }
}

fn downlink(qos: u8, packet_id: u16, payload_bytes: usize) -> Publish {
    Publish {
        topic: "$oc/devices/d1/sys/commands/request_id=42".into(),
        payload: Bytes::from(vec![b'x'; payload_bytes]),
        qos,
        packet_id,
        dup: qos > 0,
        retain: false,
    }
}

#[test]
fn publish_reads_back_in_both_versions() {
    for (qos, packet_id, payload_bytes) in [(0, 0, 10), (1, 9, 10), (1, 65_535, 70_000)] {
        let publish = downlink(qos, packet_id, payload_bytes);
        let v4::Packet::Publish(read) = read_v4(written(|out| write_publish(MqttVersion::V4, &publish, out)))
        else {
            panic!("expected PUBLISH");
        };
        assert_eq!((read.topic.as_str(), read.qos as u8, read.pkid), (&publish.topic[..], qos, packet_id));
        assert_eq!((read.payload, read.dup, read.retain), (publish.payload.clone(), qos > 0, false));

        let v5::Packet::Publish(read) = read_v5(written(|out| write_publish(MqttVersion::V5, &publish, out)))
        else {
            panic!("expected PUBLISH");
        };
        assert_eq!((read.topic.as_str(), read.qos as u8, read.pkid), (&publish.topic[..], qos, packet_id));
        assert_eq!((read.payload, read.properties), (publish.payload.clone(), None));
    }
}

#[test]
fn publish_reads_back_through_our_own_decoder() {
    let publish = downlink(1, 3, 5);
    for version in [MqttVersion::V4, MqttVersion::V5] {
        let bytes = written(|out| write_publish(version, &publish, out));
        assert_eq!(decode(&bytes, Some(version)).unwrap(), Packet::Publish(publish.clone()));
    }
}

#[test]
#[should_panic(expected = "needs a packet id")]
fn publish_qos1_without_packet_id_is_a_caller_bug() {
    write_publish(MqttVersion::V4, &downlink(1, 0, 1), &mut BytesMut::new());
}

#[test]
fn puback_in_both_versions() {
    let v4::Packet::PubAck(ack) = read_v4(written(|out| write_puback(MqttVersion::V4, 300, out))) else {
        panic!("expected PUBACK");
    };
    assert_eq!(ack.pkid, 300);
    let v5::Packet::PubAck(ack) = read_v5(written(|out| write_puback(MqttVersion::V5, 301, out))) else {
        panic!("expected PUBACK");
    };
    assert_eq!((ack.pkid, ack.reason), (301, v5::PubAckReason::Success));
}

#[test]
fn refused_puback_carries_the_reason_in_v5_only() {
    let cases = [
        (PublishRefusal::UnspecifiedError, v5::PubAckReason::UnspecifiedError),
        (PublishRefusal::NotAuthorized, v5::PubAckReason::NotAuthorized),
        (PublishRefusal::TopicNameInvalid, v5::PubAckReason::TopicNameInvalid),
        (PublishRefusal::QuotaExceeded, v5::PubAckReason::QuotaExceeded),
        (PublishRefusal::PayloadFormatInvalid, v5::PubAckReason::PayloadFormatInvalid),
    ];
    for (refusal, reason) in cases {
        let bytes = written(|out| write_puback_refused(MqttVersion::V5, 5, refusal, out));
        let v5::Packet::PubAck(ack) = read_v5(bytes) else { panic!("expected PUBACK") };
        assert_eq!((ack.pkid, ack.reason), (5, reason));
        let v4_bytes = written(|out| write_puback_refused(MqttVersion::V4, 5, refusal, out));
        assert_eq!(&v4_bytes[..], &[0x40, 2, 0, 5]);
    }
}

#[test]
fn suback_grants_and_refusals() {
    let results = [Some(0), Some(1), None, Some(2)];
    let v4::Packet::SubAck(suback) = read_v4(written(|out| write_suback(MqttVersion::V4, 6, &results, out)))
    else {
        panic!("expected SUBACK");
    };
    assert_eq!(suback.pkid, 6);
    assert_eq!(
        suback.return_codes,
        vec![
            v4::SubscribeReasonCode::Success(QoS::AtMostOnce),
            v4::SubscribeReasonCode::Success(QoS::AtLeastOnce),
            v4::SubscribeReasonCode::Failure,
            v4::SubscribeReasonCode::Success(QoS::ExactlyOnce),
        ]
    );
    let v5::Packet::SubAck(suback) = read_v5(written(|out| write_suback(MqttVersion::V5, 6, &results, out)))
    else {
        panic!("expected SUBACK");
    };
    assert_eq!(
        suback.return_codes,
        vec![
            v5::SubscribeReasonCode::QoS0,
            v5::SubscribeReasonCode::QoS1,
            v5::SubscribeReasonCode::Unspecified,
            v5::SubscribeReasonCode::QoS2,
        ]
    );
}

#[test]
fn unsuback_in_both_versions() {
    let bytes = written(|out| write_unsuback(MqttVersion::V4, 8, 3, out));
    assert_eq!(&bytes[..], &[0xB0, 2, 0, 8]);
    let v4::Packet::UnsubAck(unsuback) = read_v4(bytes) else { panic!("expected UNSUBACK") };
    assert_eq!(unsuback.pkid, 8);
    let v5::Packet::UnsubAck(unsuback) = read_v5(written(|out| write_unsuback(MqttVersion::V5, 8, 3, out)))
    else {
        panic!("expected UNSUBACK");
    };
    assert_eq!(unsuback.pkid, 8);
    assert_eq!(unsuback.reasons, vec![v5::UnsubAckReason::Success; 3]);
}

#[test]
fn pingresp() {
    let bytes = written(write_pingresp);
    assert_eq!(&bytes[..], &[0xD0, 0]);
    assert_eq!(read_v4(bytes), v4::Packet::PingResp);
}

#[test]
fn disconnect_is_v5_only() {
    let cases = [
        (DisconnectReason::ProtocolError, v5::DisconnectReasonCode::ProtocolError),
        (DisconnectReason::NotAuthorized, v5::DisconnectReasonCode::NotAuthorized),
        (DisconnectReason::SessionTakenOver, v5::DisconnectReasonCode::SessionTakenOver),
        (DisconnectReason::KeepAliveTimeout, v5::DisconnectReasonCode::KeepAliveTimeout),
        (DisconnectReason::PacketTooLarge, v5::DisconnectReasonCode::PacketTooLarge),
        (DisconnectReason::ServerShuttingDown, v5::DisconnectReasonCode::ServerShuttingDown),
        (DisconnectReason::MalformedPacket, v5::DisconnectReasonCode::MalformedPacket),
    ];
    for (reason, code) in cases {
        assert!(written(|out| write_disconnect(MqttVersion::V4, reason, out)).is_empty());
        let v5::Packet::Disconnect(disconnect) =
            read_v5(written(|out| write_disconnect(MqttVersion::V5, reason, out)))
        else {
            panic!("expected DISCONNECT");
        };
        assert_eq!(disconnect.reason_code, code);
    }
}

#[test]
fn errors_map_to_disconnect_reasons() {
    let too_large = CodecError::TooLarge { declared_bytes: 2, max_bytes: 1 };
    assert_eq!(too_large.disconnect_reason(), DisconnectReason::PacketTooLarge);
    assert_eq!(CodecError::Malformed(String::new()).disconnect_reason(), DisconnectReason::MalformedPacket);
    assert_eq!(
        CodecError::ProtocolViolation(String::new()).disconnect_reason(),
        DisconnectReason::ProtocolError
    );
    assert_eq!(too_large.connack_code(), None);
}
