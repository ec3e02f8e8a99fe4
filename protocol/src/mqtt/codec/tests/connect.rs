//! CONNECT: versions, login presence, connect-flag rules, and the first-packet rule.

use mqttbytes::{v4, v5, QoS};

use super::*;

const CLIENT_ID: &str = "prod_node-1_0_1_2025041401";
const PASSWORD: &str = "c75150e6cb841417396819e4d2ee4358a416344a03a083e3a8567074ddec820a";

fn v4_connect(login: Option<(&str, &str)>) -> v4::Connect {
    let mut connect = v4::Connect::new(CLIENT_ID);
    connect.keep_alive = 120;
    if let Some((username, password)) = login {
        connect.set_login(username, password);
    }
    connect
}

fn v5_connect(login: Option<(&str, &str)>) -> v5::Connect {
    let mut connect = v5::Connect::new(CLIENT_ID);
    connect.keep_alive = 300;
    connect.clean_session = false;
    if let Some((username, password)) = login {
        connect.set_login(username, password);
    }
    connect
}

fn expect_connect(packet: Packet) -> Connect {
    match packet {
        Packet::Connect(connect) => connect,
        other => panic!("expected CONNECT, got {other:?}"),
    }
}

#[test]
fn v4_connect_round_trip() {
    let bytes = encoded(|out| v4_connect(Some(("prod_node-1", PASSWORD))).write(out));
    let connect = expect_connect(decode(&bytes, None).unwrap());
    assert_eq!(
        connect,
        Connect {
            version: MqttVersion::V4,
            client_id: CLIENT_ID.into(),
            username: Some("prod_node-1".into()),
            password: Some(PASSWORD.as_bytes().to_vec()),
            keep_alive_s: 120,
            clean_session: true,
            has_will: false,
        }
    );
}

#[test]
fn v5_connect_round_trip_with_properties() {
    let mut connect = v5_connect(Some(("prod_node-1", PASSWORD)));
    connect.properties = Some(v5::ConnectProperties {
        session_expiry_interval: Some(60),
        receive_maximum: Some(20),
        max_packet_size: Some(65_536),
        topic_alias_max: None,
        request_response_info: None,
        request_problem_info: Some(1),
        user_properties: vec![("sdk".into(), "python".into())],
        authentication_method: None,
        authentication_data: None,
    });
    let bytes = encoded(|out| connect.write(out));
    let connect = expect_connect(decode(&bytes, None).unwrap());
    assert_eq!(connect.version, MqttVersion::V5);
    assert_eq!(connect.client_id, CLIENT_ID);
    assert_eq!(connect.username.as_deref(), Some("prod_node-1"));
    assert_eq!(connect.password.as_deref(), Some(PASSWORD.as_bytes()));
    assert_eq!(connect.keep_alive_s, 300);
    assert!(!connect.clean_session);
}

#[test]
fn mqtt31_connect_reads_as_v4() {
    let mut bytes = vec![0x10, 0];
    bytes.extend_from_slice(&[0, 6]);
    bytes.extend_from_slice(b"MQIsdp");
    bytes.extend_from_slice(&[3, 0b1100_0010, 0, 60]);
    for field in [CLIENT_ID, "prod_node-1", "pw"] {
        bytes.extend_from_slice(&(field.len() as u16).to_be_bytes());
        bytes.extend_from_slice(field.as_bytes());
    }
    bytes[1] = (bytes.len() - 2) as u8;
    let connect = expect_connect(decode(&bytes, None).unwrap());
    assert_eq!(connect.version, MqttVersion::V4);
    assert_eq!(connect.client_id, CLIENT_ID);
    assert_eq!(connect.username.as_deref(), Some("prod_node-1"));
    assert_eq!(connect.password.as_deref(), Some(&b"pw"[..]));
    assert_eq!(connect.keep_alive_s, 60);
}

#[test]
fn login_presence_follows_the_flags() {
    let none = expect_connect(decode(&encoded(|out| v4_connect(None).write(out)), None).unwrap());
    assert_eq!((none.username, none.password), (None, None));

    let username_only = encoded(|out| v4_connect(Some(("prod_node-1", ""))).write(out));
    let username_only = expect_connect(decode(&username_only, None).unwrap());
    assert_eq!(username_only.username.as_deref(), Some("prod_node-1"));
    assert_eq!(username_only.password, None);

    let password_only = encoded(|out| v5_connect(Some(("", "secret"))).write(out));
    let password_only = expect_connect(decode(&password_only, None).unwrap());
    assert_eq!(password_only.username, None);
    assert_eq!(password_only.password.as_deref(), Some(&b"secret"[..]));
}

#[test]
fn empty_password_sent_is_some_empty() {
    let mut bytes = encoded(|out| v4_connect(Some(("prod_node-1", ""))).write(out));
    // Set the password flag and append an empty password.
    let flags_index = 2 + 2 + 4 + 1;
    bytes[flags_index] |= 0b0100_0000;
    bytes.extend_from_slice(&[0, 0]);
    bytes[1] += 2;
    let connect = expect_connect(decode(&bytes, None).unwrap());
    assert_eq!(connect.password, Some(Vec::new()));
}

#[test]
fn will_is_reported_not_refused() {
    let mut connect = v4_connect(None);
    connect.last_will = Some(v4::LastWill::new("will/topic", "gone", QoS::AtLeastOnce, false));
    let connect = expect_connect(decode(&encoded(|out| connect.write(out)), None).unwrap());
    assert!(connect.has_will);
}

#[test]
fn v4_password_without_username_is_malformed() {
    let bytes = encoded(|out| v4_connect(Some(("", "secret"))).write(out));
    assert_malformed(decode(&bytes, None), "[MQTT-3.1.2-22]");
}

#[test]
fn reserved_connect_flag_is_malformed() {
    let mut bytes = encoded(|out| v4_connect(None).write(out));
    bytes[2 + 2 + 4 + 1] |= 0b0000_0001;
    assert_malformed(decode(&bytes, None), "[MQTT-3.1.2-3]");
}

#[test]
fn will_qos_without_will_flag_is_malformed() {
    let mut v4_bytes = encoded(|out| v4_connect(None).write(out));
    v4_bytes[2 + 2 + 4 + 1] |= 0b0000_1000;
    assert_malformed(decode(&v4_bytes, None), "[MQTT-3.1.2-13]");
    let mut v5_bytes = encoded(|out| v5_connect(None).write(out));
    v5_bytes[2 + 2 + 4 + 1] |= 0b0010_0000;
    assert_malformed(decode(&v5_bytes, None), "[MQTT-3.1.2-13]");
}

#[test]
fn unsupported_protocol_level_asks_for_a_connack() {
    for level in [0, 2, 3, 6, 255] {
        let mut bytes = encoded(|out| v4_connect(None).write(out));
        bytes[2 + 2 + 4] = level; // "MQTT" with another level (3 is only valid as MQIsdp)
        let error = decode(&bytes, None).unwrap_err();
        assert_eq!(error, CodecError::UnsupportedVersion(level));
        assert_eq!(error.connack_code(), Some(ConnectCode::UnsupportedProtocolVersion));
        assert!(error.to_string().contains("[MQTT-3.1.2-2]"));
    }
}

#[test]
fn unknown_protocol_name_is_a_violation() {
    let mut bytes = encoded(|out| v4_connect(None).write(out));
    bytes[4..8].copy_from_slice(b"HTTP");
    let error = decode(&bytes, None).unwrap_err();
    assert_eq!(error.connack_code(), None);
    assert_violation(Err(error), "[MQTT-3.1.2-1]");
}

#[test]
fn first_packet_must_be_connect() {
    let publish = encoded(|out| v4::Publish::new("a/b", QoS::AtMostOnce, "x").write(out));
    for bytes in [&[0xC0, 0x00][..], &publish, &[0x82, 0x06, 0, 1, 0, 1, b'a', 0]] {
        match decode(bytes, None) {
            Err(CodecError::ProtocolViolation(message)) => {
                assert_eq!(message, "[MQTT-3.1.0-1] the first packet must be CONNECT")
            }
            other => panic!("expected the first-packet violation, got {other:?}"),
        }
    }
}

#[test]
fn second_connect_is_a_violation() {
    let bytes = encoded(|out| v4_connect(None).write(out));
    assert_violation(decode_v4(&bytes), "[MQTT-3.1.0-2]");
    let bytes = encoded(|out| v5_connect(None).write(out));
    assert_violation(decode_v5(&bytes), "[MQTT-3.1.0-2]");
}

#[test]
fn connect_cut_short_inside_its_frame_is_malformed() {
    let mut bytes = encoded(|out| v5_connect(Some(("user", "password"))).write(out));
    // Claim the frame ends 4 bytes early: the password length overruns it.
    bytes.truncate(bytes.len() - 4);
    bytes[1] -= 4;
    assert!(matches!(decode(&bytes, None), Err(CodecError::Malformed(_))));
}

#[test]
fn non_utf8_client_id_is_malformed() {
    let mut bytes = encoded(|out| v4_connect(None).write(out));
    let client_id_start = 2 + 2 + 4 + 1 + 1 + 2 + 2;
    bytes[client_id_start] = 0xff;
    assert_malformed(decode(&bytes, None), "[MQTT-1.5.3-1]");
}

#[test]
fn v5_connect_with_overrunning_properties_is_malformed_not_incomplete() {
    let mut bytes = encoded(|out| v5_connect(None).write(out));
    let properties_length_index = 2 + 2 + 4 + 1 + 1 + 2;
    assert_eq!(bytes[properties_length_index], 0);
    bytes[properties_length_index] = 0x7f;
    assert!(matches!(decode(&bytes, None), Err(CodecError::Malformed(_))));
    bytes[properties_length_index] = 0x80; // a property length cut by the client id
    assert!(matches!(decode(&bytes, None), Err(CodecError::Malformed(_))));
}
