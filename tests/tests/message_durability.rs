//! Downlink messages are durable (spec §2.7, fsync on by default): every message answered 201
//! survives kill -9 and is still delivered, in creation order, when its device logs in after
//! the restart; a DELIVERED status survives it too, so nothing is sent twice.

use std::collections::HashMap;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::{Client, Engine, EngineOptions};

const SECRET: &str = "device-secret-1";
const SHARDS: usize = 2;
const WAIT: Duration = Duration::from_secs(20);

fn options() -> EngineOptions {
    EngineOptions { shards: SHARDS, ..Default::default() }
}

/// `count` devices `meter_d{n}`, asserted to span both shards.
fn device_ids(count: usize) -> Vec<String> {
    let ids: Vec<String> = (0..count).map(|n| format!("meter_d{n}")).collect();
    let mut per_shard = [0usize; SHARDS];
    for id in &ids {
        per_shard[protocol::routing::home_shard(id, SHARDS)] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 0), "the devices must span both shards: {per_shard:?}");
    ids
}

fn register(client: &Client, devices: &[String]) {
    let nodes: Vec<&str> = devices.iter().map(|id| id.trim_start_matches("meter_")).collect();
    tests::register_meter_devices(client, &nodes, SECRET);
}

/// CreateMessage, asserting the 201 and its status; the message id.
fn create(client: &Client, device_id: &str, body: &Value, status: &str) -> String {
    let response = client.post(&format!("devices/{device_id}/messages"), body);
    assert_eq!(response.status, 201, "{}", response.text());
    let answer = response.json();
    assert_eq!(answer["result"]["status"], status, "{answer}");
    answer["message_id"].as_str().unwrap_or_else(|| panic!("no message_id: {answer}")).to_owned()
}

fn list(client: &Client, device_id: &str) -> Vec<Value> {
    let response = client.get(&format!("devices/{device_id}/messages"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()["messages"].as_array().expect("a messages array").clone()
}

fn ids_of(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Polls the device's list until every message has `status`.
fn wait_all(client: &Client, device_id: &str, status: &str) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let messages = list(client, device_id);
        if messages.iter().all(|m| m["status"] == status) {
            return messages;
        }
        assert!(Instant::now() < deadline, "{device_id}: not all {status}: {messages:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// The `id`s of the standard payloads the device receives.
fn received_ids(device: &mut MqttDevice, device_id: &str, count: usize) -> Vec<String> {
    let topic = format!("$oc/devices/{device_id}/sys/messages/down");
    device
        .publishes(count, WAIT)
        .iter()
        .map(|publish| {
            assert_eq!(publish.topic, topic);
            let payload: Value = serde_json::from_slice(&publish.payload).expect("a JSON payload");
            payload["id"].as_str().unwrap_or_else(|| panic!("no id: {payload}")).to_owned()
        })
        .collect()
}

#[test]
fn a_burst_of_accepted_messages_survives_kill_9_and_is_delivered_after_the_restart() {
    const DEVICES: usize = 10;
    const PER_DEVICE: usize = 20;
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut engine = Engine::start_on(&data_dir, &options()).unwrap();
    let devices = device_ids(DEVICES);
    register(&engine.client_a(), &devices);

    // One sender per device, all at once: each device's messages are in creation order.
    let senders: Vec<_> = devices
        .iter()
        .map(|device_id| {
            let client = engine.client_a();
            let device_id = device_id.clone();
            thread::spawn(move || {
                (0..PER_DEVICE)
                    .map(|n| create(&client, &device_id, &json!({"message": {"n": n}}), "PENDING"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let created: HashMap<String, Vec<String>> =
        devices.iter().cloned().zip(senders.into_iter().map(|s| s.join().expect("a sender"))).collect();
    engine.kill9();

    let engine = Engine::start_on(&data_dir, &options()).unwrap();
    let client = engine.client_a();
    for device_id in &devices {
        let messages = list(&client, device_id);
        assert_eq!(ids_of(&messages), created[device_id], "{device_id}: every 201 kept, in creation order");
        for message in &messages {
            assert_eq!(message["status"], "PENDING", "{device_id}: {message}");
        }
    }
    for device_id in &devices {
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let ids = received_ids(&mut device, device_id, PER_DEVICE);
        assert_eq!(&ids, &created[device_id], "{device_id}: all delivered, in creation order");
        assert!(device.ping(), "{device_id}: each message once");
        wait_all(&client, device_id, "DELIVERED");
    }
}

#[test]
fn a_delivered_status_survives_kill_9_and_nothing_is_sent_again() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut engine = Engine::start_on(&data_dir, &options()).unwrap();
    let devices = device_ids(4);
    register(&engine.client_a(), &devices);
    let client = engine.client_a();

    let mut delivered = HashMap::new();
    for device_id in &devices {
        // One delivered at once (the 201 says so), two cached and delivered at login.
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        let online = create(&client, device_id, &json!({"message": "online"}), "DELIVERED");
        assert_eq!(received_ids(&mut device, device_id, 1), [online]);
        device.disconnect();
        wait_for_offline(&client, device_id);
        let cached: Vec<String> =
            (0..2).map(|n| create(&client, device_id, &json!({"message": n}), "PENDING")).collect();
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        assert_eq!(received_ids(&mut device, device_id, 2), cached);
        delivered.insert(device_id.clone(), wait_all(&client, device_id, "DELIVERED"));
    }
    engine.kill9();

    let engine = Engine::start_on(&data_dir, &options()).unwrap();
    let client = engine.client_a();
    for device_id in &devices {
        assert_eq!(list(&client, device_id), delivered[device_id], "{device_id}: the same after kill -9");
        let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
        assert!(device.ping(), "{device_id}: a delivered message is not sent again");
    }
}

/// Polls the device until the engine has seen it go (its cached messages wait for the next login).
fn wait_for_offline(client: &Client, device_id: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let device = client.get(&format!("devices/{device_id}")).json();
        if device["status"] == "OFFLINE" {
            return;
        }
        assert!(Instant::now() < deadline, "{device_id} never went OFFLINE: {device}");
        thread::sleep(Duration::from_millis(20));
    }
}
