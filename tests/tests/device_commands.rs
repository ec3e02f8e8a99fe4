//! Synchronous commands (`POST .../devices/{id}/commands`, spec §2.5): the command is checked
//! against the product model before anything else, sent to the online device on
//! `$oc/devices/{id}/sys/commands/request_id={command_id}`, and the device's answer on
//! `.../commands/response/request_id={command_id}` comes back verbatim. No answer in time is a
//! 200 with `IOTDA.014111`; stray, late and unparsable answers are dropped; waiting calls are
//! bounded per device and end at once when the device is deleted.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{assert_error, assert_invalid, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_B};

const SECRET: &str = "device-secret-1";
/// Long enough for a device thread to answer on a busy machine, short enough to wait out.
const SHORT_TIMEOUT_MS: u64 = 2000;

fn water_meter() -> Value {
    json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water",
            "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "method": "RW"}],
            "commands": [{
                "command_name": "SET_LEVEL",
                "paras": [
                    {"para_name": "value", "data_type": "int", "min": "0", "max": "100", "required": true},
                    {"para_name": "mode", "data_type": "enum", "enum_list": ["ECO", "FAST"]},
                    {"para_name": "note", "data_type": "string", "max_length": 8}
                ]
            }]
        }]
    })
}

/// An engine on two shards with the `meter` product and devices `meter_{node_id}`.
fn engine_with_devices(node_ids: &[&str], options: EngineOptions) -> Engine {
    let engine = Engine::start(EngineOptions { shards: 2, ..options });
    tests::register_devices(&engine.client_a(), &water_meter(), node_ids, SECRET);
    engine
}

fn with_timeout(timeout_ms: u64) -> EngineOptions {
    EngineOptions { args: vec!["--command-timeout-ms".into(), timeout_ms.to_string()], ..Default::default() }
}

fn set_level(value: Value) -> Value {
    json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": value}})
}

/// Sends a command from its own thread: the call only returns once the device answered.
fn send_command(client: &Client, device_id: &str, body: Value) -> JoinHandle<HttpResponse> {
    let client = client.clone();
    let path = format!("devices/{device_id}/commands");
    thread::spawn(move || client.post(&path, &body))
}

/// Waits for the command the device is sent; returns its request id and payload.
fn receive_command(device: &mut MqttDevice, device_id: &str) -> (String, Value) {
    let publish = device.next_publish(Duration::from_secs(10)).expect("the device got its command");
    let prefix = format!("$oc/devices/{device_id}/sys/commands/request_id=");
    assert!(publish.topic.starts_with(&prefix), "command topic: {}", publish.topic);
    assert_eq!(publish.qos, QoS::AtMostOnce, "a device that never subscribed gets QoS 0");
    let payload = serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|e| panic!("command payload is not JSON ({e}): {:?}", publish.payload));
    (request_id_of(&publish.topic).to_owned(), payload)
}

fn answer(device: &mut MqttDevice, device_id: &str, request_id: &str, payload: &[u8]) {
    let topic = format!("$oc/devices/{device_id}/sys/commands/response/request_id={request_id}");
    device.publish(&topic, payload, QoS::AtMostOnce, 0);
}

fn join(call: JoinHandle<HttpResponse>) -> HttpResponse {
    call.join().expect("the HTTP call thread")
}

fn assert_answered(response: &HttpResponse, request_id: &str, expected: &Value) {
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["command_id"], request_id, "command_id is the topic's request id: {body}");
    assert_eq!(&body["response"], expected, "the device's answer: {body}");
}

#[test]
fn an_online_device_gets_the_command_and_its_answer_is_returned() {
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let engine = engine_with_devices(&nodes, EngineOptions::default());
    let client = engine.client_a();
    for (level, node) in nodes.iter().enumerate() {
        let device_id = format!("meter_{node}");
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let body = json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": level, "mode": "ECO"}});
        let call = send_command(&client, &device_id, body.clone());

        let (request_id, payload) = receive_command(&mut device, &device_id);
        assert_eq!(payload, body, "the device gets service, command and paras, nothing else");
        let reply = json!({"result_code": 0, "response_name": "SET_LEVEL_OK", "paras": {"level": level}});
        answer(&mut device, &device_id, &request_id, reply.to_string().as_bytes());
        assert_answered(&join(call), &request_id, &reply);
    }
}

#[test]
fn a_free_format_command_carries_only_its_paras() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let paras = json!({"anything": [1, {"x": true}], "goes": "here"});
    let call = send_command(&engine.client_a(), "meter_n1", json!({"paras": paras}));

    let (request_id, payload) = receive_command(&mut device, "meter_n1");
    assert_eq!(payload, json!({"paras": paras}), "no service_id, command_name or object_device_id");
    answer(&mut device, "meter_n1", &request_id, br#"{"result_code":0}"#);
    assert_answered(&join(call), &request_id, &json!({"result_code": 0}));
}

#[test]
fn an_answer_at_qos_1_is_acknowledged_and_returned() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(7)));

    let (request_id, _) = receive_command(&mut device, "meter_n1");
    let topic = format!("$oc/devices/meter_n1/sys/commands/response/request_id={request_id}");
    device.publish(&topic, br#"{"result_code":0}"#, QoS::AtLeastOnce, 9);
    assert_answered(&join(call), &request_id, &json!({"result_code": 0}));
}

#[test]
fn the_answer_comes_back_verbatim() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(1)));

    let (request_id, _) = receive_command(&mut device, "meter_n1");
    let raw = r#"{"z":1,"a":{"k":[1,2,{"x":"温度 ✓ 🚀"}]},"b":[true,null,-0.5,"\"q\""],"e":{}}"#;
    answer(&mut device, "meter_n1", &request_id, raw.as_bytes());
    let response = join(call);
    assert_answered(&response, &request_id, &serde_json::from_str(raw).unwrap());
    assert!(response.text().contains(raw), "the answer's bytes appear unchanged: {}", response.text());
}

#[test]
fn an_empty_answer_is_an_empty_response() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(1)));

    let (request_id, _) = receive_command(&mut device, "meter_n1");
    answer(&mut device, "meter_n1", &request_id, b"");
    assert_answered(&join(call), &request_id, &json!({}));
}

#[test]
fn an_answer_that_is_not_json_is_dropped_and_the_call_keeps_waiting() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(1)));

    let (request_id, _) = receive_command(&mut device, "meter_n1");
    answer(&mut device, "meter_n1", &request_id, b"{not json");
    assert!(device.ping(), "an unparsable answer does not end the session");
    assert!(!call.is_finished(), "an unparsable answer does not end the call");
    answer(&mut device, "meter_n1", &request_id, br#"{"second":"try"}"#);
    assert_answered(&join(call), &request_id, &json!({"second": "try"}));
}

#[test]
fn no_answer_before_the_deadline_is_a_timeout() {
    let engine = engine_with_devices(&["n1"], with_timeout(300));
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let sent = Instant::now();
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(1)));

    let (request_id, _) = receive_command(&mut device, "meter_n1");
    let response = join(call);
    assert!(sent.elapsed() >= Duration::from_millis(300), "not before the deadline: {:?}", sent.elapsed());
    assert_eq!(response.status, 200, "a timeout is still a 200: {}", response.text());
    let body = response.json();
    assert_eq!(body["command_id"], request_id.as_str(), "{body}");
    assert_eq!(body["error_code"], "IOTDA.014111", "{body}");
    assert!(body["error_msg"].is_string(), "{body}");
    assert!(body.get("response").is_none(), "no response without an answer: {body}");
}

#[test]
fn late_and_unknown_answers_are_dropped_and_never_reach_another_call() {
    let engine = engine_with_devices(&["n1"], with_timeout(SHORT_TIMEOUT_MS));
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let first = send_command(&client, "meter_n1", set_level(json!(1)));
    let (first_id, _) = receive_command(&mut device, "meter_n1");
    assert_eq!(join(first).json()["error_code"], "IOTDA.014111", "the first call timed out");

    let second = send_command(&client, "meter_n1", set_level(json!(2)));
    let (second_id, _) = receive_command(&mut device, "meter_n1");
    assert_ne!(first_id, second_id, "every command has its own id");
    answer(&mut device, "meter_n1", &first_id, br#"{"late":true}"#);
    answer(&mut device, "meter_n1", "no-such-request", br#"{"stray":true}"#);
    assert!(device.ping(), "dropped answers do not end the session");
    answer(&mut device, "meter_n1", &second_id, br#"{"fresh":true}"#);
    assert_answered(&join(second), &second_id, &json!({"fresh": true}));
    assert!(device.ping(), "the session is still up");
}

#[test]
fn a_device_that_logs_in_again_may_answer_an_earlier_command() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&engine.client_a(), "meter_n1", set_level(json!(3)));
    let (request_id, _) = receive_command(&mut device, "meter_n1");
    device.send(|out| {
        mqttbytes::v4::Disconnect.write(out).unwrap();
    });
    assert!(device.is_closed_within(Duration::from_secs(10)), "DISCONNECT closes the connection");

    let mut again = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    answer(&mut again, "meter_n1", &request_id, br#"{"after":"reconnect"}"#);
    assert_answered(&join(call), &request_id, &json!({"after": "reconnect"}));
}

#[test]
fn unknown_devices_and_other_projects_get_404() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    assert_error(&client.post("devices/meter_nobody/commands", &set_level(json!(1))), 404, "IOTDA.014000");
    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    assert_error(&project_b.post("devices/meter_n1/commands", &set_level(json!(1))), 404, "IOTDA.014000");

    let call = send_command(&client, "meter_n1", set_level(json!(4)));
    let (request_id, payload) = receive_command(&mut device, "meter_n1");
    assert_eq!(payload["paras"]["value"], 4, "the first command the device sees is its own project's");
    answer(&mut device, "meter_n1", &request_id, b"{}");
    assert_answered(&join(call), &request_id, &json!({}));
}

#[test]
fn malformed_requests_are_400() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let path = "devices/meter_n1/commands";
    assert_error(&client.call("POST", path, b"{\"paras\": {"), 400, "IOTDA.000008");
    assert_invalid(&client.post(path, &json!({"service_id": "water"})), "paras");
    assert_invalid(&client.post(path, &json!({"paras": "value=1"})), "paras");
    assert_invalid(&client.post(path, &json!({"service_id": "s".repeat(65), "paras": {}})), "service_id");
}

#[test]
fn commands_that_break_the_model_are_400_naming_the_field_even_offline() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let command = |paras: Value| json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": paras});
    let cases = [
        ("service_id", json!({"service_id": "gas", "command_name": "SET_LEVEL", "paras": {"value": 1}})),
        ("command_name", json!({"service_id": "water", "command_name": "SET_GAS", "paras": {"value": 1}})),
        ("paras.value", command(json!({"mode": "ECO"}))),
        ("paras.value", command(json!({"value": "5"}))),
        ("paras.value", command(json!({"value": 2.0}))),
        ("paras.value", command(json!({"value": 101}))),
        ("paras.value", command(json!({"value": -1}))),
        ("paras.mode", command(json!({"value": 1, "mode": "TURBO"}))),
        ("paras.note", command(json!({"value": 1, "note": "nine char"}))),
        ("paras.color", command(json!({"value": 1, "color": "red"}))),
    ];
    for (field, body) in cases {
        let response = client.post("devices/meter_n1/commands", &body);
        assert_invalid(&response, field);
    }
}

#[test]
fn a_valid_command_to_an_offline_device_is_403() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let response = engine.client_a().post("devices/meter_n1/commands", &set_level(json!(5)));
    assert_error(&response, 403, "IOTDA.014016");
    let free_format = engine.client_a().post("devices/meter_n1/commands", &json!({"paras": {}}));
    assert_error(&free_format, 403, "IOTDA.014016");
}

#[test]
fn an_online_device_never_sees_an_invalid_command() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    assert_invalid(&client.post("devices/meter_n1/commands", &set_level(json!(500))), "paras.value");

    let call = send_command(&client, "meter_n1", set_level(json!(50)));
    let (request_id, payload) = receive_command(&mut device, "meter_n1");
    assert_eq!(payload["paras"]["value"], 50, "the refused command was never sent: {payload}");
    answer(&mut device, "meter_n1", &request_id, b"{}");
    assert_answered(&join(call), &request_id, &json!({}));
}

#[test]
fn deleting_the_device_ends_its_waiting_command_with_404() {
    let engine = engine_with_devices(&["n1"], EngineOptions::default());
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let call = send_command(&client, "meter_n1", set_level(json!(1)));
    receive_command(&mut device, "meter_n1");

    let deleted = Instant::now();
    assert_eq!(client.delete("devices/meter_n1").status, 204);
    let response = join(call);
    assert!(
        deleted.elapsed() < Duration::from_secs(5),
        "the call ended with the device, not at the 20 s deadline: {:?}",
        deleted.elapsed()
    );
    assert_error(&response, 404, "IOTDA.014000");
}

#[test]
fn a_device_has_a_bounded_number_of_waiting_calls() {
    let timeout = Duration::from_millis(2000);
    let options = EngineOptions {
        config_extra: "device_calls_in_flight_max = 2\n".into(),
        ..with_timeout(timeout.as_millis() as u64)
    };
    let engine = engine_with_devices(&["n1", "n2"], options);
    let client = engine.client_a();
    let mut silent = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let mut other = MqttDevice::login(engine.mqtt, "meter_n2", SECRET);
    let waiting: Vec<_> = (0..2).map(|n| send_command(&client, "meter_n1", set_level(json!(n)))).collect();
    for _ in &waiting {
        receive_command(&mut silent, "meter_n1");
    }

    let sent = Instant::now();
    let refused = client.post("devices/meter_n1/commands", &set_level(json!(3)));
    assert!(sent.elapsed() < timeout, "refused at once, not after waiting: {:?}", sent.elapsed());
    assert_error(&refused, 429, "APIG.0308");

    let call = send_command(&client, "meter_n2", set_level(json!(4)));
    let (request_id, _) = receive_command(&mut other, "meter_n2");
    answer(&mut other, "meter_n2", &request_id, b"{}");
    assert_answered(&join(call), &request_id, &json!({}));
    for call in waiting {
        assert_eq!(join(call).json()["error_code"], "IOTDA.014111", "the two waiting calls time out");
    }
}

#[test]
fn a_command_that_would_wait_behind_a_full_qos_1_window_is_refused_not_queued() {
    let engine = engine_with_devices(&["n1"], EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    device.subscribe(&format!("$oc/devices/{device_id}/sys/#"), QoS::AtLeastOnce, 1);
    // 20 QoS 1 messages the device never acknowledges fill its in-flight window.
    let messages: Vec<_> = (0..20)
        .map(|n| {
            let (client, path) = (client.clone(), format!("devices/{device_id}/messages"));
            thread::spawn(move || client.post(&path, &json!({"message": format!("m{n}")})))
        })
        .collect();
    for _ in 0..20 {
        let publish = device.next_publish(Duration::from_secs(10)).expect("a message at QoS 1");
        assert_eq!(publish.qos, QoS::AtLeastOnce);
    }
    for message in messages {
        assert_eq!(message.join().unwrap().status, 201);
    }
    let started = Instant::now();
    let refused = join(send_command(&client, device_id, json!({"paras": {}})));
    assert_error(&refused, 429, "APIG.0308");
    assert!(started.elapsed() < Duration::from_secs(5), "refused at once, not after the timeout");
    assert!(refused.text().contains("QoS 1"), "the message says why: {}", refused.text());
    // Nothing was queued for later: acknowledging frees the window, and no command follows
    // (only DUP resends of the messages may still arrive).
    for pkid in 1..=20 {
        device.puback(pkid);
    }
    while let Some(publish) = device.next_publish(Duration::from_millis(500)) {
        assert!(!publish.topic.contains("/sys/commands/"), "a refused command went out: {}", publish.topic);
    }
}
