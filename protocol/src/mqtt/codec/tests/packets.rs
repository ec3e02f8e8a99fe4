//! Packets after CONNECT, both versions.

use bytes::Bytes;
use mqttbytes::{v4, v5, QoS};

use super::*;

fn v4_publish(qos: QoS, packet_id: u16) -> Vec<u8> {
    let mut publish = v4::Publish::new("$oc/devices/d1/sys/messages/up", qos, &b"{\"a\":1}"[..]);
    publish.pkid = packet_id;
    encoded(|out| publish.write(out))
}

fn v5_publish(properties: Option<v5::PublishProperties>) -> Vec<u8> {
    let mut publish = v5::Publish::new("$oc/devices/d1/sys/properties/report", QoS::AtLeastOnce, &b"{}"[..]);
    publish.pkid = 7;
    publish.properties = properties;
    encoded(|out| publish.write(out))
}

fn publish_properties() -> v5::PublishProperties {
    v5::PublishProperties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(30),
        topic_alias: None,
        response_topic: Some("reply/here".into()),
        correlation_data: Some(Bytes::from_static(b"corr")),
        user_properties: vec![("k".into(), "v".into())],
        subscription_identifiers: Vec::new(),
        content_type: Some("application/json".into()),
    }
}

#[test]
fn v4_publish_round_trip_each_qos() {
    for (qos, packet_id) in [(QoS::AtMostOnce, 0), (QoS::AtLeastOnce, 10), (QoS::ExactlyOnce, 11)] {
        let packet = decode_v4(&v4_publish(qos, packet_id)).unwrap();
        assert_eq!(
            packet,
            Packet::Publish(Publish {
                topic: "$oc/devices/d1/sys/messages/up".into(),
                payload: Bytes::from_static(b"{\"a\":1}"),
                qos: qos as u8,
                packet_id,
                dup: false,
                retain: false,
            })
        );
    }
}

#[test]
fn publish_dup_and_retain_flags_are_reported() {
    let mut publish = v4::Publish::new("t", QoS::AtLeastOnce, "x");
    publish.pkid = 1;
    publish.dup = true;
    publish.retain = true;
    let Packet::Publish(publish) = decode_v4(&encoded(|out| publish.write(out))).unwrap() else {
        panic!("expected PUBLISH");
    };
    assert!(publish.dup && publish.retain);
}

#[test]
fn v5_publish_round_trip_with_properties() {
    for properties in [None, Some(publish_properties())] {
        let Packet::Publish(publish) = decode_v5(&v5_publish(properties)).unwrap() else {
            panic!("expected PUBLISH");
        };
        assert_eq!(publish.topic, "$oc/devices/d1/sys/properties/report");
        assert_eq!(publish.payload, Bytes::from_static(b"{}"));
        assert_eq!((publish.qos, publish.packet_id), (1, 7));
    }
}

#[test]
fn v5_topic_alias_is_refused() {
    let alias =
        |topic_alias| v5::PublishProperties { topic_alias: Some(topic_alias), ..publish_properties() };
    assert_violation(decode_v5(&v5_publish(Some(alias(3)))), "[MQTT-3.3.2-9]");
    assert_violation(decode_v5(&v5_publish(Some(alias(0)))), "[MQTT-3.3.2-8]");
}

#[test]
fn v5_client_subscription_identifier_is_refused() {
    let properties = v5::PublishProperties { subscription_identifiers: vec![4], ..publish_properties() };
    assert_violation(decode_v5(&v5_publish(Some(properties))), "[MQTT-3.3.4-6]");
}

#[test]
fn publish_flag_rules() {
    let mut both_qos_bits = v4_publish(QoS::AtLeastOnce, 1);
    both_qos_bits[0] |= 0b0110;
    assert_malformed(decode_v4(&both_qos_bits), "[MQTT-3.3.1-4]");

    let mut dup_at_qos0 = v4_publish(QoS::AtMostOnce, 0);
    dup_at_qos0[0] |= 0b1000;
    assert_violation(decode_v4(&dup_at_qos0), "[MQTT-3.3.1-2]");
}

#[test]
fn publish_qos1_with_packet_id_0_is_a_violation() {
    // mqttbytes refuses to encode this, so build it by hand.
    let bytes = [0x32, 0x05, 0, 1, b't', 0, 0];
    assert_violation(decode_v4(&bytes), "[MQTT-2.3.1-1]");
    assert_violation(decode_v5(&[0x32, 0x06, 0, 1, b't', 0, 0, 0]), "[MQTT-2.3.1-1]");
}

#[test]
fn publish_with_empty_topic_is_a_violation() {
    assert_violation(decode_v4(&[0x30, 0x03, 0, 0, b'x']), "[MQTT-4.7.3-1]");
    assert_violation(decode_v5(&[0x30, 0x04, 0, 0, 0, b'x']), "[MQTT-4.7.3-1]");
}

#[test]
fn v5_publish_with_broken_properties_is_malformed_not_incomplete() {
    // Property length 5 but only a 1-byte property follows inside the frame.
    let bytes = [0x30, 0x06, 0, 1, b't', 5, 0x01, 0x01];
    assert!(matches!(decode_v5(&bytes), Err(CodecError::Malformed(_))));
    // A property length that is itself cut off by the end of the frame.
    let bytes = [0x30, 0x04, 0, 1, b't', 0x80];
    assert!(matches!(decode_v5(&bytes), Err(CodecError::Malformed(_))));
}

#[test]
fn puback_round_trip() {
    let v4_bytes = encoded(|out| v4::PubAck::new(513).write(out));
    assert_eq!(decode_v4(&v4_bytes).unwrap(), Packet::PubAck { packet_id: 513 });
    let v5_bytes = encoded(|out| v5::PubAck::new(514).write(out));
    assert_eq!(decode_v5(&v5_bytes).unwrap(), Packet::PubAck { packet_id: 514 });
    let mut refused = v5::PubAck::new(515);
    refused.reason = v5::PubAckReason::NoMatchingSubscribers;
    assert_eq!(decode_v5(&encoded(|out| refused.write(out))).unwrap(), Packet::PubAck { packet_id: 515 });
    // Reason code and an empty property block.
    assert_eq!(decode_v5(&[0x40, 0x04, 0, 9, 0x80, 0]).unwrap(), Packet::PubAck { packet_id: 9 });
}

#[test]
fn puback_shape_rules() {
    assert_malformed(decode_v4(&[0x40, 0x03, 0, 1, 0]), "unexpected bytes");
    assert_malformed(decode_v5(&[0x40, 0x03, 0, 1, 0x42]), "reason code");
    assert_violation(decode_v4(&[0x40, 0x02, 0, 0]), "[MQTT-2.3.1-1]");
    assert_malformed(decode_v4(&[0x41, 0x02, 0, 1]), "[MQTT-2.2.2-2]");
    assert_malformed(decode_v5(&[0x41, 0x02, 0, 1]), "[MQTT-2.1.3-1]");
}

#[test]
fn subscribe_round_trip() {
    let mut v4_subscribe = v4::Subscribe::new("$oc/devices/d1/sys/commands/#", QoS::AtLeastOnce);
    v4_subscribe.pkid = 3;
    v4_subscribe.add("custom/+".into(), QoS::AtMostOnce);
    v4_subscribe.add("qos2/topic".into(), QoS::ExactlyOnce);
    let expected = Packet::Subscribe(Subscribe {
        packet_id: 3,
        filters: vec![
            ("$oc/devices/d1/sys/commands/#".into(), 1),
            ("custom/+".into(), 0),
            ("qos2/topic".into(), 2),
        ],
    });
    assert_eq!(decode_v4(&encoded(|out| v4_subscribe.write(out))).unwrap(), expected);

    let mut v5_subscribe = v5::Subscribe::new("$oc/devices/d1/sys/commands/#", QoS::AtLeastOnce);
    v5_subscribe.pkid = 3;
    let mut custom = v5::SubscribeFilter::new("custom/+".into(), QoS::AtMostOnce);
    custom.set_nolocal(true).set_preserve_retain(true).set_retain_forward_rule(v5::RetainForwardRule::Never);
    v5_subscribe.filters.push(custom);
    v5_subscribe.add("qos2/topic".into(), QoS::ExactlyOnce);
    v5_subscribe.properties =
        Some(v5::SubscribeProperties { id: Some(12), user_properties: vec![("k".into(), "v".into())] });
    assert_eq!(decode_v5(&encoded(|out| v5_subscribe.write(out))).unwrap(), expected);
}

#[test]
fn subscribe_without_filters_is_a_violation() {
    let mut v4_empty = v4::Subscribe::empty_subscribe();
    v4_empty.pkid = 1;
    assert_violation(decode_v4(&encoded(|out| v4_empty.write(out))), "[MQTT-3.8.3-3]");
    let mut v5_empty = v5::Subscribe::empty_subscribe();
    v5_empty.pkid = 1;
    assert_violation(decode_v5(&encoded(|out| v5_empty.write(out))), "[MQTT-3.8.3-2]");
}

#[test]
fn subscribe_shape_rules() {
    // Fixed-header flags must be 0010.
    assert_malformed(decode_v4(&[0x80, 0x06, 0, 1, 0, 1, b'a', 0]), "[MQTT-3.8.1-1]");
    // Packet id 0.
    assert_violation(decode_v4(&[0x82, 0x06, 0, 0, 0, 1, b'a', 0]), "[MQTT-2.3.1-1]");
    // Reserved option bits (v4), QoS 3 (v4).
    assert_malformed(decode_v4(&[0x82, 0x06, 0, 1, 0, 1, b'a', 0b0000_0100]), "[MQTT-3.8.3-4]");
    assert_malformed(decode_v4(&[0x82, 0x06, 0, 1, 0, 1, b'a', 3]), "[MQTT-3.8.3-4]");
    // v5: reserved bits 6-7, QoS 3, retain handling 3.
    assert_malformed(decode_v5(&[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0b0100_0000]), "[MQTT-3.8.3-5]");
    assert!(matches!(
        decode_v5(&[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 3]),
        Err(CodecError::ProtocolViolation(_))
    ));
    assert!(matches!(
        decode_v5(&[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0b0011_0000]),
        Err(CodecError::ProtocolViolation(_))
    ));
    // Options byte missing after the last filter.
    assert_malformed(decode_v4(&[0x82, 0x05, 0, 1, 0, 1, b'a']), "runs past the end");
    // v5 property length overruns the frame.
    assert_malformed(decode_v5(&[0x82, 0x07, 0, 1, 9, 0, 1, b'a', 0]), "runs past the end");
    // Filter not UTF-8.
    assert_malformed(decode_v4(&[0x82, 0x06, 0, 1, 0, 1, 0xff, 0]), "[MQTT-1.5.3-1]");
}

#[test]
fn unsubscribe_round_trip() {
    let mut v4_unsubscribe = v4::Unsubscribe::new("a/b");
    v4_unsubscribe.pkid = 4;
    v4_unsubscribe.topics.push("$oc/devices/d1/user/x".into());
    let expected = Packet::Unsubscribe(Unsubscribe {
        packet_id: 4,
        filters: vec!["a/b".into(), "$oc/devices/d1/user/x".into()],
    });
    assert_eq!(decode_v4(&encoded(|out| v4_unsubscribe.write(out))).unwrap(), expected);

    let mut v5_unsubscribe = v5::Unsubscribe::new("a/b");
    v5_unsubscribe.pkid = 4;
    v5_unsubscribe.filters.push("$oc/devices/d1/user/x".into());
    assert_eq!(decode_v5(&encoded(|out| v5_unsubscribe.write(out))).unwrap(), expected);
}

#[test]
fn unsubscribe_shape_rules() {
    assert_violation(decode_v4(&[0xA2, 0x02, 0, 1]), "[MQTT-3.10.3-2]");
    assert_violation(decode_v5(&[0xA2, 0x03, 0, 1, 0]), "[MQTT-3.10.3-2]");
    assert_malformed(decode_v4(&[0xA0, 0x05, 0, 1, 0, 1, b'a']), "[MQTT-3.10.1-1]");
    assert_violation(decode_v4(&[0xA2, 0x05, 0, 0, 0, 1, b'a']), "[MQTT-2.3.1-1]");
}

#[test]
fn pingreq_and_disconnect() {
    for decode_version in [decode_v4, decode_v5] {
        assert_eq!(decode_version(&[0xC0, 0]).unwrap(), Packet::PingReq);
        assert_eq!(decode_version(&[0xE0, 0]).unwrap(), Packet::Disconnect);
        assert_malformed(decode_version(&[0xC0, 1, 0]), "unexpected bytes");
        assert!(matches!(decode_version(&[0xE2, 0]), Err(CodecError::Malformed(_))));
    }
    assert_malformed(decode_v4(&[0xE0, 1, 0]), "unexpected bytes");
}

#[test]
fn v5_disconnect_with_reason_and_properties() {
    assert_eq!(decode_v5(&[0xE0, 1, 0x04]).unwrap(), Packet::Disconnect);
    let mut disconnect = v5::Disconnect::new();
    disconnect.reason_code = v5::DisconnectReasonCode::UnspecifiedError;
    disconnect.properties = Some(v5::DisconnectProperties {
        session_expiry_interval: Some(0),
        reason_string: Some("bye".into()),
        user_properties: Vec::new(),
        server_reference: None,
    });
    assert_eq!(decode_v5(&encoded(|out| disconnect.write(out))).unwrap(), Packet::Disconnect);
    assert!(matches!(decode_v5(&[0xE0, 3, 0, 5, 0]), Err(CodecError::Malformed(_))));
}

#[test]
fn server_packets_and_qos2_steps_are_unexpected() {
    let cases: [(&[u8], &str); 7] = [
        (&[0x20, 2, 0, 0], "CONNACK"),
        (&[0x50, 2, 0, 1], "PUBREC"),
        (&[0x62, 2, 0, 1], "PUBREL"),
        (&[0x70, 2, 0, 1], "PUBCOMP"),
        (&[0x90, 3, 0, 1, 0], "SUBACK"),
        (&[0xB0, 2, 0, 1], "UNSUBACK"),
        (&[0xD0, 0], "PINGRESP"),
    ];
    for (bytes, name) in cases {
        assert_eq!(decode_v4(bytes).unwrap(), Packet::Unexpected(name));
        assert_eq!(decode_v5(bytes).unwrap(), Packet::Unexpected(name));
    }
}

#[test]
fn auth_is_unexpected_in_v5_and_reserved_in_v4() {
    assert_eq!(decode_v5(&[0xF0, 0]).unwrap(), Packet::Unexpected("AUTH"));
    assert_malformed(decode_v4(&[0xF0, 0]), "reserved");
    assert_malformed(decode_v4(&[0x00, 0]), "reserved");
    assert_malformed(decode_v5(&[0x00, 0]), "reserved");
}
