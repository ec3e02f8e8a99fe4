//! Helpers shared by the batch-task tests (`batch_tasks.rs`, `batch_task_control.rs`): an
//! engine with `meter_*` devices on both shards, task creation and polling, answering and mute
//! devices, and the checks of task details.

use std::collections::HashMap;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::mqtt::MqttDevice;
use crate::{Auth, Client, Engine, EngineOptions, PROJECT_B};

pub const SECRET: &str = "device-secret-1";
pub const SHARDS: usize = 2;
/// How long a small task may take to finish.
pub const WAIT: Duration = Duration::from_secs(20);
/// How long an answering device waits for its next command.
pub const DEVICE_IDLE: Duration = Duration::from_secs(60);
pub const FINAL_STATUSES: [&str; 4] = ["Success", "Fail", "PartialSuccess", "Stopped"];

pub fn water_meter() -> Value {
    json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water",
            "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "method": "RW"}],
            "commands": [{
                "command_name": "SET_LEVEL",
                "paras": [{"para_name": "value", "data_type": "int", "min": "0", "max": "100"}]
            }]
        }]
    })
}

pub fn options(timeout_ms: u64, config_extra: &str) -> EngineOptions {
    EngineOptions {
        shards: SHARDS,
        args: vec!["--command-timeout-ms".into(), timeout_ms.to_string()],
        config_extra: config_extra.into(),
        ..Default::default()
    }
}

/// Registers the `meter` product and devices `meter_{node}`.
pub fn register(client: &Client, nodes: &[&str]) {
    crate::register_devices(client, &water_meter(), nodes, SECRET);
}

/// An engine on two shards (command timeout `timeout_ms`) with devices `meter_{node}`.
pub fn engine_with(nodes: &[&str], timeout_ms: u64, config_extra: &str) -> Engine {
    let engine = Engine::start(options(timeout_ms, config_extra));
    register(&engine.client_a(), nodes);
    engine
}

pub fn shard_of(device_id: &str) -> usize {
    protocol::routing::home_shard(device_id, SHARDS)
}

/// `meter_{node}` for every node, asserted to span both shards.
pub fn device_ids(nodes: &[&str]) -> Vec<String> {
    let ids: Vec<String> = nodes.iter().map(|node| format!("meter_{node}")).collect();
    let mut per_shard = [0usize; SHARDS];
    for id in &ids {
        per_shard[shard_of(id)] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 0), "the devices must span both shards: {per_shard:?}");
    ids
}

/// An unregistered device id living on `shard`.
pub fn ghost_on(shard: usize) -> String {
    (0..).map(|n| format!("ghost_{n}")).find(|id| shard_of(id) == shard).expect("an id on every shard")
}

pub fn set_level(value: u64) -> Value {
    json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": value}})
}

pub fn task_body(task_type: &str, targets: &[String], document: Value) -> Value {
    json!({"task_name": "batch_1", "task_type": task_type, "targets": targets, "document": document})
}

/// Creates a task, asserts the 201 and returns its id.
pub fn create(client: &Client, body: &Value) -> String {
    let response = client.post("batchtasks", body);
    assert_eq!(response.status, 201, "{}", response.text());
    let task = response.json();
    task["task_id"].as_str().unwrap_or_else(|| panic!("no task_id: {task}")).to_owned()
}

pub fn create_commands(client: &Client, targets: &[String], document: Value) -> String {
    create(client, &task_body("createCommands", targets, document))
}

/// ShowBatchTask with `query` (e.g. `limit=50`), asserting a 200.
pub fn show(client: &Client, task_id: &str, query: &str) -> Value {
    let response = client.get(&format!("batchtasks/{task_id}?{query}"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

pub fn status_of(shown: &Value) -> &str {
    shown["batchtask"]["status"].as_str().unwrap_or_default()
}

pub fn progress(shown: &Value, field: &str) -> u64 {
    shown["batchtask"]["task_progress"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("task_progress.{field} is not a count: {shown}"))
}

/// Polls ShowBatchTask (with `query`) until `done` holds; panics at `timeout`.
pub fn wait_until(
    client: &Client,
    task_id: &str,
    query: &str,
    timeout: Duration,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let shown = show(client, task_id, query);
        if done(&shown) {
            return shown;
        }
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}; the task is: {shown}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the task has a final status; returns it with its first 50 details.
pub fn wait_finished(client: &Client, task_id: &str) -> Value {
    let shown = wait_until(client, task_id, "limit=50", WAIT, "the task to finish", |shown| {
        FINAL_STATUSES.contains(&status_of(shown))
    });
    assert_eq!(progress(&shown, "processing") + progress(&shown, "waitting"), 0, "finished: {shown}");
    shown
}

/// The details of a ShowBatchTask answer by target.
pub fn details(shown: &Value) -> HashMap<String, Value> {
    shown["task_details"]
        .as_array()
        .unwrap_or_else(|| panic!("no task_details: {shown}"))
        .iter()
        .map(|detail| (detail["target"].as_str().expect("a target").to_owned(), detail.clone()))
        .collect()
}

pub fn targets_of(shown: &Value) -> Vec<String> {
    let details = shown["task_details"].as_array().unwrap_or_else(|| panic!("no task_details: {shown}"));
    details.iter().map(|detail| detail["target"].as_str().expect("a target").to_owned()).collect()
}

pub fn assert_success(detail: &Value, output: &Value) {
    assert_eq!(detail["status"], "Success", "{detail}");
    let text = detail["output"].as_str().unwrap_or_else(|| panic!("output is a string: {detail}"));
    let parsed: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("output is not JSON ({e}): {detail}"));
    assert_eq!(&parsed, output, "the device's answer: {detail}");
    assert!(detail["error"].is_null(), "no error: {detail}");
}

pub fn assert_failed(detail: &Value, error_code: &str) {
    assert_eq!(detail["status"], "Fail", "{detail}");
    assert_eq!(detail["error"]["error_code"], error_code, "{detail}");
    assert!(detail["error"]["error_msg"].is_string(), "{detail}");
}

pub fn is_t1(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes.iter().enumerate().all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit())
}

/// Logs `device_id` in and answers every command it gets with `reply` from a thread, which
/// returns the commands once the engine closes the connection (or none came for a minute).
pub fn answering(engine: &Engine, device_id: &str, reply: Value) -> JoinHandle<Vec<Value>> {
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    let device_id = device_id.to_owned();
    thread::spawn(move || {
        let commands =
            device.answer_commands(&device_id, reply.to_string().as_bytes(), usize::MAX, DEVICE_IDLE);
        commands.iter().map(|c| serde_json::from_slice(&c.payload).expect("a JSON command")).collect()
    })
}

/// Logs in devices that never answer (their commands time out); keep them to stay online.
pub fn mute(engine: &Engine, device_ids: &[String]) -> Vec<MqttDevice> {
    device_ids.iter().map(|device_id| MqttDevice::login(engine.mqtt, device_id, SECRET)).collect()
}

pub fn project_b(engine: &Engine) -> Client {
    engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()))
}
