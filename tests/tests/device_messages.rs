//! Asynchronous downlink messages (`POST .../devices/{id}/messages`, spec §1.5, §1.6, §2.7):
//! an online device gets the message at once (QoS 0 unless it subscribed at QoS 1, then the
//! PUBACK delivers it and an unacknowledged publish is resent with DUP), an offline one gets
//! its pending messages in creation order when it logs in (or subscribes to their custom
//! topic), ttl 0 to an offline device and an unsubscribed custom topic fail, a device keeps
//! its 20 latest messages, List/Show give the whole message object, and `/metrics` counts it.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mqttbytes::v4;
use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::{http_request, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_B};

const SECRET: &str = "device-secret-1";
const SHARDS: usize = 2;
/// Node ids whose devices live on both shards (checked by [`engine_with_devices`]).
const NODES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];
const WAIT: Duration = Duration::from_secs(10);

/// An engine on two shards with product `meter` and devices `meter_{node}`, spread over both.
fn engine_with_devices(nodes: &[&str]) -> Engine {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..Default::default() });
    tests::register_meter_devices(&engine.client_a(), nodes, SECRET);
    engine
}

fn device_ids(nodes: &[&str]) -> Vec<String> {
    let ids: Vec<String> = nodes.iter().map(|node| format!("meter_{node}")).collect();
    let mut per_shard = [0usize; SHARDS];
    for id in &ids {
        per_shard[protocol::routing::home_shard(id, SHARDS)] += 1;
    }
    if ids.len() >= SHARDS {
        assert!(per_shard.iter().all(|&n| n > 0), "the devices must span both shards: {per_shard:?}");
    }
    ids
}

fn create(client: &Client, device_id: &str, body: &Value) -> HttpResponse {
    client.post(&format!("devices/{device_id}/messages"), body)
}

/// CreateMessage from its own thread (it may wait up to 2 s for a PUBACK).
fn create_in_thread(client: &Client, device_id: &str, body: Value) -> JoinHandle<HttpResponse> {
    let client = client.clone();
    let device_id = device_id.to_owned();
    thread::spawn(move || create(&client, &device_id, &body))
}

/// Asserts a 201 with `status`, well-formed times, and returns the message id.
fn assert_created(response: &HttpResponse, status: &str) -> String {
    assert_eq!(response.status, 201, "{}", response.text());
    let body = response.json();
    let result = &body["result"];
    assert_eq!(result["status"], status, "{body}");
    assert!(is_t1(&result["created_time"]), "created_time is yyyyMMdd'T'HHmmss'Z': {body}");
    if ["DELIVERED", "FAILED", "TIMEOUT"].contains(&status) {
        assert!(is_t1(&result["finished_time"]), "a finished message has a finished_time: {body}");
    } else {
        assert!(result.get("finished_time").is_none_or(Value::is_null), "no finished_time yet: {body}");
    }
    let id = body["message_id"].as_str().unwrap_or_else(|| panic!("no message_id: {body}"));
    assert!(!id.is_empty(), "an empty message_id: {body}");
    id.to_owned()
}

fn is_t1(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes.iter().enumerate().all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit())
}

fn show(client: &Client, device_id: &str, message_id: &str) -> HttpResponse {
    client.get(&format!("devices/{device_id}/messages/{message_id}"))
}

fn list(client: &Client, device_id: &str) -> Vec<Value> {
    let response = client.get(&format!("devices/{device_id}/messages"));
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["device_id"], device_id, "{body}");
    body["messages"].as_array().unwrap_or_else(|| panic!("no messages array: {body}")).clone()
}

fn ids_of(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Polls ShowDeviceMessage until the message has `status` (the deadline is [`WAIT`]).
fn wait_for_status(client: &Client, device_id: &str, message_id: &str, status: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let response = show(client, device_id, message_id);
        assert_eq!(response.status, 200, "{}", response.text());
        let message = response.json();
        if message["status"] == status {
            return message;
        }
        assert!(Instant::now() < deadline, "{message_id} of {device_id} never became {status}: {message}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn down_topic(device_id: &str) -> String {
    format!("$oc/devices/{device_id}/sys/messages/down")
}

fn payload_json(publish: &v4::Publish) -> Value {
    serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|e| panic!("payload on {} is not JSON ({e}): {:?}", publish.topic, publish.payload))
}

fn assert_error(response: &HttpResponse, status: u16, error_code: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert_eq!(response.error_code(), error_code, "{}", response.text());
}

fn assert_invalid(response: &HttpResponse, field: &str, case: &str) {
    assert_eq!(response.status, 400, "{case}: {}", response.text());
    assert_eq!(response.error_code(), "IOTDA.000006", "{case}: {}", response.text());
    let message = response.json()["error_msg"].as_str().unwrap_or_default().to_owned();
    assert!(names(&message, field), "{case}: error_msg {message:?} does not name {field}");
}

/// Whether `text` holds `field` as a whole word (`message` is not named by `message_id`).
fn names(text: &str, field: &str) -> bool {
    let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    text.match_indices(field).any(|(at, _)| {
        !word(text[..at].chars().next_back()) && !word(text[at + field.len()..].chars().next())
    })
}

fn scrape(engine: &Engine) -> String {
    let headers = [("Host".to_owned(), engine.http.to_string())];
    let response = http_request(engine.http, "GET", "/metrics", &headers, b"");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no series {series} in /metrics"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{series} is not a count: {e}"))
}

fn messages_total(text: &str, status: &str) -> u64 {
    metric(text, &format!("ringiot_messages_total{{status=\"{status}\"}}"))
}

fn pending_gauge(text: &str, shard: usize) -> u64 {
    metric(text, &format!("ringiot_messages_pending{{shard=\"{shard}\"}}"))
}

#[test]
fn an_online_device_gets_the_standard_payload_at_qos_0_and_the_message_is_delivered() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    for (n, device_id) in device_ids(&NODES).iter().enumerate() {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let message_id = format!("msg-{n}_a");
        let body = json!({"message_id": message_id, "name": "greeting", "message": format!("hello {n}")});
        assert_eq!(assert_created(&create(&client, device_id, &body), "DELIVERED"), message_id);

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, down_topic(device_id), "the default topic");
        assert_eq!(publish.qos, QoS::AtMostOnce, "a device that never subscribed gets QoS 0");
        let expected = json!({"name": "greeting", "id": message_id, "content": format!("hello {n}")});
        assert_eq!(payload_json(&publish), expected, "the standard payload, nothing else");
    }
}

#[test]
fn a_message_without_id_or_name_gets_a_generated_id_and_a_null_name() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let first = assert_created(&create(&client, &device_id, &json!({"message": "a"})), "DELIVERED");
        let second = assert_created(&create(&client, &device_id, &json!({"message": "b"})), "DELIVERED");
        assert_ne!(first, second, "every generated id is new");
        for (id, content) in [(first, "a"), (second, "b")] {
            let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
            assert_eq!(payload, json!({"name": null, "id": id, "content": content}));
        }
    }
}

#[test]
fn a_json_message_is_sent_as_its_json_text_in_content() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    let message = json!({"a": 1});
    let id = assert_created(&create(&client, device_id, &json!({"message": message})), "DELIVERED");

    let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
    assert_eq!(payload["id"], id.as_str(), "{payload}");
    assert_eq!(payload["content"], "{\"a\":1}", "content is the message's JSON text: {payload}");
    let shown = show(&client, device_id, &id).json();
    assert_eq!(shown["message"], message, "Show gives the JSON value as given: {shown}");

    for (message, text) in [(json!(5), "5"), (json!([1, "a", null]), "[1,\"a\",null]"), (json!(true), "true")]
    {
        assert_created(&create(&client, device_id, &json!({"message": message})), "DELIVERED");
        let payload = payload_json(&device.next_publish(WAIT).expect("the device got its message"));
        assert_eq!(payload["content"], text, "content of {message}: {payload}");
    }
}

#[test]
fn a_raw_message_is_sent_as_its_bytes() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let text = "raw text: 温度 ✓ {not json";
        let body = json!({"message": text, "payload_format": "raw", "name": "ignored"});
        assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its raw message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(&publish.payload[..], text.as_bytes(), "a raw string arrives as its bytes");

        let object = json!({"k": [1, 2, {"x": "y"}], "z": null});
        let body = json!({"message": object, "payload_format": "raw"});
        assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its raw JSON message");
        assert_eq!(payload_json(&publish), object, "a raw JSON value arrives as its JSON text");
    }
}

#[test]
fn a_base64_message_is_sent_decoded() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let body = json!({"message": "AP8B/g==", "encoding": "base64"});
        let id = assert_created(&create(&client, &device_id, &body), "DELIVERED");
        let publish = device.next_publish(WAIT).expect("the device got its binary message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(&publish.payload[..], &[0u8, 255, 1, 254], "the decoded bytes, not UTF-8");
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["message"], "AP8B/g==", "Show gives the message as given: {shown}");
        assert_eq!(shown["encoding"], "base64", "{shown}");
    }
}

#[test]
fn a_device_subscribed_at_qos_1_gets_qos_1_and_its_puback_delivers() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        assert!(device.subscribe(&down_topic(&device_id), QoS::AtLeastOnce, 1).is_empty());
        let call = create_in_thread(&client, &device_id, json!({"message": "q1"}));

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, down_topic(&device_id));
        assert_eq!(publish.qos, QoS::AtLeastOnce, "a QoS 1 subscriber gets QoS 1");
        assert!(!publish.dup, "the first send is not a duplicate");
        device.puback(publish.pkid);
        let id = assert_created(&call.join().unwrap(), "DELIVERED");
        assert_eq!(payload_json(&publish)["id"], id.as_str());
    }
}

#[test]
fn an_unacknowledged_qos_1_message_is_pending_resent_with_dup_and_delivered_by_a_late_puback() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    device.subscribe(&down_topic(device_id), QoS::AtLeastOnce, 1);
    let sent = Instant::now();
    let call = create_in_thread(&client, device_id, json!({"message": "ack me"}));

    let first = device.next_publish(WAIT).expect("the device got its message");
    assert_eq!(first.qos, QoS::AtLeastOnce);
    let id = assert_created(&call.join().unwrap(), "PENDING");
    assert!(
        sent.elapsed() >= Duration::from_millis(1900),
        "waited ~2 s for the PUBACK: {:?}",
        sent.elapsed()
    );
    assert_eq!(show(&client, device_id, &id).json()["status"], "PENDING");

    let again = device.next_publish(WAIT).expect("the unacknowledged message is resent");
    assert!(again.dup, "the resend carries DUP");
    assert_eq!(again.pkid, first.pkid, "the same packet id");
    assert_eq!((&again.topic, &again.payload), (&first.topic, &first.payload), "the same packet");
    device.puback(again.pkid);
    let delivered = wait_for_status(&client, device_id, &id, "DELIVERED");
    assert!(is_t1(&delivered["finished_time"]), "{delivered}");
}

#[test]
fn an_unacknowledged_qos_1_message_is_resent_at_most_three_times() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    device.subscribe(&down_topic(device_id), QoS::AtLeastOnce, 1);
    let call = create_in_thread(&client, device_id, json!({"message": "never acked"}));

    let first = device.next_publish(WAIT).expect("the device got its message");
    let id = assert_created(&call.join().unwrap(), "PENDING");
    for resend in 1..=3 {
        let again = device.next_publish(WAIT).unwrap_or_else(|| panic!("resend {resend} never came"));
        assert!(again.dup && again.pkid == first.pkid, "resend {resend} is the same packet with DUP");
    }
    assert!(device.next_publish(Duration::from_secs(4)).is_none(), "no fourth resend in this cycle");
    assert_ne!(show(&client, device_id, &id).json()["status"], "DELIVERED", "never acknowledged");
}

#[test]
fn an_unacknowledged_qos_1_message_is_sent_again_at_the_next_login() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        device.subscribe(&down_topic(&device_id), QoS::AtLeastOnce, 1);
        let call = create_in_thread(&client, &device_id, json!({"message": "again"}));
        let first = device.next_publish(WAIT).expect("the device got its message");
        let id = assert_created(&call.join().unwrap(), "PENDING");
        device.disconnect();

        let mut again = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let publish = again.next_publish(WAIT).expect("the unacknowledged message comes again after login");
        assert_eq!((&publish.topic, &publish.payload), (&first.topic, &first.payload), "the same message");
        if publish.qos == QoS::AtLeastOnce {
            again.puback(publish.pkid);
        }
        wait_for_status(&client, &device_id, &id, "DELIVERED");
    }
}

#[test]
fn a_custom_topic_the_device_subscribed_to_carries_the_message() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        device.subscribe(&format!("$oc/devices/{device_id}/user/#"), QoS::AtLeastOnce, 1);
        let call = create_in_thread(&client, &device_id, json!({"message": "cfg", "topic": "cfg/x"}));

        let publish = device.next_publish(WAIT).expect("the device got its message");
        assert_eq!(publish.topic, format!("$oc/devices/{device_id}/user/cfg/x"), "topic is a suffix");
        assert_eq!(publish.qos, QoS::AtLeastOnce, "the subscription's QoS");
        assert_eq!(payload_json(&publish)["content"], "cfg");
        device.puback(publish.pkid);
        let id = assert_created(&call.join().unwrap(), "DELIVERED");
        assert_eq!(show(&client, &device_id, &id).json()["topic"], "cfg/x");
    }
}

#[test]
fn topic_full_name_is_used_verbatim() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let mut device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let topic = "plant/7/meter_n1/inbox";
    device.subscribe(topic, QoS::AtMostOnce, 1);
    let body = json!({"message": "full", "topic_full_name": topic});
    let id = assert_created(&create(&client, "meter_n1", &body), "DELIVERED");

    let publish = device.next_publish(WAIT).expect("the device got its message");
    assert_eq!(publish.topic, topic, "topic_full_name verbatim");
    assert_eq!(publish.qos, QoS::AtMostOnce, "the subscription's QoS");
    assert_eq!(payload_json(&publish)["id"], id.as_str());
    assert_eq!(show(&client, "meter_n1", &id).json()["topic_full_name"], topic);
}

#[test]
fn an_unsubscribed_custom_topic_fails_with_014112() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        let id = assert_created(
            &create(&client, &device_id, &json!({"message": "x", "topic": "nobody"})),
            "FAILED",
        );
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["status"], "FAILED", "{shown}");
        assert_eq!(shown["error_info"]["error_code"], "IOTDA.014112", "{shown}");
        assert!(device.ping(), "nothing was published to the device before the PINGRESP");
    }
}

#[test]
fn an_offline_device_gets_its_pending_messages_in_order_at_login() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let devices = device_ids(&NODES);
    let mut created = Vec::new();
    for device_id in &devices {
        let ids: Vec<String> = (0..3)
            .map(|n| {
                let body = json!({"message": format!("{device_id} #{n}"), "ttl": 5 * (n + 1)});
                assert_created(&create(&client, device_id, &body), "PENDING")
            })
            .collect();
        created.push(ids);
    }
    for (device_id, ids) in devices.iter().zip(&created) {
        for message in list(&client, device_id) {
            assert_eq!(message["status"], "PENDING", "nobody logged in yet: {message}");
        }
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let received = device.publishes(3, WAIT);
        for (n, (publish, id)) in received.iter().zip(ids).enumerate() {
            assert_eq!(publish.topic, down_topic(device_id));
            let expected = json!({"name": null, "id": id, "content": format!("{device_id} #{n}")});
            assert_eq!(payload_json(publish), expected, "message {n} in creation order");
        }
        assert!(device.ping(), "exactly the pending messages, each once");
        for id in ids {
            let message = wait_for_status(&client, device_id, id, "DELIVERED");
            assert!(is_t1(&message["finished_time"]), "{message}");
            assert!(message["error_info"].is_null(), "{message}");
        }
    }
}

#[test]
fn a_pending_message_for_a_custom_topic_waits_for_the_subscription() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let id =
        assert_created(&create(&client, device_id, &json!({"message": "later", "topic": "t1"})), "PENDING");

    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    assert!(device.ping(), "nothing is sent before the device subscribes to the topic");
    assert_eq!(show(&client, device_id, &id).json()["status"], "PENDING", "still waiting");
    let topic = format!("$oc/devices/{device_id}/user/t1");
    let mut received = device.subscribe(&topic, QoS::AtMostOnce, 1);
    if received.is_empty() {
        received.push(device.next_publish(WAIT).expect("the message follows the subscription"));
    }
    assert_eq!(received.len(), 1, "one message: {received:?}");
    assert_eq!(received[0].topic, topic);
    assert_eq!(payload_json(&received[0])["id"], id.as_str());
    wait_for_status(&client, device_id, &id, "DELIVERED");
}

#[test]
fn ttl_0_to_an_offline_device_fails_with_014016() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    for device_id in device_ids(&NODES[..2]) {
        let id = assert_created(
            &create(&client, &device_id, &json!({"message": "now or never", "ttl": 0})),
            "FAILED",
        );
        let shown = show(&client, &device_id, &id).json();
        assert_eq!(shown["error_info"]["error_code"], "IOTDA.014016", "{shown}");
        assert!(is_t1(&shown["finished_time"]), "{shown}");

        let mut device = MqttDevice::login(engine.mqtt, &device_id, SECRET);
        assert!(device.ping(), "a failed message is never sent later");
    }
}

#[test]
fn a_device_keeps_its_twenty_latest_messages() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    let devices = device_ids(&NODES[..2]);
    let ids: Vec<String> = (0..21)
        .map(|n| assert_created(&create(&client, &devices[0], &json!({"message": n})), "PENDING"))
        .collect();
    let other = assert_created(&create(&client, &devices[1], &json!({"message": "other"})), "PENDING");

    let kept = list(&client, &devices[0]);
    assert_eq!(ids_of(&kept), ids[1..].to_vec(), "the 20 latest, oldest first: the first was replaced");
    assert_error(&show(&client, &devices[0], &ids[0]), 404, "IOTDA.000404");
    assert_eq!(ids_of(&list(&client, &devices[1])), vec![other], "another device's history is its own");

    let mut device = MqttDevice::login(engine.mqtt, &devices[0], SECRET);
    let received = device.publishes(20, WAIT);
    let sent_ids: Vec<String> =
        received.iter().map(|p| payload_json(p)["id"].as_str().unwrap_or_default().to_owned()).collect();
    assert_eq!(sent_ids, ids[1..].to_vec(), "the replaced pending message is never sent");
    assert!(device.ping(), "nothing more");
}

#[test]
fn list_and_show_give_the_whole_message_object() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let device_id = "meter_n1";
    let first = json!({
        "message_id": "m-1", "name": "cfg", "message": {"x": [1, "y"]}, "payload_format": "raw",
        "topic": "a/b", "ttl": 60
    });
    assert_created(&create(&client, device_id, &first), "PENDING");
    let second = json!({"message_id": "m-2", "message": "plain", "topic_full_name": "x/y", "ttl": 0});
    assert_created(&create(&client, device_id, &second), "FAILED");

    let shown = show(&client, device_id, "m-1");
    assert_eq!(shown.status, 200, "{}", shown.text());
    let m1 = shown.json();
    for (field, expected) in [
        ("message_id", json!("m-1")),
        ("name", json!("cfg")),
        ("message", json!({"x": [1, "y"]})),
        ("encoding", json!("none")),
        ("payload_format", json!("raw")),
        ("topic", json!("a/b")),
        ("status", json!("PENDING")),
        ("error_info", Value::Null),
        ("finished_time", Value::Null),
        ("ttl", json!(60)),
    ] {
        assert_eq!(m1[field], expected, "{field}: {m1}");
    }
    assert!(m1.get("topic_full_name").is_some() && m1.get("properties").is_some(), "every field: {m1}");
    assert!(is_t1(&m1["created_time"]), "{m1}");

    let m2 = show(&client, device_id, "m-2").json();
    assert_eq!(m2["topic_full_name"], "x/y", "{m2}");
    assert_eq!(m2["payload_format"], "standard", "the default: {m2}");
    assert_eq!(m2["ttl"], 0, "{m2}");
    assert_eq!(m2["error_info"]["error_code"], "IOTDA.014016", "{m2}");
    assert!(m2["error_info"]["error_msg"].is_string(), "{m2}");

    let default_ttl = assert_created(&create(&client, device_id, &json!({"message": 1})), "PENDING");
    assert_eq!(show(&client, device_id, &default_ttl).json()["ttl"], 1440, "the default ttl");
    let listed = list(&client, device_id);
    assert_eq!(ids_of(&listed), ["m-1", "m-2", default_ttl.as_str()], "oldest first");
    assert_eq!(listed[0], m1, "List and Show give the same object");
}

#[test]
fn unknown_messages_devices_and_other_projects_get_404() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    assert_created(&create(&client, "meter_n1", &json!({"message_id": "m-1", "message": "x"})), "PENDING");

    assert_error(&show(&client, "meter_n1", "m-404"), 404, "IOTDA.000404");
    assert_error(&show(&client, "meter_nobody", "m-1"), 404, "IOTDA.014000");
    assert_error(&client.get("devices/meter_nobody/messages"), 404, "IOTDA.014000");
    assert_error(&create(&client, "meter_nobody", &json!({"message": "x"})), 404, "IOTDA.014000");

    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    assert_eq!(show(&project_b, "meter_n1", "m-1").status, 404, "another project cannot read it");
    assert_eq!(project_b.get("devices/meter_n1/messages").status, 404, "nor list it");
    assert_eq!(create(&project_b, "meter_n1", &json!({"message": "x"})).status, 404, "nor send one");
    assert_eq!(ids_of(&list(&client, "meter_n1")), ["m-1"], "project B left no message");
}

#[test]
fn invalid_requests_are_400_naming_the_field() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let big = "x".repeat(256 * 1024 + 1);
    let cases = [
        ("message", json!({"name": "no message"})),
        ("message", json!({"message": null})),
        ("message", json!({"message": big})),
        ("message_id", json!({"message": "x", "message_id": "m".repeat(129)})),
        ("message_id", json!({"message": "x", "message_id": "has space"})),
        ("message_id", json!({"message": "x", "message_id": "a/b"})),
        ("message_id", json!({"message": "x", "message_id": ""})),
        ("name", json!({"message": "x", "name": "n".repeat(129)})),
        ("encoding", json!({"message": "x", "encoding": "gzip"})),
        ("message", json!({"message": "AP8B/g", "encoding": "base64"})),
        ("message", json!({"message": "!!!!", "encoding": "base64"})),
        ("message", json!({"message": {"a": 1}, "encoding": "base64"})),
        ("payload_format", json!({"message": "x", "payload_format": "binary"})),
        ("topic", json!({"message": "x", "topic": "a", "topic_full_name": "b"})),
        ("topic", json!({"message": "x", "topic": "a/+"})),
        ("topic", json!({"message": "x", "topic": "a/#"})),
        ("topic_full_name", json!({"message": "x", "topic_full_name": "a/+/b"})),
        ("topic_full_name", json!({"message": "x", "topic_full_name": "#"})),
        ("ttl", json!({"message": "x", "ttl": 7})),
        ("ttl", json!({"message": "x", "ttl": -5})),
        ("ttl", json!({"message": "x", "ttl": 1445})),
        ("ttl", json!({"message": "x", "ttl": 2.5})),
        ("ttl", json!({"message": "x", "ttl": "5"})),
    ];
    for (field, body) in &cases {
        let case = body.to_string();
        let case = &case[..case.len().min(120)];
        assert_invalid(&create(&client, "meter_n1", body), field, case);
    }
    assert_error(&client.call("POST", "devices/meter_n1/messages", b"{\"message\": "), 400, "IOTDA.000008");
    assert!(list(&client, "meter_n1").is_empty(), "no refused message was kept");

    let longest = "x".repeat(256 * 1024 - 2); // its JSON text (with the quotes) is exactly 256 KB
    let boundaries = [
        json!({"message": longest, "ttl": 1440}),
        json!({"message": "x", "message_id": "m".repeat(128), "name": "n".repeat(128), "ttl": 5}),
        json!({"message": "x", "message_id": "Az09_-", "ttl": 0}),
    ];
    for body in &boundaries {
        let response = create(&client, "meter_n1", body);
        assert_eq!(response.status, 201, "the limits themselves are allowed: {}", response.text());
    }
    let over = json!({"message": "x".repeat(256 * 1024 - 1)});
    assert_invalid(&create(&client, "meter_n1", &over), "message", "a JSON text of 256 KB + 1");
}

#[test]
fn a_duplicate_message_id_is_refused() {
    let engine = engine_with_devices(&NODES[..2]);
    let client = engine.client_a();
    let devices = device_ids(&NODES[..2]);
    assert_created(&create(&client, &devices[0], &json!({"message_id": "same", "message": 1})), "PENDING");
    let duplicate = create(&client, &devices[0], &json!({"message_id": "same", "message": 2}));
    assert_invalid(&duplicate, "message_id", "a duplicate of a kept message");
    assert_eq!(show(&client, &devices[0], "same").json()["message"], 1, "the first one stays");
    assert_created(&create(&client, &devices[1], &json!({"message_id": "same", "message": 3})), "PENDING");
}

#[test]
fn metrics_count_message_statuses_and_pending_messages_per_shard() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let devices = device_ids(&NODES);
    let before = scrape(&engine);
    for shard in 0..SHARDS {
        assert_eq!(pending_gauge(&before, shard), 0, "nothing pending on shard {shard} yet");
    }
    let mut pending_per_shard = [0u64; SHARDS];
    let mut ids = Vec::new();
    for device_id in &devices {
        for n in 0..2 {
            ids.push(assert_created(&create(&client, device_id, &json!({"message": n})), "PENDING"));
            pending_per_shard[protocol::routing::home_shard(device_id, SHARDS)] += 1;
        }
    }
    assert_created(&create(&client, &devices[0], &json!({"message": "x", "ttl": 0})), "FAILED");
    let pending_count = ids.len() as u64;

    let queued = scrape(&engine);
    let delta = |text: &str, status: &str| messages_total(text, status) - messages_total(&before, status);
    assert_eq!(delta(&queued, "accepted"), pending_count + 1, "every 201 is accepted");
    assert_eq!(delta(&queued, "pending"), pending_count, "the offline ones are pending");
    assert_eq!(delta(&queued, "failed"), 1, "ttl 0 to an offline device failed");
    assert_eq!(delta(&queued, "delivered"), 0);
    for (shard, expected) in pending_per_shard.iter().enumerate() {
        assert_eq!(pending_gauge(&queued, shard), *expected, "pending on shard {shard}");
    }

    let mut sessions = Vec::new();
    for device_id in &devices {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        device.publishes(2, WAIT);
        sessions.push(device);
    }
    for (n, id) in ids.iter().enumerate() {
        wait_for_status(&client, &devices[n / 2], id, "DELIVERED");
    }
    let delivered = scrape(&engine);
    assert_eq!(delta(&delivered, "delivered"), pending_count, "every pending message was delivered");
    for shard in 0..SHARDS {
        assert_eq!(pending_gauge(&delivered, shard), 0, "nothing pending on shard {shard} any more");
    }

    for n in 0..20 {
        assert_created(
            &create(&client, "meter_n1", &json!({"message": n, "topic": "unsubscribed"})),
            "FAILED",
        );
    }
    let evicted = scrape(&engine);
    // meter_n1 (devices[0]) kept 2 delivered messages and the failed one: 20 more replace them.
    assert_eq!(delta(&evicted, "evicted"), 3, "the history's oldest went");
}
