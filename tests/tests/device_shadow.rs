//! Property reports update the device shadow: `GET .../devices/{id}/shadow` shows the reported
//! values per service with their event time (and the desired values the device was registered
//! with); a malformed report never ends the session; an acknowledged report survives kill -9.

use std::time::Duration;

use mqttbytes::v4;
use mqttbytes::QoS;
use serde_json::json;
use tests::mqtt::MqttDevice;
use tests::{Engine, EngineOptions};

const SECRET: &str = "device-secret-1";

fn publish_qos1(device: &mut MqttDevice, topic: &str, payload: &[u8], packet_id: u16) {
    device.send(|out| {
        let mut publish = v4::Publish::new(topic, QoS::AtLeastOnce, payload.to_vec());
        publish.pkid = packet_id;
        publish.write(out).unwrap();
    });
    match device.next_packet(Duration::from_secs(10)) {
        Some(v4::Packet::PubAck(ack)) => assert_eq!(ack.pkid, packet_id),
        other => panic!("expected PUBACK {packet_id}, got {other:?}"),
    }
}

#[test]
fn property_reports_reach_the_shadow_and_survive_a_crash() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water", "properties": [
            {"property_name": "level", "data_type": "int", "method": "RE"},
            {"property_name": "state", "data_type": "string", "method": "RE"}
        ]}]
    });
    assert_eq!(client.post("products", &product).status, 201);
    let device_body = json!({
        "node_id": "n1", "product_id": "meter", "auth_info": {"secret": SECRET},
        "shadow": [{"service_id": "water", "desired": {"target": 50}}]
    });
    assert_eq!(client.post("devices", &device_body).status, 201);

    let before = client.get("devices/meter_n1/shadow").json();
    assert_eq!(before["device_id"], "meter_n1");
    assert_eq!(before["shadow"][0]["desired"]["properties"]["target"], 50, "{before}");

    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let topic = "$oc/devices/meter_n1/sys/properties/report";
    let report = json!({"services": [{"service_id": "water", "properties": {"level": 42, "state": "ON"}, "event_time": "20240101T000000Z"}]});
    publish_qos1(&mut device, topic, report.to_string().as_bytes(), 1);
    publish_qos1(&mut device, topic, b"{not json", 2);
    publish_qos1(&mut device, topic, br#"{"services": "nope"}"#, 3);
    let partial = json!({"services": [{"service_id": "water", "properties": {"level": 43}}]});
    publish_qos1(&mut device, topic, partial.to_string().as_bytes(), 4);
    assert!(device.ping(), "malformed reports did not end the session");

    let shadow = client.get("devices/meter_n1/shadow").json();
    let water = &shadow["shadow"][0];
    assert_eq!(water["service_id"], "water");
    assert_eq!(water["reported"]["properties"]["level"], 43, "{shadow}");
    assert_eq!(water["reported"]["properties"]["state"], "ON", "unreported properties keep their value");
    assert_eq!(water["desired"]["properties"]["target"], 50);
    assert!(water["reported"]["event_time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(water["version"], 2);

    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let after = engine.client_a().get("devices/meter_n1/shadow").json();
    assert_eq!(after["shadow"], shadow["shadow"], "acknowledged reports survive kill -9");
    assert_eq!(
        engine.client_a().get("devices/meter_n1").json()["status"],
        "OFFLINE",
        "nobody is online after a restart"
    );
    let other = engine.client(tests::PROJECT_B.project_id, tests::Auth::Token(tests::PROJECT_B.token.into()));
    assert_eq!(other.get("devices/meter_n1/shadow").status, 404, "another project cannot read it");
    assert_eq!(engine.client_a().get("devices/nobody/shadow").error_code(), "IOTDA.014000");
}
