//! What the engine publishes to a device: a device that never subscribes still gets its system
//! topics at QoS 0 (the implicit subscription, spec §1.3); one that subscribes with QoS 1 gets
//! QoS 1 with PUBACK tracking and at most 20 unacknowledged publishes in flight. Exercised
//! through the device's own shadow requests (`.../sys/shadow/get/request_id={id}`).

use std::time::Duration;

use mqttbytes::v4;
use mqttbytes::QoS;
use serde_json::json;
use tests::mqtt::MqttDevice;
use tests::{Engine, EngineOptions};

const SECRET: &str = "device-secret-1";
const REPORT_TOPIC: &str = "$oc/devices/meter_n1/sys/properties/report";

fn logged_in_device(engine: &Engine) -> MqttDevice {
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [
            {"service_id": "water", "service_type": "Water",
             "properties": [{"property_name": "level", "data_type": "int", "method": "RE"}]},
            {"service_id": "battery", "service_type": "Battery",
             "properties": [{"property_name": "pct", "data_type": "int", "method": "RE"}]}
        ]
    });
    assert_eq!(client.post("products", &product).status, 201);
    let body = json!({"node_id": "n1", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &body).status, 201);
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let report = json!({"services": [
        {"service_id": "water", "properties": {"level": 42}},
        {"service_id": "battery", "properties": {"pct": 80}}
    ]});
    publish(&mut device, REPORT_TOPIC, &report.to_string(), QoS::AtLeastOnce, 1);
    assert!(matches!(device.next_packet(Duration::from_secs(10)), Some(v4::Packet::PubAck(_))));
    device
}

fn publish(device: &mut MqttDevice, topic: &str, payload: &str, qos: QoS, packet_id: u16) {
    device.send(|out| {
        let mut publish = v4::Publish::new(topic, qos, payload.as_bytes().to_vec());
        publish.pkid = if qos == QoS::AtMostOnce { 0 } else { packet_id };
        publish.write(out).unwrap();
    });
}

fn ask_shadow(device: &mut MqttDevice, request_id: u32, payload: &str) {
    publish(
        device,
        &format!("$oc/devices/meter_n1/sys/shadow/get/request_id={request_id}"),
        payload,
        QoS::AtMostOnce,
        0,
    );
}

fn next_publish(device: &mut MqttDevice) -> Option<v4::Publish> {
    match device.next_packet(Duration::from_secs(3)) {
        Some(v4::Packet::Publish(publish)) => Some(publish),
        None => None,
        Some(other) => panic!("expected a PUBLISH, got {other:?}"),
    }
}

#[test]
fn a_device_that_never_subscribes_gets_its_system_topics_at_qos_0() {
    let engine = Engine::start(EngineOptions::default());
    let mut device = logged_in_device(&engine);
    ask_shadow(&mut device, 7, r#"{"service_id": "water"}"#);
    let answer = next_publish(&mut device).expect("the shadow answer");
    assert_eq!(answer.topic, "$oc/devices/meter_n1/sys/shadow/get/response/request_id=7");
    assert_eq!(answer.qos, QoS::AtMostOnce);
    let body: serde_json::Value = serde_json::from_slice(&answer.payload).unwrap();
    assert_eq!(body["shadow"].as_array().unwrap().len(), 1, "only the asked service: {body}");
    assert_eq!(body["shadow"][0]["reported"]["properties"]["level"], 42);

    ask_shadow(&mut device, 8, "");
    let all: serde_json::Value = serde_json::from_slice(&next_publish(&mut device).unwrap().payload).unwrap();
    assert_eq!(all["shadow"].as_array().unwrap().len(), 2, "{all}");
    ask_shadow(&mut device, 9, "{broken");
    assert!(next_publish(&mut device).is_none(), "a malformed request gets no answer");
    assert!(device.ping(), "and does not end the session");
}

#[test]
fn qos_1_subscribers_get_qos_1_with_at_most_twenty_unacknowledged() {
    let engine = Engine::start(EngineOptions::default());
    let mut device = logged_in_device(&engine);
    device.send(|out| {
        let mut subscribe =
            v4::Subscribe::new("$oc/devices/meter_n1/sys/shadow/get/response/#", QoS::AtLeastOnce);
        subscribe.pkid = 3;
        subscribe.write(out).unwrap();
    });
    assert!(matches!(device.next_packet(Duration::from_secs(10)), Some(v4::Packet::SubAck(_))));
    for request_id in 0..25 {
        ask_shadow(&mut device, request_id, "");
    }
    let mut unacknowledged = Vec::new();
    while let Some(publish) = next_publish(&mut device) {
        assert_eq!(publish.qos, QoS::AtLeastOnce);
        unacknowledged.push(publish);
    }
    assert_eq!(unacknowledged.len(), 20, "the in-flight window is 20");
    let first = &unacknowledged[0];
    assert!(first.topic.ends_with("request_id=0"), "{}", first.topic);
    device.send(|out| {
        v4::PubAck::new(first.pkid).write(out).unwrap();
    });
    let released = next_publish(&mut device).expect("an ack frees a slot");
    assert!(released.topic.ends_with("request_id=20"), "queued answers go out in order: {}", released.topic);
    assert!(next_publish(&mut device).is_none(), "one ack, one more");
    for publish in unacknowledged.iter().skip(1).chain(std::iter::once(&released)) {
        device.send(|out| {
            v4::PubAck::new(publish.pkid).write(out).unwrap();
        });
    }
    let rest: Vec<_> = std::iter::from_fn(|| next_publish(&mut device)).collect();
    assert_eq!(rest.len(), 4, "the remaining queued answers follow");
}
