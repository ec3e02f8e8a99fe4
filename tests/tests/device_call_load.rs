//! Correlation under load: 1,000 commands in flight at once over 100 devices on two shards,
//! each device answering after its own delay so that answers come back out of order; every
//! call gets exactly its own answer, and every command id is used once.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{Engine, EngineOptions};

const SECRET: &str = "device-secret-1";
const DEVICES: usize = 100;
const COMMANDS: usize = 1_000;
const COMMANDS_PER_DEVICE: usize = COMMANDS / DEVICES;
const ANSWER_DELAY_MS_MAX: u64 = 30;
const DEADLINE: Duration = Duration::from_secs(60);
const THREAD_STACK_BYTES: usize = 256 * 1024;

/// A delay of 0–30 ms that depends only on the request id.
fn answer_delay(request_id: &str) -> Duration {
    let mut hasher = DefaultHasher::new();
    request_id.hash(&mut hasher);
    Duration::from_millis(hasher.finish() % (ANSWER_DELAY_MS_MAX + 1))
}

/// Answers each of the device's commands once its delay has passed, echoing the paras and the
/// request id, and returns once it has answered `COMMANDS_PER_DEVICE` of them.
fn serve_commands(mut device: MqttDevice, device_id: &str) {
    let request_prefix = format!("$oc/devices/{device_id}/sys/commands/request_id=");
    let deadline = Instant::now() + DEADLINE;
    let mut due: Vec<(Instant, String, Value)> = Vec::with_capacity(COMMANDS_PER_DEVICE);
    let mut answered = 0;
    while answered < COMMANDS_PER_DEVICE {
        assert!(Instant::now() < deadline, "{device_id} answered only {answered} commands");
        let wait = due
            .iter()
            .map(|(at, _, _)| at.saturating_duration_since(Instant::now()))
            .min()
            .unwrap_or(Duration::from_millis(100));
        if !wait.is_zero() {
            if let Some(publish) = device.next_publish(wait) {
                assert!(publish.topic.starts_with(&request_prefix), "unexpected topic {}", publish.topic);
                let request_id = request_id_of(&publish.topic).to_owned();
                let command: Value = serde_json::from_slice(&publish.payload).expect("a JSON command");
                due.push((Instant::now() + answer_delay(&request_id), request_id, command["paras"].clone()));
            }
        }
        let now = Instant::now();
        let (ready, later): (Vec<_>, Vec<_>) = due.into_iter().partition(|(at, _, _)| *at <= now);
        due = later;
        for (_, request_id, paras) in ready {
            let reply = json!({"result_code": 0, "paras": {"echo": paras, "request_id": request_id}});
            let topic = format!("$oc/devices/{device_id}/sys/commands/response/request_id={request_id}");
            device.publish(&topic, reply.to_string().as_bytes(), QoS::AtMostOnce, 0);
            answered += 1;
        }
    }
}

#[test]
fn a_thousand_concurrent_commands_each_get_their_own_answer() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let node_ids: Vec<String> = (0..DEVICES).map(|n| format!("d{n}")).collect();
    tests::register_meter_devices(&client, &node_ids, SECRET);

    let logged_in = Arc::new(Barrier::new(DEVICES + 1));
    let devices: Vec<_> = (0..DEVICES)
        .map(|n| {
            let (mqtt, logged_in) = (engine.mqtt, logged_in.clone());
            thread::Builder::new()
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || {
                    let device_id = format!("meter_d{n}");
                    let device = MqttDevice::login(mqtt, &device_id, SECRET);
                    logged_in.wait();
                    serve_commands(device, &device_id);
                })
                .expect("a device thread")
        })
        .collect();
    logged_in.wait();

    let start = Arc::new(Barrier::new(COMMANDS));
    let calls: Vec<_> = (0..COMMANDS)
        .map(|n| {
            let (client, start) = (client.clone(), start.clone());
            thread::Builder::new()
                .stack_size(THREAD_STACK_BYTES)
                .spawn(move || {
                    let path = format!("devices/meter_d{}/commands", n % DEVICES);
                    start.wait();
                    let response = client.post(&path, &json!({"paras": {"n": n}}));
                    assert_eq!(response.status, 200, "command {n}: {}", response.text());
                    let body = response.json();
                    assert_eq!(body["response"]["paras"]["echo"], json!({"n": n}), "command {n} got: {body}");
                    let command_id = body["command_id"].as_str().expect("a command_id").to_owned();
                    assert_eq!(
                        body["response"]["paras"]["request_id"], command_id,
                        "command {n}: the answer is to this command's request id"
                    );
                    command_id
                })
                .expect("a call thread")
        })
        .collect();

    let results: Vec<_> = calls.into_iter().map(|call| call.join()).collect();
    let failed = results.iter().filter(|result| result.is_err()).count();
    assert_eq!(failed, 0, "{failed} of {COMMANDS} calls failed (their panics are printed above)");
    let mut command_ids = HashSet::with_capacity(COMMANDS);
    for command_id in results.into_iter().map(Result::unwrap) {
        assert!(command_ids.insert(command_id.clone()), "command id {command_id} used twice");
    }
    for device in devices {
        device.join().expect("a device thread panicked");
    }
    assert_eq!(command_ids.len(), COMMANDS);
}
