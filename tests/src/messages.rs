//! Helpers shared by the downlink-message tests (`device_messages.rs`, `message_history.rs`):
//! an engine with `meter_*` devices on both shards, CreateMessage / List / Show calls, and
//! the checks of their answers.

use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mqttbytes::v4;
use serde_json::Value;

use crate::{Client, Engine, EngineOptions, HttpResponse};

pub const SECRET: &str = "device-secret-1";
pub const SHARDS: usize = 2;
/// Node ids whose devices live on both shards (checked by [`engine_with_devices`]).
pub const NODES: [&str; 6] = ["n1", "n2", "n3", "n4", "n5", "n6"];
pub const WAIT: Duration = Duration::from_secs(10);

/// An engine on two shards with product `meter` and devices `meter_{node}`, spread over both.
pub fn engine_with_devices(nodes: &[&str]) -> Engine {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..Default::default() });
    crate::register_meter_devices(&engine.client_a(), nodes, SECRET);
    engine
}

pub fn device_ids(nodes: &[&str]) -> Vec<String> {
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

pub fn create(client: &Client, device_id: &str, body: &Value) -> HttpResponse {
    client.post(&format!("devices/{device_id}/messages"), body)
}

/// CreateMessage from its own thread (it may wait up to 2 s for a PUBACK).
pub fn create_in_thread(client: &Client, device_id: &str, body: Value) -> JoinHandle<HttpResponse> {
    let client = client.clone();
    let device_id = device_id.to_owned();
    thread::spawn(move || create(&client, &device_id, &body))
}

/// Asserts a 201 with `status`, well-formed times, and returns the message id.
pub fn assert_created(response: &HttpResponse, status: &str) -> String {
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

pub fn is_t1(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes.iter().enumerate().all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit())
}

pub fn show(client: &Client, device_id: &str, message_id: &str) -> HttpResponse {
    client.get(&format!("devices/{device_id}/messages/{message_id}"))
}

pub fn list(client: &Client, device_id: &str) -> Vec<Value> {
    let response = client.get(&format!("devices/{device_id}/messages"));
    assert_eq!(response.status, 200, "{}", response.text());
    let body = response.json();
    assert_eq!(body["device_id"], device_id, "{body}");
    body["messages"].as_array().unwrap_or_else(|| panic!("no messages array: {body}")).clone()
}

pub fn ids_of(messages: &[Value]) -> Vec<String> {
    messages.iter().map(|m| m["message_id"].as_str().unwrap_or_default().to_owned()).collect()
}

/// Polls ShowDeviceMessage until the message has `status` (the deadline is [`WAIT`]).
pub fn wait_for_status(client: &Client, device_id: &str, message_id: &str, status: &str) -> Value {
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

pub fn down_topic(device_id: &str) -> String {
    format!("$oc/devices/{device_id}/sys/messages/down")
}

pub fn payload_json(publish: &v4::Publish) -> Value {
    serde_json::from_slice(&publish.payload)
        .unwrap_or_else(|e| panic!("payload on {} is not JSON ({e}): {:?}", publish.topic, publish.payload))
}
