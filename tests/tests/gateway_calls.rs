//! A sub-device's commands and property calls go through its gateway (spec §7.1): published on
//! the gateway's topics with `object_device_id`, completed by the gateway's answer on its own
//! response topic — with sub-devices and gateway on different shards, and 200 concurrent
//! commands to 200 sub-devices each answered once, to its own caller; batch tasks over
//! sub-devices the same way.

use std::thread;
use std::time::Duration;

use mqttbytes::QoS;
use protocol::routing::home_shard;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{Engine, EngineOptions};

const SECRET: &str = "gateway-secret-1";
const SUB_DEVICES: usize = 1000;
const CONCURRENT: usize = 200;

fn register(client: &tests::Client) {
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "method": "RW"}],
            "commands": [{"command_name": "OPEN", "paras": [{"para_name": "n", "data_type": "int"}]}]}]
    });
    assert_eq!(client.post("products", &product).status, 201);
    let gateway = json!({"node_id": "gw", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &gateway).status, 201);
    for n in 0..SUB_DEVICES {
        let body = json!({"node_id": format!("s{n}"), "product_id": "meter", "gateway_id": "meter_gw"});
        let added = client.post("devices", &body);
        assert_eq!(added.status, 201, "{}", added.text());
    }
}

/// The gateway: answers every call with the `object_device_id` it named and the request, until
/// `count` calls were answered or nothing comes for a while. Returns what it was sent.
fn serve_gateway(mut gateway: MqttDevice, count: usize) -> Vec<Value> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let Some(publish) = gateway.next_publish(Duration::from_secs(15)) else { break };
        let body: Value = serde_json::from_slice(&publish.payload).unwrap();
        let request_id = request_id_of(&publish.topic).to_owned();
        let answer_topic = publish.topic.replacen("/request_id=", "/response/request_id=", 1);
        let answer = if publish.topic.contains("/properties/get/") {
            json!({"object_device_id": body["object_device_id"], "services": [{"service_id": "water", "properties": {"level": 3}}]})
        } else {
            json!({"result_code": 0, "paras": {"for": body["object_device_id"], "request": request_id}})
        };
        gateway.publish(&answer_topic, answer.to_string().as_bytes(), QoS::AtMostOnce, 0);
        seen.push(json!({"topic": publish.topic, "body": body}));
    }
    seen
}

#[test]
fn sub_device_calls_go_through_the_gateway_across_shards() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    register(&client);
    let gateway_home = home_shard("meter_gw", 2);
    let elsewhere = (0..SUB_DEVICES).find(|n| home_shard(&format!("meter_s{n}"), 2) != gateway_home).unwrap();
    let same = (0..SUB_DEVICES).find(|n| home_shard(&format!("meter_s{n}"), 2) == gateway_home).unwrap();

    // The gateway is offline: its sub-devices are unreachable.
    let offline = client.post(&format!("devices/meter_s{elsewhere}/commands"), &json!({"paras": {"n": 1}}));
    tests::assert_error(&offline, 403, "IOTDA.014016");

    let gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    let served = thread::spawn(move || serve_gateway(gateway, 3 + CONCURRENT));
    for n in [elsewhere, same] {
        let answer = client.post(
            &format!("devices/meter_s{n}/commands"),
            &json!({"command_name": "OPEN", "paras": {"n": 7}}),
        );
        assert_eq!(answer.status, 200, "{}", answer.text());
        assert_eq!(answer.json()["response"]["paras"]["for"], format!("meter_s{n}"));
    }
    let got = client.get(&format!("devices/meter_s{elsewhere}/properties?service_id=water"));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.json()["response"]["services"][0]["properties"]["level"], 3, "{}", got.text());

    // 200 concurrent commands to 200 different sub-devices.
    let calls: Vec<_> = (0..CONCURRENT)
        .map(|n| {
            let client = client.clone();
            thread::spawn(move || {
                let answer =
                    client.post(&format!("devices/meter_s{n}/commands"), &json!({"paras": {"n": n}}));
                assert_eq!(answer.status, 200, "sub-device {n}: {}", answer.text());
                let body = answer.json();
                assert_eq!(body["response"]["paras"]["for"], format!("meter_s{n}"), "{body}");
                assert_eq!(body["response"]["paras"]["request"], body["command_id"], "{body}");
            })
        })
        .collect();
    for call in calls {
        call.join().unwrap();
    }
    let seen = served.join().unwrap();
    assert_eq!(seen.len(), 3 + CONCURRENT);
    for sent in &seen {
        let topic = sent["topic"].as_str().unwrap();
        assert!(topic.starts_with("$oc/devices/meter_gw/sys/"), "not on the gateway's topics: {topic}");
        assert!(sent["body"]["object_device_id"].as_str().unwrap().starts_with("meter_s"), "{sent}");
    }
    let mut targets: Vec<&str> =
        seen[3..].iter().map(|s| s["body"]["object_device_id"].as_str().unwrap()).collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets.len(), CONCURRENT, "each sub-device got its command exactly once");
}

fn status(client: &tests::Client, device_id: &str) -> Value {
    client.get(&format!("devices/{device_id}")).json()["status"].clone()
}

/// Sub-device statuses and batch property reports from a gateway land on each sub-device's
/// home shard (only for its own children), and the gateway going offline takes them offline.
#[test]
fn a_gateway_reports_its_sub_devices_statuses_and_properties() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    register(&client);
    let other = json!({"node_id": "gw2", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &other).status, 201);
    let foreign = json!({"node_id": "x1", "product_id": "meter", "gateway_id": "meter_gw2"});
    assert_eq!(client.post("devices", &foreign).status, 201);
    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);

    let statuses = json!({"services": [{"service_id": "$sub_device_manager", "event_type": "sub_device_update_status",
        "paras": {"device_statuses": [
            {"device_id": "meter_s0", "status": "ONLINE"}, {"device_id": "meter_s1", "status": "ONLINE"},
            {"device_id": "meter_s2", "status": "ONLINE"}, {"device_id": "meter_x1", "status": "ONLINE"},
            {"device_id": "meter_nobody", "status": "ONLINE"}, {"device_id": "meter_s3", "status": "ASLEEP"}]}}]});
    gateway.publish(
        "$oc/devices/meter_gw/sys/events/up",
        statuses.to_string().as_bytes(),
        QoS::AtMostOnce,
        0,
    );
    let response = gateway.next_publish(Duration::from_secs(10)).expect("the status response");
    assert_eq!(response.topic, "$oc/devices/meter_gw/sys/events/down");
    let response: Value = serde_json::from_slice(&response.payload).unwrap();
    let event = &response["services"][0];
    assert_eq!(event["event_type"], "sub_device_update_status_response", "{response}");
    let ids = |list: &Value| -> Vec<String> {
        list.as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(ids(&event["paras"]["successful_devices"]), ["meter_s0", "meter_s1", "meter_s2"]);
    assert_eq!(ids(&event["paras"]["failed_devices"]), ["meter_x1", "meter_nobody", "meter_s3"]);
    assert_eq!(event["paras"]["failed_devices"][0]["error_code"], "IOTDA.000021");
    assert_eq!(event["paras"]["failed_devices"][1]["error_code"], "IOTDA.014000");
    for n in 0..3 {
        assert_eq!(status(&client, &format!("meter_s{n}")), "ONLINE");
    }
    assert_eq!(status(&client, "meter_x1"), "INACTIVE", "another gateway's child was changed");

    // The batch report: into each child's shadow; another gateway's child is ignored.
    let report = json!({"devices": [
        {"device_id": "meter_s0", "services": [{"service_id": "water", "properties": {"level": 10}}]},
        {"device_id": "meter_s1", "services": [{"service_id": "water", "properties": {"level": 11}}]},
        {"device_id": "meter_x1", "services": [{"service_id": "water", "properties": {"level": 99}}]}]});
    gateway.publish(
        "$oc/devices/meter_gw/sys/gateway/sub_devices/properties/report",
        report.to_string().as_bytes(),
        QoS::AtLeastOnce,
        5,
    );
    let level = |device: &str| {
        client.get(&format!("devices/{device}/shadow")).json()["shadow"][0]["reported"]["properties"]["level"]
            .clone()
    };
    assert_eq!(level("meter_s0"), 10);
    assert_eq!(level("meter_s1"), 11);
    assert_eq!(level("meter_x1"), Value::Null, "another gateway's child's shadow was written");

    // Only the first 100 sub-devices of one batch report count.
    let entries: Vec<Value> = (0..=100)
        .map(|n| json!({"device_id": format!("meter_s{n}"), "services": [{"service_id": "water", "properties": {"level": 50}}]}))
        .collect();
    let report = json!({"devices": entries});
    gateway.publish(
        "$oc/devices/meter_gw/sys/gateway/sub_devices/properties/report",
        report.to_string().as_bytes(),
        QoS::AtLeastOnce,
        6,
    );
    assert_eq!(level("meter_s99"), 50);
    assert_eq!(level("meter_s100"), Value::Null, "the 101st entry of a batch report was applied");

    // The gateway reads a sub-device's shadow through its own topic; not another's child's.
    let mut shadow_get = |request_id: &str, object_device_id: &str| {
        let body = json!({"object_device_id": object_device_id, "service_id": "water"});
        let topic = format!("$oc/devices/meter_gw/sys/shadow/get/request_id={request_id}");
        gateway.publish(&topic, body.to_string().as_bytes(), QoS::AtMostOnce, 0);
    };
    shadow_get("r1", "meter_s0");
    shadow_get("r2", "meter_x1");
    shadow_get("r3", "meter_gw");
    shadow_get("r4", ""); // the official SDK's way of leaving it unset
    for expected in ["r1", "r3", "r4"] {
        let answer = gateway.next_publish(Duration::from_secs(10)).expect("a shadow answer");
        assert_eq!(
            answer.topic,
            format!("$oc/devices/meter_gw/sys/shadow/get/response/request_id={expected}")
        );
        let body: Value = serde_json::from_slice(&answer.payload).unwrap();
        if expected == "r1" {
            assert_eq!(body["object_device_id"], "meter_s0", "{body}");
            assert_eq!(body["shadow"][0]["reported"]["properties"]["level"], 50, "the sub-device's: {body}");
        } else {
            assert!(
                body["shadow"][0]["reported"].get("properties").is_none_or(|p| p.get("level").is_none()),
                "{body}"
            );
        }
    }

    // A new session of the gateway takes over (it does not report the statuses again); when
    // that session ends, the sub-devices go OFFLINE all the same.
    let mut again = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    assert!(gateway.is_closed_within(Duration::from_secs(5)));
    assert_eq!(status(&client, "meter_s0"), "ONLINE", "a takeover is not the gateway going offline");
    again.disconnect();
    for n in 0..3 {
        tests::await_status(&client, &format!("meter_s{n}"), "OFFLINE");
    }
    // A sub-device is not frozen (its gateway is).
    tests::assert_invalid(&client.post("devices/meter_s0/freeze", &json!(null)), "device_id");
}

/// A gateway adds and deletes its sub-devices by event (the registry follows, every REST rule
/// holds), and is told when the application adds or deletes one of them.
#[test]
fn a_gateway_manages_its_sub_devices_and_hears_of_the_applications_changes() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let product = json!({"product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT", "service_capabilities": []});
    assert_eq!(client.post("products", &product).status, 201);
    for node in ["gw", "gw2"] {
        let body = json!({"node_id": node, "product_id": "meter", "auth_info": {"secret": SECRET}});
        assert_eq!(client.post("devices", &body).status, 201);
    }
    assert_eq!(
        client
            .post("devices", &json!({"node_id": "x1", "product_id": "meter", "gateway_id": "meter_gw2"}))
            .status,
        201
    );
    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    let event = |gateway: &mut MqttDevice, event_type: &str, paras: Value| -> Value {
        let body = json!({"services": [{"service_id": "$sub_device_manager", "event_type": event_type, "event_id": "e-1", "paras": paras}]});
        gateway.publish(
            "$oc/devices/meter_gw/sys/events/up",
            body.to_string().as_bytes(),
            QoS::AtMostOnce,
            0,
        );
        let down = gateway.next_publish(Duration::from_secs(10)).expect("the response");
        assert_eq!(down.topic, "$oc/devices/meter_gw/sys/events/down");
        serde_json::from_slice::<Value>(&down.payload).unwrap()["services"][0].clone()
    };

    let added = event(
        &mut gateway,
        "add_sub_device_request",
        json!({"devices": [
        {"node_id": "new1", "product_id": "meter", "name": "pump", "parent_device_id": "meter_gw"},
        {"node_id": "bad", "product_id": "no_such_product"}]}),
    );
    assert_eq!(added["event_type"], "add_sub_device_response", "{added}");
    assert_eq!(added["event_id"], "e-1");
    assert_eq!(added["paras"]["successful_devices"][0]["device_id"], "meter_new1", "{added}");
    assert_eq!(added["paras"]["failed_devices"][0]["node_id"], "bad", "{added}");
    assert!(added["paras"]["failed_devices"][0]["error_code"].is_string(), "{added}");
    let shown = client.get("devices/meter_new1").json();
    assert_eq!((&shown["gateway_id"], &shown["device_name"]), (&json!("meter_gw"), &json!("pump")));

    let deleted = event(
        &mut gateway,
        "delete_sub_device_request",
        json!({"devices": ["meter_new1", "meter_x1", "meter_nobody"]}),
    );
    assert_eq!(deleted["event_type"], "delete_sub_device_response", "{deleted}");
    assert_eq!(deleted["paras"]["successful_devices"], json!(["meter_new1"]), "{deleted}");
    let failed: Vec<&str> = deleted["paras"]["failed_devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["meter_x1", "meter_nobody"]);
    assert_eq!(client.get("devices/meter_new1").status, 404);
    assert_eq!(client.get("devices/meter_x1").status, 200, "another gateway's child was deleted");

    // The application adds and deletes a sub-device: the gateway is told.
    assert_eq!(
        client
            .post("devices", &json!({"node_id": "app1", "product_id": "meter", "gateway_id": "meter_gw"}))
            .status,
        201
    );
    let notify = gateway.next_publish(Duration::from_secs(10)).expect("an add notify");
    let notify: Value = serde_json::from_slice(&notify.payload).unwrap();
    assert_eq!(notify["services"][0]["event_type"], "add_sub_device_notify", "{notify}");
    assert_eq!(notify["services"][0]["paras"]["devices"][0]["device_id"], "meter_app1");
    assert_eq!(notify["services"][0]["paras"]["devices"][0]["parent_device_id"], "meter_gw");
    assert_eq!(client.delete("devices/meter_app1").status, 204);
    let notify = gateway.next_publish(Duration::from_secs(10)).expect("a delete notify");
    let notify: Value = serde_json::from_slice(&notify.payload).unwrap();
    assert_eq!(notify["services"][0]["event_type"], "delete_sub_device_notify", "{notify}");
    assert_eq!(notify["services"][0]["paras"]["devices"][0]["device_id"], "meter_app1");
}

/// Messages to a sub-device: cached until its gateway reports it ONLINE, then published on the
/// gateway's messages/down with `object_device_id`; at once while it is ONLINE.
#[test]
fn messages_to_a_sub_device_go_out_through_its_gateway() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let product = json!({"product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT", "service_capabilities": []});
    assert_eq!(client.post("products", &product).status, 201);
    assert_eq!(
        client
            .post(
                "devices",
                &json!({"node_id": "gw", "product_id": "meter", "auth_info": {"secret": SECRET}})
            )
            .status,
        201
    );
    assert_eq!(
        client
            .post("devices", &json!({"node_id": "s0", "product_id": "meter", "gateway_id": "meter_gw"}))
            .status,
        201
    );
    let cached = client.post("devices/meter_s0/messages", &json!({"message": "first", "message_id": "m1"}));
    assert_eq!(cached.status, 201, "{}", cached.text());
    assert_eq!(cached.json()["result"]["status"], "PENDING");
    let custom = client.post("devices/meter_s0/messages", &json!({"message": "x", "topic": "alerts"}));
    tests::assert_invalid(&custom, "message");

    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    let online = json!({"services": [{"service_id": "$sub_device_manager", "event_type": "sub_device_update_status",
        "paras": {"device_statuses": [{"device_id": "meter_s0", "status": "ONLINE"}]}}]});
    gateway.publish("$oc/devices/meter_gw/sys/events/up", online.to_string().as_bytes(), QoS::AtMostOnce, 0);
    let mut received = Vec::new();
    while received.len() < 2 {
        let publish =
            gateway.next_publish(Duration::from_secs(10)).expect("the status response and the message");
        if publish.topic.ends_with("/sys/messages/down") {
            received.push(serde_json::from_slice::<Value>(&publish.payload).unwrap());
        } else {
            received.push(json!({"other": publish.topic}));
        }
    }
    let message = received.iter().find(|m| m.get("id").is_some()).expect("the cached message");
    assert_eq!(
        (&message["object_device_id"], &message["content"]),
        (&json!("meter_s0"), &json!("first")),
        "{message}"
    );
    let status = |id: &str| client.get(&format!("devices/meter_s0/messages/{id}")).json()["status"].clone();
    assert_eq!(status("m1"), "DELIVERED");

    let direct = client.post("devices/meter_s0/messages", &json!({"message": "second", "message_id": "m2"}));
    assert_eq!(direct.json()["result"]["status"], "DELIVERED", "{}", direct.text());
    let publish = gateway.next_publish(Duration::from_secs(10)).expect("the second message");
    assert_eq!(publish.topic, "$oc/devices/meter_gw/sys/messages/down");
    let body: Value = serde_json::from_slice(&publish.payload).unwrap();
    assert_eq!((&body["id"], &body["object_device_id"]), (&json!("m2"), &json!("meter_s0")));

    // The gateway goes: the sub-device goes OFFLINE, and a message without cache time fails.
    gateway.disconnect();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while client.get("devices/meter_s0").json()["status"] != "OFFLINE" {
        assert!(std::time::Instant::now() < deadline, "the sub-device stayed ONLINE");
        thread::sleep(Duration::from_millis(20));
    }
    let lost = client.post("devices/meter_s0/messages", &json!({"message": "third", "ttl": 0}));
    assert_eq!(lost.json()["result"]["status"], "FAILED", "{}", lost.text());
}

#[test]
fn batch_tasks_reach_sub_devices_through_their_gateway() {
    use tests::batch::{self, assert_failed, assert_success, create, create_commands, details, set_level};
    let engine = Engine::start(batch::options(5_000, ""));
    let client = engine.client_a();
    assert_eq!(client.post("products", &batch::water_meter()).status, 201);
    let gateway = json!({"node_id": "gw", "product_id": "meter", "auth_info": {"secret": SECRET}});
    assert_eq!(client.post("devices", &gateway).status, 201);
    let nodes = ["s0", "s1", "s2", "s3", "s4", "s5"];
    for node in nodes {
        let body = json!({"node_id": node, "product_id": "meter", "gateway_id": "meter_gw"});
        assert_eq!(client.post("devices", &body).status, 201);
    }
    let subs = batch::device_ids(&nodes);

    // The gateway is offline: every sub-device fails as offline.
    let shown = batch::wait_finished(&client, &create_commands(&client, &subs, set_level(4)));
    assert_eq!(batch::status_of(&shown), "Fail", "{shown}");
    for sub in &subs {
        assert_failed(&details(&shown)[sub], "IOTDA.014016");
    }

    // Online, with its sub-devices reported ONLINE: commands are answered by the gateway for
    // each sub-device, and messages go out on the gateway's topic.
    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", SECRET);
    let statuses: Vec<Value> = subs.iter().map(|id| json!({"device_id": id, "status": "ONLINE"})).collect();
    let online = json!({"services": [{"service_id": "$sub_device_manager", "event_type": "sub_device_update_status",
        "paras": {"device_statuses": statuses}}]});
    gateway.publish("$oc/devices/meter_gw/sys/events/up", online.to_string().as_bytes(), QoS::AtMostOnce, 0);
    let response = gateway.next_publish(Duration::from_secs(10)).expect("the status response");
    assert!(response.topic.ends_with("/sys/events/down"), "{}", response.topic);
    for sub in &subs {
        tests::await_status(&client, sub, "ONLINE");
    }
    let expected = subs.len() * 2;
    let served = thread::spawn(move || {
        let mut seen = Vec::new();
        while seen.len() < expected {
            let Some(publish) = gateway.next_publish(Duration::from_secs(15)) else { break };
            let body: Value = serde_json::from_slice(&publish.payload).unwrap();
            if publish.topic.contains("/sys/commands/request_id=") {
                let answer_topic = publish.topic.replacen("/request_id=", "/response/request_id=", 1);
                let answer = json!({"result_code": 0, "paras": {"for": body["object_device_id"]}});
                gateway.publish(&answer_topic, answer.to_string().as_bytes(), QoS::AtMostOnce, 0);
            }
            seen.push(json!({"topic": publish.topic, "body": body}));
        }
        seen
    });
    let shown = batch::wait_finished(&client, &create_commands(&client, &subs, set_level(5)));
    assert_eq!(batch::status_of(&shown), "Success", "{shown}");
    for sub in &subs {
        assert_success(&details(&shown)[sub], &json!({"result_code": 0, "paras": {"for": sub}}));
    }
    let messages = json!({"task_name": "m", "task_type": "createMessages", "targets": subs,
        "document": {"message": "hello"}});
    let shown = batch::wait_finished(&client, &create(&client, &messages));
    assert_eq!(batch::status_of(&shown), "Success", "{shown}");
    for sub in &subs {
        let detail = &details(&shown)[sub];
        assert_eq!(
            (&detail["status"], &detail["output"]),
            (&json!("Success"), &json!("DELIVERED")),
            "{detail}"
        );
    }
    let seen = served.join().unwrap();
    assert_eq!(seen.len(), expected, "a command and a message per sub-device: {seen:?}");
    for kind in ["/sys/commands/request_id=", "/sys/messages/down"] {
        let mut reached: Vec<&str> = seen
            .iter()
            .filter(|sent| sent["topic"].as_str().unwrap().contains(kind))
            .map(|sent| sent["body"]["object_device_id"].as_str().unwrap())
            .collect();
        reached.sort();
        assert_eq!(
            reached,
            subs.iter().map(String::as_str).collect::<Vec<_>>(),
            "{kind} once per sub-device"
        );
    }
    assert!(seen.iter().all(|sent| sent["topic"].as_str().unwrap().starts_with("$oc/devices/meter_gw/sys/")));
}
