//! Bad input on the MQTT side is answered and never disturbs another device: a first packet
//! that is not CONNECT, garbage, a client that never sends CONNECT, an oversized packet (refused
//! from its fixed header), connections over the per-shard bound, publishing or subscribing
//! outside the device's own topics.

use std::time::Duration;

use mqttbytes::v4;
use mqttbytes::QoS;
use serde_json::json;
use tests::mqtt::MqttDevice;
use tests::{Client, Engine, EngineOptions};

const SECRET: &str = "device-secret-1";

fn register<S: AsRef<str>>(client: &Client, node_ids: &[S]) {
    tests::register_meter_devices(client, node_ids, SECRET);
}

#[test]
fn bad_first_bytes_close_the_connection_and_a_logged_in_device_is_undisturbed() {
    let options =
        EngineOptions { config_extra: "mqtt_connect_timeout_ms = 300".into(), ..Default::default() };
    let engine = Engine::start(options);
    register(&engine.client_a(), &["n1"]);
    let mut bystander = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);

    let mut ping_first = MqttDevice::open(engine.mqtt);
    ping_first.send(|out| {
        v4::PingReq.write(out).unwrap();
    });
    assert!(ping_first.is_closed_within(Duration::from_secs(10)), "a non-CONNECT first packet");

    let mut garbage = MqttDevice::open(engine.mqtt);
    garbage.send_raw(&[0xff; 64]);
    assert!(garbage.is_closed_within(Duration::from_secs(10)), "garbage");

    let mut silent = MqttDevice::open(engine.mqtt);
    assert!(silent.is_closed_within(Duration::from_secs(10)), "a client that never sends CONNECT");

    let mut truncated = MqttDevice::open(engine.mqtt);
    truncated.send_raw(&[0x10, 0x20, 0x00, 0x04]);
    assert!(truncated.is_closed_within(Duration::from_secs(10)), "half a CONNECT, then silence");

    assert!(bystander.ping(), "the logged-in device never noticed");
}

#[test]
fn an_oversized_packet_is_refused_from_its_fixed_header() {
    let engine = Engine::start(EngineOptions::default());
    register(&engine.client_a(), &["n1"]);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    // A PUBLISH declaring 2 MiB (remaining length 0x80 0x80 0x80 0x01), of which nothing follows.
    device.send_raw(&[0x30, 0x80, 0x80, 0x80, 0x01]);
    assert!(device.is_closed_within(Duration::from_secs(10)));
}

#[test]
fn connections_over_the_per_shard_bound_get_server_unavailable() {
    let options =
        EngineOptions { config_extra: "mqtt_connections_per_shard_max = 2".into(), ..Default::default() };
    let engine = Engine::start(options);
    register(&engine.client_a(), &["n1", "n2", "n3"]);
    let mut first = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let _second = MqttDevice::login(engine.mqtt, "meter_n2", SECRET);
    let (mut third, code) =
        MqttDevice::connect(engine.mqtt, &tests::mqtt::iotda_connect("meter_n3", SECRET, 1));
    assert_eq!(code, 3, "CONNACK server unavailable");
    assert!(third.is_closed_within(Duration::from_secs(10)));
    assert!(first.ping());
}

#[test]
fn a_device_may_only_use_its_own_topics() {
    let engine = Engine::start(EngineOptions::default());
    register(&engine.client_a(), &["n1", "n2"]);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let filters = vec![
        v4::SubscribeFilter::new("$oc/devices/meter_n1/sys/commands/#".into(), QoS::AtLeastOnce),
        v4::SubscribeFilter::new("$oc/devices/meter_n2/sys/commands/#".into(), QoS::AtMostOnce),
        v4::SubscribeFilter::new("$oc/#".into(), QoS::AtMostOnce),
    ];
    device.send(|out| {
        let mut subscribe = v4::Subscribe::new_many(filters);
        subscribe.pkid = 7;
        subscribe.write(out).unwrap();
    });
    match device.next_packet(Duration::from_secs(10)) {
        Some(v4::Packet::SubAck(suback)) => {
            assert_eq!(suback.pkid, 7);
            assert_eq!(
                suback.return_codes,
                vec![
                    v4::SubscribeReasonCode::Success(QoS::AtLeastOnce),
                    v4::SubscribeReasonCode::Failure,
                    v4::SubscribeReasonCode::Failure
                ]
            );
        }
        other => panic!("expected a SUBACK, got {other:?}"),
    }
    // Its own uplink is acknowledged...
    device.send(|out| {
        let mut publish =
            v4::Publish::new("$oc/devices/meter_n1/sys/messages/up", QoS::AtLeastOnce, b"hello".to_vec());
        publish.pkid = 9;
        publish.write(out).unwrap();
    });
    assert!(
        matches!(device.next_packet(Duration::from_secs(10)), Some(v4::Packet::PubAck(ack)) if ack.pkid == 9)
    );
    // ...another device's topic closes a 3.1.1 connection.
    device.send(|out| {
        v4::Publish::new("$oc/devices/meter_n2/sys/messages/up", QoS::AtMostOnce, b"x".to_vec())
            .write(out)
            .unwrap();
    });
    assert!(device.is_closed_within(Duration::from_secs(10)));
}

#[test]
fn an_unsupported_protocol_level_gets_connack_1() {
    let engine = Engine::start(EngineOptions::default());
    let mut device = MqttDevice::open(engine.mqtt);
    // CONNECT, protocol "MQTT" level 6, clean session, keep-alive 60, empty clientId.
    device.send_raw(&[0x10, 0x0c, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x06, 0x02, 0x00, 0x3c, 0x00, 0x00]);
    match device.next_packet(Duration::from_secs(10)) {
        Some(v4::Packet::ConnAck(connack)) => assert_eq!(connack.code as u8, 1),
        other => panic!("expected CONNACK 1, got {other:?}"),
    }
    assert!(device.is_closed_within(Duration::from_secs(10)));
}

/// Regression: the answer's topic repeats the request id; a 65 KB one used to panic the shard
/// (and end the engine) when the answer was encoded.
#[test]
fn an_oversized_request_id_is_ignored_not_fatal() {
    let engine = Engine::start(EngineOptions::default());
    register(&engine.client_a(), &["n1", "n2"]);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let topic = format!("$oc/devices/meter_n1/sys/shadow/get/request_id={}", "r".repeat(65_400));
    device.send(|out| {
        v4::Publish::new(topic, QoS::AtMostOnce, b"{}".to_vec()).write(out).unwrap();
    });
    assert!(device.ping(), "the session goes on");
    let mut other = MqttDevice::login(engine.mqtt, "meter_n2", SECRET);
    assert!(other.ping(), "and so does the engine");
}

/// Regression: a device that stops reading used to leave its session stuck for ever (ONLINE,
/// holding its connection slot): the reader waited on a full outbound queue.
#[test]
fn a_device_that_never_reads_is_disconnected_and_marked_offline() {
    let options =
        EngineOptions { config_extra: "mqtt_connections_per_shard_max = 2".into(), ..Default::default() };
    let engine = Engine::start(options);
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "blob", "service_type": "Blob",
            "properties": [{"property_name": "data", "data_type": "string", "method": "RE"}]}]
    });
    tests::register_devices(&client, &product, &["n1", "n2"], SECRET);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let big = "x".repeat(200_000);
    let report = json!({"services": [{"service_id": "blob", "properties": {"data": big}}]}).to_string();
    device.send(|out| {
        v4::Publish::new("$oc/devices/meter_n1/sys/properties/report", QoS::AtMostOnce, report.into_bytes())
            .write(out)
            .unwrap();
    });
    // Ask for the 200 KB shadow far more often than a socket buffer holds, and never read.
    device.stream.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
    for n in 0..200 {
        let mut out = bytes::BytesMut::new();
        let topic = format!("$oc/devices/meter_n1/sys/shadow/get/request_id={n}");
        v4::Publish::new(topic, QoS::AtMostOnce, b"{}".to_vec()).write(&mut out).unwrap();
        if std::io::Write::write_all(&mut device.stream, &out).is_err() {
            break; // the engine gave up on the connection
        }
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let status = client.get("devices/meter_n1").json()["status"].clone();
        if status == "OFFLINE" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the stuck session never ended: {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut next = MqttDevice::login(engine.mqtt, "meter_n2", SECRET);
    assert!(next.ping(), "its connection slot was given back");
}
