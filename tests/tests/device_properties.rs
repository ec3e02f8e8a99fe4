//! Setting and querying a device's properties (`PUT` / `GET .../devices/{id}/properties`, spec
//! §2.6): a set is checked against the product model (service, property, writable, value), then
//! sent on `$oc/devices/{id}/sys/properties/set/request_id={id}`; a get names one service of the
//! model and is sent on `.../sys/properties/get/request_id={id}`. The device's answer on the
//! matching `.../response/request_id={id}` topic comes back verbatim with the same request id.

use std::thread::{self, JoinHandle};
use std::time::Duration;

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{assert_error, assert_invalid, Client, Engine, EngineOptions, HttpResponse};

const SECRET: &str = "device-secret-1";

fn water_meter() -> Value {
    json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [
            {
                "service_id": "water",
                "service_type": "Water",
                "properties": [
                    {"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RW"},
                    {"property_name": "mode", "data_type": "enum", "enum_list": ["ECO", "FAST"], "method": "RW"},
                    {"property_name": "label", "data_type": "string", "max_length": 8, "method": "W"},
                    {"property_name": "flow", "data_type": "decimal", "method": "RE"}
                ]
            },
            {
                "service_id": "battery",
                "service_type": "Battery",
                "properties": [{"property_name": "pct", "data_type": "int", "method": "R"}]
            }
        ]
    })
}

/// An engine on two shards with the `meter` product and devices `meter_{node_id}`.
fn engine_with_devices(node_ids: &[&str], options: EngineOptions) -> Engine {
    let engine = Engine::start(EngineOptions { shards: 2, ..options });
    tests::register_devices(&engine.client_a(), &water_meter(), node_ids, SECRET);
    engine
}

fn set_body(properties: Value) -> Value {
    json!({"services": [{"service_id": "water", "properties": properties}]})
}

/// Runs `request` on its own thread: it only returns once the device answered.
fn in_background(
    client: &Client,
    request: impl FnOnce(&Client) -> HttpResponse + Send + 'static,
) -> JoinHandle<HttpResponse> {
    let client = client.clone();
    thread::spawn(move || request(&client))
}

/// Waits for the request the device is sent on `.../sys/properties/{verb}/request_id=…`;
/// returns its request id and payload.
fn receive_request(device: &mut MqttDevice, device_id: &str, verb: &str) -> (String, Value) {
    let publish = device.next_publish(Duration::from_secs(10)).expect("the device got the request");
    let prefix = format!("$oc/devices/{device_id}/sys/properties/{verb}/request_id=");
    assert!(publish.topic.starts_with(&prefix), "request topic: {}", publish.topic);
    assert_eq!(publish.qos, QoS::AtMostOnce, "a device that never subscribed gets QoS 0");
    let payload = serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|e| panic!("request payload is not JSON ({e}): {:?}", publish.payload));
    (request_id_of(&publish.topic).to_owned(), payload)
}

fn answer(device: &mut MqttDevice, device_id: &str, verb: &str, request_id: &str, payload: &[u8]) {
    let topic = format!("$oc/devices/{device_id}/sys/properties/{verb}/response/request_id={request_id}");
    device.publish(&topic, payload, QoS::AtMostOnce, 0);
}

fn assert_answered(response: &HttpResponse, request_id: &str, expected: &Value) {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["request_id"], request_id, "request_id is the topic's: {body}");
    assert_eq!(&body["response"], expected, "the device's answer: {body}");
}

fn assert_timed_out(response: &HttpResponse, request_id: &str) {
    assert_eq!(response.status, 200, "a timeout is still a 200: {}", response.text());
    let body = response.json();
    assert_eq!(body["request_id"], request_id, "{body}");
    assert_eq!(body["error_code"], "IOTDA.014111", "{body}");
    assert!(body.get("response").is_none(), "no response without an answer: {body}");
}

#[test]
fn a_property_set_reaches_the_device_and_its_answer_is_returned() {
    let nodes = ["n1", "n2", "n3", "n4"];
    let engine = engine_with_devices(&nodes, EngineOptions::default());
    let client = engine.client_a();
    for (level, node) in nodes.iter().enumerate() {
        let device_id = format!("meter_{node}");
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let body = set_body(json!({"level": level, "mode": "FAST", "label": "tank"}));
        let path = format!("devices/{device_id}/properties");
        let sent = body.clone();
        let call = in_background(&client, move |client| client.put(&path, &sent));

        let (request_id, payload) = receive_request(&mut device, &device_id, "set");
        assert_eq!(payload, body, "the device gets the services as sent");
        let raw = r#"{"result_code":0,"result_desc":"done ✓"}"#;
        answer(&mut device, &device_id, "set", &request_id, raw.as_bytes());
        let response = call.join().unwrap();
        assert_answered(&response, &request_id, &serde_json::from_str(raw).unwrap());
        assert!(response.text().contains(raw), "verbatim: {}", response.text());
    }
}

#[test]
fn a_property_get_reaches_the_device_and_its_answer_is_returned() {
    let nodes = ["n1", "n2", "n3", "n4"];
    let engine = engine_with_devices(&nodes, EngineOptions::default());
    let client = engine.client_a();
    for (level, node) in nodes.iter().enumerate() {
        let device_id = format!("meter_{node}");
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let path = format!("devices/{device_id}/properties?service_id=water");
        let call = in_background(&client, move |client| client.get(&path));

        let (request_id, payload) = receive_request(&mut device, &device_id, "get");
        assert_eq!(payload, json!({"service_id": "water"}));
        let reply = json!({"services": [{"service_id": "water", "properties": {"level": level}}]});
        answer(&mut device, &device_id, "get", &request_id, reply.to_string().as_bytes());
        assert_answered(&call.join().unwrap(), &request_id, &reply);
    }
}

#[test]
fn property_sets_that_break_the_model_are_400_naming_the_field() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let cases = [
        ("services", json!({"services": []})),
        ("services", json!({})),
        ("services[0].service_id", json!({"services": [{"service_id": "gas", "properties": {"level": 1}}]})),
        ("services[0].properties.depth", set_body(json!({"depth": 1}))),
        ("services[0].properties.flow", set_body(json!({"flow": 1.5}))),
        ("services[0].properties.level", set_body(json!({"level": "5"}))),
        ("services[0].properties.level", set_body(json!({"level": 2.0}))),
        ("services[0].properties.level", set_body(json!({"level": 101}))),
        ("services[0].properties.mode", set_body(json!({"mode": "TURBO"}))),
        ("services[0].properties.label", set_body(json!({"label": "nine char"}))),
        (
            "services[1].properties.pct",
            json!({"services": [
                {"service_id": "water", "properties": {"level": 1}},
                {"service_id": "battery", "properties": {"pct": 50}}
            ]}),
        ),
    ];
    for (field, body) in cases {
        assert_invalid(&client.put("devices/meter_n1/properties", &body), field);
    }
}

#[test]
fn a_property_get_must_name_a_service_of_the_model() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    assert_invalid(&client.get("devices/meter_n1/properties"), "service_id");
    assert_invalid(&client.get("devices/meter_n1/properties?service_id=gas"), "service_id");
}

#[test]
fn unknown_and_offline_devices_are_refused() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let valid = set_body(json!({"level": 5}));
    assert_error(&client.put("devices/meter_nobody/properties", &valid), 404, "IOTDA.014000");
    assert_error(&client.get("devices/meter_nobody/properties?service_id=water"), 404, "IOTDA.014000");
    assert_error(&client.put("devices/meter_n1/properties", &valid), 403, "IOTDA.014016");
    assert_error(&client.get("devices/meter_n1/properties?service_id=water"), 403, "IOTDA.014016");
}

#[test]
fn no_answer_before_the_deadline_is_a_timeout() {
    let options =
        EngineOptions { args: vec!["--command-timeout-ms".into(), "300".into()], ..Default::default() };
    let engine = engine_with_devices(&["n1"], options);
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);

    let set = in_background(&client, |client| {
        client.put("devices/meter_n1/properties", &set_body(json!({"level": 1})))
    });
    let (set_id, _) = receive_request(&mut device, "meter_n1", "set");
    assert_timed_out(&set.join().unwrap(), &set_id);

    let get = in_background(&client, |client| client.get("devices/meter_n1/properties?service_id=water"));
    let (get_id, _) = receive_request(&mut device, "meter_n1", "get");
    assert_timed_out(&get.join().unwrap(), &get_id);
    assert!(device.ping(), "the session is still up");
}
