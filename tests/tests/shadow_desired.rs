//! Desired properties (spec §2.9, §7.3): UpdateDeviceShadowDesiredData with its version check,
//! delivered with the property-set flow when the device logs in (also after kill -9) or while
//! it is online, cleared once reported, and not resent within 5 minutes.

use std::time::Duration;

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{assert_invalid, Engine, EngineOptions};

const SECRET: &str = "desired-secret-1";

fn register(client: &tests::Client) {
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water", "properties": [
            {"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RW"},
            {"property_name": "mode", "data_type": "string", "method": "RW"},
            {"property_name": "reading", "data_type": "int", "method": "R"}]}]
    });
    assert_eq!(client.post("products", &product).status, 201);
    let device = json!({"node_id": "d1", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &device).status, 201);
}

fn put_desired(client: &tests::Client, body: Value) -> tests::HttpResponse {
    client.put("devices/meter_d1/shadow", &body)
}

/// The next property set the device receives: its request id and services.
fn next_set(device: &mut MqttDevice) -> (String, Value) {
    let publish = device.next_publish(Duration::from_secs(10)).expect("a property set");
    assert!(
        publish.topic.starts_with("$oc/devices/meter_d1/sys/properties/set/request_id="),
        "{}",
        publish.topic
    );
    let body: Value = serde_json::from_slice(&publish.payload).unwrap();
    (request_id_of(&publish.topic).to_owned(), body["services"].clone())
}

fn answer_set(device: &mut MqttDevice, request_id: &str) {
    let topic = format!("$oc/devices/meter_d1/sys/properties/set/response/request_id={request_id}");
    device.publish(&topic, br#"{"result_code":0}"#, QoS::AtMostOnce, 0);
}

fn report(device: &mut MqttDevice, properties: Value) {
    let body = json!({"services": [{"service_id": "water", "properties": properties}]});
    // QoS 1: `publish` waits for the PUBACK, which comes once the shadow is durable.
    device.publish(
        "$oc/devices/meter_d1/sys/properties/report",
        body.to_string().as_bytes(),
        QoS::AtLeastOnce,
        7,
    );
}

fn water(client: &tests::Client) -> Value {
    client.get("devices/meter_d1/shadow").json()["shadow"][0].clone()
}

#[test]
fn desired_values_reach_the_device_at_login_and_online_and_clear_once_reported() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    register(&client);

    // Set while the device has never connected; checked against the model and the version.
    let answer = put_desired(&client, json!({"shadow": [{"service_id": "water", "desired": {"level": 5}}]}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.json()["shadow"][0]["desired"]["properties"]["level"], 5);
    assert_eq!(answer.json()["shadow"][0]["version"], 1);
    let stale = put_desired(
        &client,
        json!({"shadow": [{"service_id": "water", "desired": {"level": 6}, "version": 0}]}),
    );
    assert_invalid(&stale, "shadow[0].version");
    assert_invalid(
        &put_desired(&client, json!({"shadow": [{"service_id": "water", "desired": {"reading": 1}}]})),
        "shadow[0].desired.reading",
    );
    assert_invalid(
        &put_desired(&client, json!({"shadow": [{"service_id": "water", "desired": {"level": 500}}]})),
        "shadow[0].desired.level",
    );
    assert_invalid(&put_desired(&client, json!({"shadow": [{"service_id": "water"}]})), "shadow[0].desired");
    assert_eq!(
        water(&client)["desired"]["properties"],
        json!({"level": 5}),
        "a refused update changed nothing"
    );

    // Durable: kill -9, restart, and the device gets the value right after its login.
    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    assert_eq!(water(&client)["desired"]["properties"], json!({"level": 5}));
    let mut device = MqttDevice::login(engine.mqtt, "meter_d1", SECRET);
    let (request_id, services) = next_set(&mut device);
    assert_eq!(services, json!([{"service_id": "water", "properties": {"level": 5}}]));
    answer_set(&mut device, &request_id);
    report(&mut device, json!({"level": 5}));
    assert_eq!(water(&client)["desired"]["properties"], json!({}), "met desired values are cleared");
    assert_eq!(water(&client)["reported"]["properties"]["level"], 5);

    // Online: a new desired value goes out at once (only what differs from the report).
    let version = water(&client)["version"].as_u64().unwrap();
    let answer = put_desired(
        &client,
        json!({"shadow": [{"service_id": "water", "desired": {"level": 5, "mode": "eco"}, "version": version}]}),
    );
    assert_eq!(answer.status, 200, "{}", answer.text());
    let (_ignored, services) = next_set(&mut device);
    assert_eq!(services, json!([{"service_id": "water", "properties": {"mode": "eco"}}]));
    // Not answered, and a report that does not meet it: no resend within 5 minutes.
    report(&mut device, json!({"level": 4}));
    assert!(
        device.next_publish(Duration::from_millis(800)).is_none(),
        "the desired value was resent at once"
    );
    // `null` clears one value; the shadow GET shows desired, reported and version.
    put_desired(&client, json!({"shadow": [{"service_id": "water", "desired": {"mode": null}}]}));
    let shown = water(&client);
    assert_eq!(shown["desired"]["properties"], json!({"level": 5}));
    assert_eq!(shown["reported"]["properties"]["level"], 4);
    assert!(shown["version"].as_u64().unwrap() > version);
}
