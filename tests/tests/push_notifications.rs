//! Push notifications through the rule engine (spec §2.10): routing rules and their
//! HTTP_FORWARDING actions are managed over REST; an active rule pushes its subject's events
//! (message status, device status, property and message reports) as `POST {url}` with the IoTDA
//! envelope and the action's token; pushes to a receiver that is down are kept and retried until
//! they arrive, in order.

use std::thread;
use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::receiver::{free_port, Push, Receiver};
use tests::{assert_error, http_request, Auth, Client, Engine, EngineOptions, PROJECT_B};

use tests::messages::{device_ids, engine_with_devices, SECRET, SHARDS, WAIT};

const TOKEN: &str = "abc123";
const NODES: [&str; 4] = ["n1", "n2", "n3", "n4"];

fn rule_body(resource: &str, event: &str) -> Value {
    json!({"rule_name": "r", "subject": {"resource": resource, "event": event}, "app_type": "GLOBAL"})
}

fn action_body(rule_id: &str, url: &str) -> Value {
    json!({
        "rule_id": rule_id, "channel": "HTTP_FORWARDING",
        "channel_detail": {"http_forwarding": {"url": url, "token": TOKEN}}
    })
}

fn create_rule(client: &Client, resource: &str, event: &str) -> String {
    let response = client.post("routing-rule/rules", &rule_body(resource, event));
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()["rule_id"].as_str().expect("a rule_id").to_owned()
}

fn create_action(client: &Client, rule_id: &str, url: &str) -> String {
    let response = client.post("routing-rule/actions", &action_body(rule_id, url));
    assert_eq!(response.status, 201, "{}", response.text());
    response.json()["action_id"].as_str().expect("an action_id").to_owned()
}

fn activate(client: &Client, rule_id: &str) {
    let response = client.put(&format!("routing-rule/rules/{rule_id}"), &json!({"active": true}));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["active"], true, "{}", response.text());
}

/// An active rule of `resource:event` pushing to `url`.
fn active_rule(client: &Client, resource: &str, event: &str, url: &str) -> String {
    let rule_id = create_rule(client, resource, event);
    create_action(client, &rule_id, url);
    activate(client, &rule_id);
    rule_id
}

fn create_message(client: &Client, device_id: &str, body: &Value, status: &str) -> String {
    let response = client.post(&format!("devices/{device_id}/messages"), body);
    assert_eq!(response.status, 201, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["result"]["status"], status, "{answer}");
    answer["message_id"].as_str().expect("a message_id").to_owned()
}

fn is_t1(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes.iter().enumerate().all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit())
}

/// Asserts the request line, headers and envelope of a push; returns its JSON body.
fn envelope(push: &Push, resource: &str, event: &str) -> Value {
    assert_eq!((push.method.as_str(), push.target.as_str()), ("POST", "/push"), "the action's URL");
    let content_type = push.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "Content-Type: {content_type:?}");
    assert_eq!(push.header("x-push-token"), Some(TOKEN), "the action's token");
    let body = push.json();
    assert_eq!(body["resource"], resource, "{body}");
    assert_eq!(body["event"], event, "{body}");
    assert!(is_t1(&body["event_time"]), "event_time is T1: {body}");
    let event_time_ms = body["event_time_ms"].as_str().unwrap_or_default();
    assert!(event_time_ms.ends_with('Z') && event_time_ms.contains('.'), "event_time_ms: {body}");
    assert!(body["request_id"].as_str().is_some_and(|id| !id.is_empty()), "request_id: {body}");
    body
}

/// Asserts the header names the device `meter_{node}`; returns the notify body.
fn notify_body<'a>(body: &'a Value, device_id: &str) -> &'a Value {
    let header = &body["notify_data"]["header"];
    assert_eq!(header["device_id"], device_id, "{body}");
    assert_eq!(header["node_id"], device_id.trim_start_matches("meter_"), "{body}");
    assert_eq!(header["product_id"], "meter", "{body}");
    assert!(header["app_id"].is_string() && header["gateway_id"].is_string(), "{body}");
    assert_eq!(header["tags"], json!([]), "{body}");
    &body["notify_data"]["body"]
}

fn device_of(push: &Push) -> String {
    push.json()["notify_data"]["header"]["device_id"].as_str().unwrap_or_default().to_owned()
}

/// `(message_id, status)` of each message-status push about `device_id`, in arrival order.
fn statuses_of(pushes: &[Push], device_id: &str) -> Vec<(String, String)> {
    pushes
        .iter()
        .filter(|push| device_of(push) == device_id)
        .map(|push| {
            let body = &push.json()["notify_data"]["body"];
            (
                body["message_id"].as_str().unwrap_or_default().into(),
                body["status"].as_str().unwrap_or_default().into(),
            )
        })
        .collect()
}

fn scrape(engine: &Engine) -> String {
    let headers = [("Host".to_owned(), engine.http.to_string())];
    let response = http_request(engine.http, "GET", "/metrics", &headers, b"");
    assert_eq!(response.status, 200, "{}", response.text());
    response.text()
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{name} is not a count: {e}"))
}

#[test]
fn rules_and_actions_are_created_listed_activated_and_deleted() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let created = client.post("routing-rule/rules", &rule_body("device.message.status", "update"));
    assert_eq!(created.status, 201, "{}", created.text());
    let rule = created.json();
    let rule_id = rule["rule_id"].as_str().expect("a rule_id").to_owned();
    assert_eq!(rule["active"], false, "a new rule starts inactive: {rule}");
    assert_eq!(rule["subject"], json!({"resource": "device.message.status", "event": "update"}), "{rule}");

    let action = client.post("routing-rule/actions", &action_body(&rule_id, "http://127.0.0.1:9/push"));
    assert_eq!(action.status, 201, "{}", action.text());
    let action_id = action.json()["action_id"].as_str().expect("an action_id").to_owned();
    let actions = client.get(&format!("routing-rule/actions?rule_id={rule_id}")).json();
    assert_eq!(actions["count"], 1, "{actions}");
    assert_eq!(actions["actions"][0]["action_id"], action_id.as_str(), "{actions}");
    assert_eq!(actions["actions"][0]["rule_id"], rule_id.as_str(), "{actions}");

    activate(&client, &rule_id);
    let shown = client.get(&format!("routing-rule/rules/{rule_id}"));
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert_eq!(shown.json()["active"], true, "{}", shown.text());
    let rules = client.get("routing-rule/rules").json();
    assert_eq!(rules["count"], 1, "{rules}");
    assert_eq!(rules["rules"][0]["rule_id"], rule_id.as_str(), "{rules}");
    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    assert_eq!(project_b.get("routing-rule/rules").json()["count"], 0, "rules are per project");

    assert_eq!(client.delete(&format!("routing-rule/rules/{rule_id}")).status, 204);
    assert_eq!(client.get(&format!("routing-rule/rules/{rule_id}")).status, 404, "the rule is gone");
    assert_eq!(client.get("routing-rule/rules").json()["count"], 0);
    assert_eq!(client.get("routing-rule/actions").json()["count"], 0, "its actions went with it");
    assert_eq!(client.get(&format!("routing-rule/actions/{action_id}")).status, 404, "the action is gone");
}

#[test]
fn invalid_rules_and_actions_are_refused() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    assert_error(
        &client.post("routing-rule/rules", &rule_body("device.weather", "update")),
        400,
        "IOTDA.000006",
    );
    assert_error(
        &client.post("routing-rule/rules", &rule_body("device.status", "create")),
        400,
        "IOTDA.000006",
    );
    let mut filtered = rule_body("device.status", "update");
    filtered["where"] = json!("status = 'ONLINE'");
    assert_error(&client.post("routing-rule/rules", &filtered), 400, "IOTDA.000006");
    assert_eq!(client.get("routing-rule/rules").json()["count"], 0, "no refused rule was kept");

    let rule_id = create_rule(&client, "device.status", "update");
    let https = action_body(&rule_id, "https://127.0.0.1:8443/push");
    assert_error(&client.post("routing-rule/actions", &https), 400, "IOTDA.000006");
    let mut amqp = action_body(&rule_id, "http://127.0.0.1:9/push");
    amqp["channel"] = json!("AMQP_FORWARDING");
    assert_error(&client.post("routing-rule/actions", &amqp), 400, "IOTDA.000006");
    let unknown =
        client.post("routing-rule/actions", &action_body("no-such-rule", "http://127.0.0.1:9/push"));
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert_eq!(client.get("routing-rule/actions").json()["count"], 0, "no refused action was kept");
}

#[test]
fn only_an_active_rule_pushes() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let receiver = Receiver::start();
    let rule_id = create_rule(&client, "device.message.status", "update");
    create_action(&client, &rule_id, &receiver.url());
    let unseen = create_message(&client, "meter_n1", &json!({"message": "before"}), "PENDING");

    activate(&client, &rule_id);
    let seen = create_message(&client, "meter_n1", &json!({"message": "after"}), "PENDING");
    let pushes = receiver.wait_for(1, WAIT);
    assert_eq!(
        statuses_of(&pushes, "meter_n1")[0],
        (seen, "PENDING".to_owned()),
        "the first push is about the message created after activation, not {unseen}"
    );
}

#[test]
fn a_message_to_an_offline_device_pushes_pending_then_delivered() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let receiver = Receiver::start();
    active_rule(&client, "device.message.status", "update", &receiver.url());
    let devices = device_ids(&NODES);
    let ids: Vec<String> = devices
        .iter()
        .map(|device_id| {
            create_message(&client, device_id, &json!({"message": "m", "name": "nm"}), "PENDING")
        })
        .collect();
    let _sessions: Vec<MqttDevice> = devices
        .iter()
        .map(|device_id| {
            let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
            device.next_publish(WAIT).expect("the pending message");
            device
        })
        .collect();

    let pushes = receiver.wait_for(2 * devices.len(), WAIT);
    assert_eq!(pushes.len(), 2 * devices.len(), "one push per status change");
    for (device_id, id) in devices.iter().zip(&ids) {
        let expected = vec![(id.clone(), "PENDING".to_owned()), (id.clone(), "DELIVERED".to_owned())];
        assert_eq!(statuses_of(&pushes, device_id), expected, "{device_id}: PENDING, then DELIVERED");
    }
    for push in &pushes {
        let envelope = envelope(push, "device.message.status", "update");
        let body = notify_body(&envelope, &device_of(push));
        assert_eq!(body["name"], "nm", "{envelope}");
        assert!(body.get("topic").is_some(), "the body names the topic: {envelope}");
        assert!(is_t1(&body["timestamp"]), "timestamp is T1: {envelope}");
        assert!(body.get("error_info").is_none_or(Value::is_null), "no error: {envelope}");
    }
}

#[test]
fn a_failed_message_pushes_failed_with_its_error() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let receiver = Receiver::start();
    active_rule(&client, "device.message.status", "update", &receiver.url());
    let id = create_message(&client, "meter_n1", &json!({"message": "m", "ttl": 0}), "FAILED");

    let pushes = receiver.wait_for(1, WAIT);
    let envelope = envelope(&pushes[0], "device.message.status", "update");
    let body = notify_body(&envelope, "meter_n1");
    assert_eq!((body["message_id"].as_str(), body["status"].as_str()), (Some(id.as_str()), Some("FAILED")));
    assert_eq!(body["error_info"]["error_code"], "IOTDA.014016", "{envelope}");
}

#[test]
fn device_status_pushes_online_then_offline() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let receiver = Receiver::start();
    active_rule(&client, "device.status", "update", &receiver.url());
    let devices = device_ids(&NODES);
    for device_id in &devices {
        MqttDevice::login(engine.mqtt, device_id, SECRET).disconnect();
    }

    let pushes = receiver.wait_for(2 * devices.len(), WAIT);
    for device_id in &devices {
        let statuses: Vec<Value> = pushes
            .iter()
            .filter(|push| device_of(push) == *device_id)
            .map(|push| {
                let envelope = envelope(push, "device.status", "update");
                let body = notify_body(&envelope, device_id).clone();
                assert!(is_t1(&body["status_update_time"]), "status_update_time: {envelope}");
                body["status"].clone()
            })
            .collect();
        assert_eq!(statuses, [json!("ONLINE"), json!("OFFLINE")], "{device_id}: login, then disconnect");
    }
}

/// What the shadow accepted is pushed: values that do not conform to the product model were
/// dropped, so they are not announced, and a report with nothing accepted pushes nothing.
#[test]
fn property_reports_are_pushed_with_the_values_the_shadow_accepted() {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..Default::default() });
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water", "properties": [
            {"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RE"},
            {"property_name": "state", "data_type": "string", "method": "RE"}
        ]}]
    });
    tests::register_devices(&client, &product, &NODES, SECRET);
    let receiver = Receiver::start();
    active_rule(&client, "device.property", "report", &receiver.url());
    let devices = device_ids(&NODES);
    let mut accepted = Vec::new();
    for (n, device_id) in devices.iter().enumerate() {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let topic = format!("$oc/devices/{device_id}/sys/properties/report");
        let nothing_valid = json!({"services": [{"service_id": "water", "properties": {"level": 101}}]});
        device.publish(&topic, nothing_valid.to_string().as_bytes(), QoS::AtLeastOnce, 1);
        let reported = json!([
            {"service_id": "water", "properties": {"level": n, "state": "ON", "valve": 1}, "event_time": "20240101T000000Z"},
            {"service_id": "gas", "properties": {"ppm": 3}}
        ]);
        device.publish(&topic, json!({"services": reported}).to_string().as_bytes(), QoS::AtLeastOnce, 2);
        accepted.push(json!([
            {"service_id": "water", "properties": {"level": n, "state": "ON"}, "event_time": "20240101T000000Z"}
        ]));
    }

    let pushes = receiver.wait_for(devices.len(), WAIT);
    for (device_id, services) in devices.iter().zip(&accepted) {
        let push = pushes.iter().find(|push| device_of(push) == *device_id).expect("a push per device");
        let envelope = envelope(push, "device.property", "report");
        assert_eq!(notify_body(&envelope, device_id)["services"], *services, "as accepted: {envelope}");
    }
}

#[test]
fn message_reports_are_pushed_with_their_json_content() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let receiver = Receiver::start();
    active_rule(&client, "device.message", "report", &receiver.url());
    let devices = device_ids(&NODES);
    for (n, device_id) in devices.iter().enumerate() {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let payload = json!({"reading": n, "unit": "m3", "nested": [true, null]});
        let topic = format!("$oc/devices/{device_id}/sys/messages/up");
        device.publish(&topic, payload.to_string().as_bytes(), QoS::AtLeastOnce, 1);
    }

    let pushes = receiver.wait_for(devices.len(), WAIT);
    for (n, device_id) in devices.iter().enumerate() {
        let push = pushes.iter().find(|push| device_of(push) == *device_id).expect("a push per device");
        let envelope = envelope(push, "device.message", "report");
        let body = notify_body(&envelope, device_id);
        assert_eq!(body["topic"], format!("$oc/devices/{device_id}/sys/messages/up"), "{envelope}");
        assert_eq!(
            body["content"],
            json!({"reading": n, "unit": "m3", "nested": [true, null]}),
            "{envelope}"
        );
    }
}

#[test]
fn pushes_to_a_receiver_that_is_down_are_retried_and_all_arrive_in_order() {
    let engine = engine_with_devices(&NODES);
    let client = engine.client_a();
    let port = free_port();
    active_rule(&client, "device.message.status", "update", &format!("http://127.0.0.1:{port}/push"));
    let devices = device_ids(&NODES);
    let mut created = Vec::new();
    for device_id in &devices {
        let ids: Vec<String> =
            (0..3).map(|n| create_message(&client, device_id, &json!({"message": n}), "PENDING")).collect();
        created.push(ids);
    }

    // Wait until both shards' senders found nobody listening, then bring the receiver up.
    let deadline = Instant::now() + WAIT;
    while metric(&scrape(&engine), "ringiot_push_failed_attempts_total") < SHARDS as u64 {
        assert!(Instant::now() < deadline, "no failed push attempt while the receiver is down");
        thread::sleep(Duration::from_millis(20));
    }
    let receiver = Receiver::start_on(port);

    let total = devices.len() * 3;
    let pushes = receiver.wait_for(total, Duration::from_secs(40));
    assert_eq!(pushes.len(), total, "every push arrived once");
    for (device_id, ids) in devices.iter().zip(&created) {
        let expected: Vec<(String, String)> =
            ids.iter().map(|id| (id.clone(), "PENDING".to_owned())).collect();
        assert_eq!(statuses_of(&pushes, device_id), expected, "{device_id}: all kept, in order");
    }
    // The sender counts a push once it has read the receiver's answer, which may be a moment
    // after the receiver has the request: wait for the count, with a deadline.
    let deadline = Instant::now() + WAIT;
    let mut metrics = scrape(&engine);
    while metric(&metrics, "ringiot_push_sent_total") < total as u64 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
        metrics = scrape(&engine);
    }
    assert!(metric(&metrics, "ringiot_push_failed_attempts_total") > 0, "failed attempts were counted");
    assert!(
        metric(&metrics, "ringiot_push_sent_total") >= total as u64,
        "the {total} received pushes were counted as sent"
    );
}

#[test]
fn a_deactivated_or_deleted_rule_pushes_no_more() {
    let engine = engine_with_devices(&NODES[..1]);
    let client = engine.client_a();
    let (paused, deleted, witness) = (Receiver::start(), Receiver::start(), Receiver::start());
    let paused_rule = active_rule(&client, "device.message.status", "update", &paused.url());
    let deleted_rule = active_rule(&client, "device.message.status", "update", &deleted.url());
    create_message(&client, "meter_n1", &json!({"message": 1}), "PENDING");
    paused.wait_for(1, WAIT);
    deleted.wait_for(1, WAIT);

    let response = client.put(&format!("routing-rule/rules/{paused_rule}"), &json!({"active": false}));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["active"], false, "{}", response.text());
    assert_eq!(client.delete(&format!("routing-rule/rules/{deleted_rule}")).status, 204);
    active_rule(&client, "device.message.status", "update", &witness.url());
    let later = create_message(&client, "meter_n1", &json!({"message": 2}), "PENDING");
    assert_eq!(statuses_of(&witness.wait_for(1, WAIT), "meter_n1"), [(later, "PENDING".to_owned())]);
    assert_eq!(paused.pushes().len(), 1, "an inactive rule pushes no more");
    assert_eq!(deleted.pushes().len(), 1, "a deleted rule pushes no more");
}

#[test]
fn a_rule_sees_only_its_own_projects_events() {
    let engine = engine_with_devices(&NODES[..1]);
    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    tests::register_meter_devices(&project_b, &["b1"], SECRET);
    let (receiver_a, receiver_b) = (Receiver::start(), Receiver::start());
    active_rule(&engine.client_a(), "device.status", "update", &receiver_a.url());
    active_rule(&project_b, "device.status", "update", &receiver_b.url());

    let _device = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    assert_eq!(device_of(&receiver_a.wait_for(1, WAIT)[0]), "meter_n1");
    let _other = MqttDevice::login(engine.mqtt, "meter_b1", SECRET);
    assert_eq!(device_of(&receiver_b.wait_for(1, WAIT)[0]), "meter_b1");
    assert_eq!(receiver_a.pushes().len(), 1, "project A's rule never saw project B's device");
    assert_eq!(receiver_b.pushes().len(), 1, "project B's rule never saw project A's device");
}

#[test]
fn an_active_rule_and_its_action_survive_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: SHARDS, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    tests::register_meter_devices(&client, &NODES, SECRET);
    let receiver = Receiver::start();
    let rule_id = active_rule(&client, "device.message.status", "update", &receiver.url());
    engine.kill9();

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    let rule = client.get(&format!("routing-rule/rules/{rule_id}")).json();
    assert_eq!(rule["active"], true, "{rule}");
    assert_eq!(client.get(&format!("routing-rule/actions?rule_id={rule_id}")).json()["count"], 1);
    let devices = device_ids(&NODES);
    for device_id in &devices {
        create_message(&client, device_id, &json!({"message": "after restart"}), "PENDING");
    }
    let pushes = receiver.wait_for(devices.len(), WAIT);
    for device_id in &devices {
        assert_eq!(statuses_of(&pushes, device_id).len(), 1, "{device_id}: pushed after the restart");
    }
}

/// Pushes fire for sub-devices as for direct ones: their status as their gateway reports it
/// (and as it goes when the gateway does), their part of a batch property report, and the
/// messages the gateway sends up for them (`object_device_id`) — only for its own children.
#[test]
fn sub_device_statuses_and_reports_are_pushed() {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..Default::default() });
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water", "properties": [
            {"property_name": "level", "data_type": "int", "method": "RE"}]}]
    });
    tests::register_devices(&client, &product, &["gw"], SECRET);
    let sub = json!({"node_id": "s1", "product_id": "meter", "gateway_id": "meter_gw"});
    assert_eq!(client.post("devices", &sub).status, 201);
    let other = json!({"node_id": "other", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &other).status, 201);
    let receiver = Receiver::start();
    active_rule(&client, "device.status", "update", &receiver.url());
    active_rule(&client, "device.property", "report", &receiver.url());
    active_rule(&client, "device.message", "report", &receiver.url());
    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    let online = json!({"services": [{"service_id": "$sub_device_manager", "event_type": "sub_device_update_status",
        "paras": {"device_statuses": [{"device_id": "meter_s1", "status": "ONLINE"}]}}]});
    gateway.publish("$oc/devices/meter_gw/sys/events/up", online.to_string().as_bytes(), QoS::AtMostOnce, 0);
    assert!(gateway.next_publish(WAIT).is_some(), "the status response");
    let report = json!({"devices": [{"device_id": "meter_s1", "services": [{"service_id": "water", "properties": {"level": 4}}]}]});
    gateway.publish(
        "$oc/devices/meter_gw/sys/gateway/sub_devices/properties/report",
        report.to_string().as_bytes(),
        QoS::AtLeastOnce,
        1,
    );
    for (n, object_device_id) in ["meter_other", "meter_s1", ""].iter().enumerate() {
        let message = json!({"object_device_id": object_device_id, "content": {"n": n}});
        let topic = "$oc/devices/meter_gw/sys/messages/up";
        gateway.publish(topic, message.to_string().as_bytes(), QoS::AtLeastOnce, 2 + n as u16);
    }
    gateway.disconnect();

    // The gateway's own ONLINE and OFFLINE, the sub-device's ONLINE, report and OFFLINE; the
    // sub-device's message and the gateway's own (no object_device_id); none for meter_other,
    // which is not the gateway's child.
    receiver.wait_for(7, WAIT);
    thread::sleep(Duration::from_millis(300));
    let pushes = receiver.pushes();
    assert_eq!(pushes.len(), 7, "{:?}", pushes.iter().map(Push::json).collect::<Vec<_>>());
    assert!(
        pushes.iter().all(|push| device_of(push) != "meter_other"),
        "a push for another gateway's device"
    );
    let message_of = |device_id: &str| {
        let push = pushes
            .iter()
            .find(|push| device_of(push) == device_id && push.json()["resource"] == "device.message")
            .unwrap_or_else(|| panic!("no message push for {device_id}"));
        notify_body(&push.json(), device_id)["content"].clone()
    };
    assert_eq!(message_of("meter_s1")["content"], json!({"n": 1}));
    assert_eq!(message_of("meter_gw")["content"], json!({"n": 2}));
    let of_sub: Vec<Value> =
        pushes.iter().filter(|push| device_of(push) == "meter_s1").map(|push| push.json()).collect();
    let states: Vec<&str> = of_sub
        .iter()
        .filter(|body| body["resource"] == "device.status")
        .map(|body| body["notify_data"]["body"]["status"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(states, ["ONLINE", "OFFLINE"], "{of_sub:?}");
    let property = of_sub
        .iter()
        .find(|body| body["resource"] == "device.property")
        .expect("the sub-device's property push");
    assert_eq!(notify_body(property, "meter_s1")["services"][0]["properties"]["level"], 4, "{property}");
}
