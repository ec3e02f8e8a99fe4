//! Batch tasks (spec §2.8): `createCommands` and `createMessages` over a list of device ids,
//! each target run like a single CreateCommand / CreateMessage on its home shard. The task is
//! created (201, `Initializing`), runs at once, ends `Success`, `Fail`, `PartialSuccess` or
//! `Stopped`, and shows every target's outcome (filtered and paged); it can be listed by type,
//! stopped, deleted once finished, survives kill -9 (targets in flight then fail with
//! `IOTDA.000503`), pushes `batchtask:update` through the rule engine when it finishes, and
//! runs 30,000 targets within a minute.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::receiver::Receiver;
use tests::{assert_error, assert_invalid, Auth, Client, Engine, EngineOptions, PROJECT_B};

const SECRET: &str = "device-secret-1";
const SHARDS: usize = 2;
/// How long a small task may take to finish.
const WAIT: Duration = Duration::from_secs(20);
/// How long an answering device waits for its next command.
const DEVICE_IDLE: Duration = Duration::from_secs(60);
const FINAL_STATUSES: [&str; 4] = ["Success", "Fail", "PartialSuccess", "Stopped"];

fn water_meter() -> Value {
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

fn options(timeout_ms: u64, config_extra: &str) -> EngineOptions {
    EngineOptions {
        shards: SHARDS,
        args: vec!["--command-timeout-ms".into(), timeout_ms.to_string()],
        config_extra: config_extra.into(),
        ..Default::default()
    }
}

/// Registers the `meter` product and devices `meter_{node}`.
fn register(client: &Client, nodes: &[&str]) {
    let product = client.post("products", &water_meter());
    assert_eq!(product.status, 201, "{}", product.text());
    for node in nodes {
        let body = json!({"node_id": node, "product_id": "meter", "auth_info": {"secret": SECRET}});
        let response = client.post("devices", &body);
        assert_eq!(response.status, 201, "{}", response.text());
    }
}

/// An engine on two shards (command timeout `timeout_ms`) with devices `meter_{node}`.
fn engine_with(nodes: &[&str], timeout_ms: u64, config_extra: &str) -> Engine {
    let engine = Engine::start(options(timeout_ms, config_extra));
    register(&engine.client_a(), nodes);
    engine
}

fn shard_of(device_id: &str) -> usize {
    protocol::routing::home_shard(device_id, SHARDS)
}

/// `meter_{node}` for every node, asserted to span both shards.
fn device_ids(nodes: &[&str]) -> Vec<String> {
    let ids: Vec<String> = nodes.iter().map(|node| format!("meter_{node}")).collect();
    let mut per_shard = [0usize; SHARDS];
    for id in &ids {
        per_shard[shard_of(id)] += 1;
    }
    assert!(per_shard.iter().all(|&n| n > 0), "the devices must span both shards: {per_shard:?}");
    ids
}

/// An unregistered device id living on `shard`.
fn ghost_on(shard: usize) -> String {
    (0..).map(|n| format!("ghost_{n}")).find(|id| shard_of(id) == shard).expect("an id on every shard")
}

fn set_level(value: u64) -> Value {
    json!({"service_id": "water", "command_name": "SET_LEVEL", "paras": {"value": value}})
}

fn task_body(task_type: &str, targets: &[String], document: Value) -> Value {
    json!({"task_name": "batch_1", "task_type": task_type, "targets": targets, "document": document})
}

/// Creates a task, asserts the 201 and returns its id.
fn create(client: &Client, body: &Value) -> String {
    let response = client.post("batchtasks", body);
    assert_eq!(response.status, 201, "{}", response.text());
    let task = response.json();
    task["task_id"].as_str().unwrap_or_else(|| panic!("no task_id: {task}")).to_owned()
}

fn create_commands(client: &Client, targets: &[String], document: Value) -> String {
    create(client, &task_body("createCommands", targets, document))
}

/// ShowBatchTask with `query` (e.g. `limit=50`), asserting a 200.
fn show(client: &Client, task_id: &str, query: &str) -> Value {
    let response = client.get(&format!("batchtasks/{task_id}?{query}"));
    assert_eq!(response.status, 200, "{}", response.text());
    response.json()
}

fn status_of(shown: &Value) -> &str {
    shown["batchtask"]["status"].as_str().unwrap_or_default()
}

fn progress(shown: &Value, field: &str) -> u64 {
    shown["batchtask"]["task_progress"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("task_progress.{field} is not a count: {shown}"))
}

/// Polls ShowBatchTask (with `query`) until `done` holds; panics at `timeout`.
fn wait_until(
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
fn wait_finished(client: &Client, task_id: &str) -> Value {
    let shown = wait_until(client, task_id, "limit=50", WAIT, "the task to finish", |shown| {
        FINAL_STATUSES.contains(&status_of(shown))
    });
    assert_eq!(progress(&shown, "processing") + progress(&shown, "waitting"), 0, "finished: {shown}");
    shown
}

/// The details of a ShowBatchTask answer by target.
fn details(shown: &Value) -> HashMap<String, Value> {
    shown["task_details"]
        .as_array()
        .unwrap_or_else(|| panic!("no task_details: {shown}"))
        .iter()
        .map(|detail| (detail["target"].as_str().expect("a target").to_owned(), detail.clone()))
        .collect()
}

fn targets_of(shown: &Value) -> Vec<String> {
    let details = shown["task_details"].as_array().unwrap_or_else(|| panic!("no task_details: {shown}"));
    details.iter().map(|detail| detail["target"].as_str().expect("a target").to_owned()).collect()
}

fn assert_success(detail: &Value, output: &Value) {
    assert_eq!(detail["status"], "Success", "{detail}");
    let text = detail["output"].as_str().unwrap_or_else(|| panic!("output is a string: {detail}"));
    let parsed: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("output is not JSON ({e}): {detail}"));
    assert_eq!(&parsed, output, "the device's answer: {detail}");
    assert!(detail["error"].is_null(), "no error: {detail}");
}

fn assert_failed(detail: &Value, error_code: &str) {
    assert_eq!(detail["status"], "Fail", "{detail}");
    assert_eq!(detail["error"]["error_code"], error_code, "{detail}");
    assert!(detail["error"]["error_msg"].is_string(), "{detail}");
}

fn is_t1(value: &Value) -> bool {
    let Some(text) = value.as_str() else { return false };
    let bytes = text.as_bytes();
    bytes.len() == 16
        && bytes[8] == b'T'
        && bytes[15] == b'Z'
        && bytes.iter().enumerate().all(|(i, b)| i == 8 || i == 15 || b.is_ascii_digit())
}

/// Logs `device_id` in and answers every command it gets with `reply` from a thread, which
/// returns the commands once the engine closes the connection (or none came for a minute).
fn answering(engine: &Engine, device_id: &str, reply: Value) -> JoinHandle<Vec<Value>> {
    let mut device = MqttDevice::login(engine.mqtt, device_id, SECRET);
    let device_id = device_id.to_owned();
    thread::spawn(move || {
        let commands =
            device.answer_commands(&device_id, reply.to_string().as_bytes(), usize::MAX, DEVICE_IDLE);
        commands.iter().map(|c| serde_json::from_slice(&c.payload).expect("a JSON command")).collect()
    })
}

/// Logs in devices that never answer (their commands time out); keep them to stay online.
fn mute(engine: &Engine, device_ids: &[String]) -> Vec<MqttDevice> {
    device_ids.iter().map(|device_id| MqttDevice::login(engine.mqtt, device_id, SECRET)).collect()
}

fn project_b(engine: &Engine) -> Client {
    engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()))
}

#[test]
fn a_new_task_is_answered_201_initializing_with_its_definition() {
    let engine = engine_with(&["n1", "n2"], 20_000, "");
    let targets: Vec<String> = ["meter_n1", "meter_n2", "meter_n1", "ghost_1"].map(String::from).to_vec();
    let response = engine.client_a().post("batchtasks", &task_body("createCommands", &targets, set_level(5)));

    assert_eq!(response.status, 201, "{}", response.text());
    let task = response.json();
    let task_id = task["task_id"].as_str().unwrap_or_default();
    assert!(
        task_id.len() == 24 && task_id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "task_id is 24 lowercase hex digits: {task}"
    );
    assert_eq!(task["task_name"], "batch_1", "{task}");
    assert_eq!(task["task_type"], "createCommands", "{task}");
    assert_eq!(task["targets"], json!(["meter_n1", "meter_n2", "ghost_1"]), "duplicates count once: {task}");
    assert_eq!(task["document"], set_level(5), "{task}");
    assert_eq!(task["status"], "Initializing", "{task}");
    assert!(task["status_desc"].is_string(), "{task}");
    assert!(is_t1(&task["create_time"]), "create_time is yyyyMMdd'T'HHmmss'Z': {task}");
    let progress = &task["task_progress"];
    assert_eq!(progress["total"], 3, "duplicates count once: {task}");
    for field in ["processing", "success", "fail", "waitting", "fail_wait_retry", "stopped", "removed"] {
        assert!(progress[field].is_u64(), "task_progress.{field} is a count: {task}");
    }
}

#[test]
fn invalid_tasks_are_refused_naming_the_field() {
    let engine = engine_with(&["n1"], 20_000, "");
    let client = engine.client_a();
    let one = ["meter_n1".to_owned()];
    let valid = task_body("createCommands", &one, set_level(1));
    let without = |field: &str| {
        let mut body = valid.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    let cases = [
        ("task_name", without("task_name")),
        ("task_type", without("task_type")),
        ("targets", without("targets")),
        ("document", without("document")),
        ("targets", with("targets", json!([]))),
        ("task_type", with("task_type", json!("firmwareUpgrade"))),
        ("targets_filter", with("targets_filter", json!({"group_ids": ["g1"]}))),
        ("document_source", with("document_source", json!("file-1"))),
        ("task_policy", with("task_policy", json!({"retry_count": 1, "retry_interval": 5}))),
        ("document.paras", with("document", json!({"service_id": "water", "command_name": "SET_LEVEL"}))),
        (
            "document.topic",
            task_body("createMessages", &one, json!({"message": "m", "topic": "t", "topic_full_name": "/t"})),
        ),
    ];
    for (field, body) in cases {
        let response = client.post("batchtasks", &body);
        assert_invalid(&response, field);
        let unsupported = ["task_type", "targets_filter", "document_source", "task_policy"];
        if unsupported.contains(&field) && body.get(field).is_some() {
            let message = response.json()["error_msg"].as_str().unwrap_or_default().to_owned();
            assert!(message.contains("not supported"), "{field}: {message:?}");
        }
    }
    assert_error(&client.call("POST", "batchtasks", b"{\"task_name\": "), 400, "IOTDA.000008");
    let listed = client.get("batchtasks?task_type=createCommands").json();
    assert_eq!(listed["batchtasks"], json!([]), "no refused task was kept: {listed}");
}

#[test]
fn more_targets_than_batch_targets_max_are_refused() {
    let engine = engine_with(&[], 20_000, "batch_targets_max = 5\n");
    let client = engine.client_a();
    let ghosts: Vec<String> = (0..6).map(|n| format!("ghost_{n}")).collect();
    assert_invalid(
        &client.post("batchtasks", &task_body("createCommands", &ghosts, set_level(1))),
        "targets",
    );

    let five_with_a_duplicate: Vec<String> = ghosts[..5].iter().chain(&ghosts[..1]).cloned().collect();
    let response =
        client.post("batchtasks", &task_body("createCommands", &five_with_a_duplicate, set_level(1)));
    assert_eq!(response.status, 201, "5 distinct targets are allowed: {}", response.text());
    assert_eq!(response.json()["task_progress"]["total"], 5, "{}", response.text());
}

#[test]
fn online_devices_that_answer_make_a_successful_task() {
    let nodes = ["n1", "n2", "n3"];
    let engine = engine_with(&nodes, 20_000, "");
    let client = engine.client_a();
    let devices = device_ids(&nodes);
    let answers: Vec<Value> = (0..devices.len())
        .map(|n| json!({"result_code": 0, "paras": {"level": n, "who": devices[n]}}))
        .collect();
    let threads: Vec<_> =
        devices.iter().zip(&answers).map(|(id, answer)| answering(&engine, id, answer.clone())).collect();
    let task_id = create_commands(&client, &devices, set_level(42));

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "Success", "{shown}");
    assert_eq!((progress(&shown, "total"), progress(&shown, "success")), (3, 3), "{shown}");
    assert_eq!(progress(&shown, "fail"), 0, "{shown}");
    let details = details(&shown);
    for (device_id, answer) in devices.iter().zip(&answers) {
        assert_success(&details[device_id], answer);
    }
    drop(engine);
    for (device_id, thread) in devices.iter().zip(threads) {
        let commands = thread.join().expect("a device thread");
        assert_eq!(commands, [set_level(42)], "{device_id} got the document once");
    }
}

#[test]
fn a_mix_of_online_offline_unknown_and_mute_devices_is_a_partial_success() {
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let engine = engine_with(&nodes, 500, "");
    let client = engine.client_a();
    let devices = device_ids(&nodes);
    let (online, rest) = devices.split_at(2);
    let (offline, silent) = rest.split_at(2);
    let _answering: Vec<_> =
        online.iter().map(|id| answering(&engine, id, json!({"result_code": 0, "from": id}))).collect();
    let _mute = mute(&engine, silent);
    let unknown = [ghost_on(0), ghost_on(1)];
    let targets: Vec<String> = devices.iter().chain(&unknown).cloned().collect();
    let task_id = create_commands(&client, &targets, set_level(7));

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "PartialSuccess", "{shown}");
    assert_eq!(progress(&shown, "total"), 8, "{shown}");
    assert_eq!((progress(&shown, "success"), progress(&shown, "fail")), (2, 6), "{shown}");
    let details = details(&shown);
    assert_eq!(details.len(), 8, "one detail per target: {shown}");
    for id in online {
        assert_success(&details[id], &json!({"result_code": 0, "from": id}));
    }
    for id in offline {
        assert_failed(&details[id], "IOTDA.014016");
    }
    for id in &unknown {
        assert_failed(&details[id], "IOTDA.014000");
    }
    for id in silent {
        assert_failed(&details[id], "IOTDA.014111");
    }
}

#[test]
fn messages_are_delivered_to_online_devices_and_kept_for_offline_ones() {
    let nodes = ["n1", "n2", "n3", "n4"];
    let engine = engine_with(&nodes, 20_000, "");
    let client = engine.client_a();
    let devices = device_ids(&nodes);
    let (online, offline) = devices.split_at(2);
    let mut sessions = mute(&engine, online);
    let document = json!({"message": {"hello": "batch"}, "name": "greeting"});
    let task_id = create(&client, &task_body("createMessages", &devices, document));

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "Success", "{shown}");
    assert_eq!((progress(&shown, "total"), progress(&shown, "success")), (4, 4), "{shown}");
    let details = details(&shown);
    for id in online {
        assert_eq!(details[id]["status"], "Success", "{shown}");
        assert_eq!(details[id]["output"], "DELIVERED", "{shown}");
    }
    for id in offline {
        assert_eq!(details[id]["status"], "Success", "{shown}");
        assert_eq!(details[id]["output"], "PENDING", "{shown}");
    }
    for (id, session) in online.iter().zip(&mut sessions) {
        let publish = session.next_publish(WAIT).unwrap_or_else(|| panic!("{id} got the message"));
        assert_eq!(publish.topic, format!("$oc/devices/{id}/sys/messages/down"), "the message topic");
        assert!(String::from_utf8_lossy(&publish.payload).contains("batch"), "the message: {publish:?}");
    }
}

#[test]
fn a_message_with_ttl_0_fails_for_offline_and_unknown_devices() {
    let engine = engine_with(&["n1"], 20_000, "");
    let client = engine.client_a();
    let targets = ["meter_n1".to_owned(), ghost_on(0), ghost_on(1)];
    let task_id = create(&client, &task_body("createMessages", &targets, json!({"message": "m", "ttl": 0})));

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "Fail", "{shown}");
    assert_eq!((progress(&shown, "total"), progress(&shown, "fail")), (3, 3), "{shown}");
    let details = details(&shown);
    assert_failed(&details["meter_n1"], "IOTDA.014016");
    assert_failed(&details[&targets[1]], "IOTDA.014000");
    assert_failed(&details[&targets[2]], "IOTDA.014000");
}

#[test]
fn task_details_are_filtered_and_paged() {
    let engine = engine_with(&["n1"], 20_000, "");
    let client = engine.client_a();
    let _online = answering(&engine, "meter_n1", json!({"result_code": 0}));
    let ghosts: Vec<String> = (0..24).map(|n| format!("ghost_{n:02}")).collect();
    let targets: Vec<String> = std::iter::once("meter_n1".to_owned()).chain(ghosts.iter().cloned()).collect();
    let task_id = create_commands(&client, &targets, set_level(3));
    wait_finished(&client, &task_id);

    let first = show(&client, &task_id, "");
    assert_eq!(first["page"]["count"], 25, "all 25 details match: {first}");
    assert_eq!(targets_of(&first), targets[..10], "10 by default, in target order: {first}");
    let mut paged = Vec::new();
    let mut query = "limit=7".to_owned();
    for _ in 0..10 {
        let page = show(&client, &task_id, &query);
        let page_targets = targets_of(&page);
        if page_targets.is_empty() {
            break;
        }
        assert!(page_targets.len() <= 7, "limit 7: {page}");
        paged.extend(page_targets);
        let marker = page["page"]["marker"].as_str().unwrap_or_else(|| panic!("a marker: {page}"));
        query = format!("limit=7&marker={marker}");
    }
    assert_eq!(paged, targets, "the pages by marker give every detail once, in order");
    let offset = show(&client, &task_id, "offset=20");
    assert_eq!(targets_of(&offset), targets[20..], "offset skips the first 20: {offset}");

    let success = show(&client, &task_id, "task_detail_status=Success");
    assert_eq!(targets_of(&success), ["meter_n1"], "{success}");
    assert_eq!(success["page"]["count"], 1, "{success}");
    let failed = show(&client, &task_id, "task_detail_status=Fail&limit=50");
    assert_eq!(targets_of(&failed), ghosts, "{failed}");
    assert_eq!(failed["page"]["count"], 24, "{failed}");
    for status in ["Processing", "Waitting", "Stopped"] {
        let none = show(&client, &task_id, &format!("task_detail_status={status}"));
        assert_eq!(none["page"]["count"], 0, "{status}: {none}");
    }
    let one = show(&client, &task_id, "target=ghost_05");
    assert_eq!(targets_of(&one), ["ghost_05"], "{one}");
    assert_failed(&one["task_details"][0], "IOTDA.014000");
    let both = show(&client, &task_id, "target=meter_n1&task_detail_status=Fail");
    assert_eq!(both["task_details"], json!([]), "filters combine: {both}");

    let bad_status = client.get(&format!("batchtasks/{task_id}?task_detail_status=Done"));
    assert_error(&bad_status, 400, "IOTDA.000006");
    for limit in ["0", "51"] {
        let response = client.get(&format!("batchtasks/{task_id}?limit={limit}"));
        assert_eq!(response.status, 400, "limit={limit}: {}", response.text());
    }
}

#[test]
fn unknown_tasks_and_other_projects_tasks_are_404() {
    let engine = engine_with(&[], 20_000, "");
    let client = engine.client_a();
    let task_id = create_commands(&client, &[ghost_on(0)], set_level(1));
    assert_error(&client.get("batchtasks/0123456789abcdef01234567"), 404, "IOTDA.000404");
    assert_error(&client.delete("batchtasks/0123456789abcdef01234567"), 404, "IOTDA.000404");

    let other = project_b(&engine);
    assert_error(&other.get(&format!("batchtasks/{task_id}")), 404, "IOTDA.000404");
    assert_error(&other.delete(&format!("batchtasks/{task_id}")), 404, "IOTDA.000404");
    let listed = other.get("batchtasks?task_type=createCommands");
    assert_eq!(listed.status, 200, "{}", listed.text());
    assert_eq!(listed.json()["batchtasks"], json!([]), "project B sees none of A's tasks");
    assert_eq!(show(&client, &task_id, "")["batchtask"]["task_id"], task_id.as_str(), "A still sees it");
}

#[test]
fn tasks_are_listed_by_type_newest_first() {
    let engine = engine_with(&[], 20_000, "");
    let client = engine.client_a();
    let ghosts = [ghost_on(0), ghost_on(1)];
    let older = create_commands(&client, &ghosts, set_level(1));
    wait_finished(&client, &older);
    let message = create(&client, &task_body("createMessages", &ghosts, json!({"message": "m"})));
    wait_finished(&client, &message);
    let newer = create_commands(&client, &ghosts, set_level(2));

    let response = client.get("batchtasks?task_type=createCommands");
    assert_eq!(response.status, 200, "{}", response.text());
    let listed = response.json();
    let ids: Vec<&str> = listed["batchtasks"]
        .as_array()
        .expect("batchtasks")
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(ids, [newer.as_str(), older.as_str()], "createCommands tasks, newest first: {listed}");
    assert_eq!(listed["page"]["count"], 2, "{listed}");
    assert_eq!(listed["batchtasks"][1]["status"], "Fail", "each with its status: {listed}");
    let messages = client.get("batchtasks?task_type=createMessages").json();
    assert_eq!(messages["batchtasks"][0]["task_id"], message.as_str(), "{messages}");
    assert_eq!(messages["page"]["count"], 1, "{messages}");

    assert_invalid(&client.get("batchtasks"), "task_type");
}

#[test]
fn a_finished_task_is_deleted_and_a_running_one_is_not() {
    let engine = engine_with(&["n1"], 3000, "");
    let client = engine.client_a();
    let _mute = mute(&engine, &["meter_n1".to_owned()]);
    let task_id = create_commands(&client, &["meter_n1".to_owned()], set_level(1));
    let path = format!("batchtasks/{task_id}");

    assert_error(&client.delete(&path), 400, "IOTDA.000006");
    let shown = wait_finished(&client, &task_id);
    assert_failed(&details(&shown)["meter_n1"], "IOTDA.014111");
    let deleted = client.delete(&path);
    assert_eq!(deleted.status, 204, "{}", deleted.text());
    assert_error(&client.get(&path), 404, "IOTDA.000404");
    assert_error(&client.delete(&path), 404, "IOTDA.000404");
    let listed = client.get("batchtasks?task_type=createCommands").json();
    assert_eq!(listed["batchtasks"], json!([]), "{listed}");
}

/// Stops a task over mute devices (one in flight per shard), no targets named.
fn stop_all_with(body: &[u8]) {
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"];
    let engine = engine_with(&nodes, 3000, "batch_concurrency_per_shard = 1\n");
    let client = engine.client_a();
    let devices = device_ids(&nodes);
    let _mute = mute(&engine, &devices);
    let task_id = create_commands(&client, &devices, set_level(1));

    let response = client.call("POST", &format!("batchtasks/{task_id}/stop"), body);
    assert_eq!(response.status, 200, "{}", response.text());
    let status = status_of(&show(&client, &task_id, "")).to_owned();
    assert!(["Stopping", "Stopped"].contains(&status.as_str()), "right after the stop: {status}");

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "Stopped", "{shown}");
    let (stopped, failed) = (progress(&shown, "stopped"), progress(&shown, "fail"));
    assert!(failed <= SHARDS as u64, "at most one target per shard was in flight: {shown}");
    assert_eq!(stopped + failed, 8, "every target not started was stopped: {shown}");
    for (device_id, detail) in details(&shown) {
        match detail["status"].as_str() {
            Some("Stopped") => assert!(detail["error"].is_null(), "{device_id}: {detail}"),
            _ => assert_failed(&detail, "IOTDA.014111"),
        }
    }
}

#[test]
fn stop_without_a_body_stops_every_target_not_started() {
    stop_all_with(b"");
}

#[test]
fn stop_with_an_empty_object_stops_every_target_not_started() {
    stop_all_with(b"{}");
}

#[test]
fn stop_of_named_targets_answers_each_and_stops_those_not_started() {
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6"];
    let engine = engine_with(&nodes, 1500, "batch_concurrency_per_shard = 1\n");
    let client = engine.client_a();
    let devices = device_ids(&nodes);
    let on = |shard: usize| devices.iter().filter(|id| shard_of(id) == shard).cloned().collect::<Vec<_>>();
    let (zero, one) = (on(0), on(1));
    assert!(zero.len() >= 2 && one.len() >= 2, "two devices per shard: {zero:?} {one:?}");
    // Shard 0 runs zero[0] (1.5 s), then zero[1]; shard 1 runs one[0], then one[1].
    let targets = [zero[0].clone(), one[0].clone(), zero[1].clone(), one[1].clone()];
    let _mute = mute(&engine, &targets);
    let task_id = create_commands(&client, &targets, set_level(1));

    let stop = |named: Value| client.post(&format!("batchtasks/{task_id}/stop"), &json!({"targets": named}));
    let response = stop(json!([zero[1], "meter_nobody"]));
    assert_eq!(response.status, 200, "{}", response.text());
    let answers = response.json();
    assert_eq!(answers["targets"][0]["target"], zero[1].as_str(), "{answers}");
    assert_eq!(answers["targets"][0]["status"], "success", "a target still waiting: {answers}");
    assert_eq!(answers["targets"][1]["target"], "meter_nobody", "{answers}");
    assert_eq!(answers["targets"][1]["status"], "failure", "not a target: {answers}");
    assert_eq!(answers["targets"].as_array().map(Vec::len), Some(2), "{answers}");

    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "Stopped", "{shown}");
    assert_eq!((progress(&shown, "stopped"), progress(&shown, "fail")), (1, 3), "{shown}");
    let details = details(&shown);
    assert_eq!(details[&zero[1]]["status"], "Stopped", "{shown}");
    for id in [&zero[0], &one[0], &one[1]] {
        assert_failed(&details[id], "IOTDA.014111");
    }
    let late = stop(json!([one[1]])).json();
    assert_eq!(late["targets"][0]["status"], "failure", "already finished: {late}");
    let too_many: Vec<String> = (0..101).map(|n| format!("ghost_{n}")).collect();
    assert_eq!(stop(json!(too_many)).status, 400, "at most 100 targets per stop");
}

#[test]
fn a_restart_fails_the_unfinished_targets_and_keeps_the_finished_ones() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = options(20_000, "batch_concurrency_per_shard = 1\n");
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    let nodes = ["n1", "n2", "n3", "n4", "n5", "n6"];
    register(&client, &nodes);
    let devices = device_ids(&nodes);
    let (answering_id, silent) = devices.split_first().expect("devices");
    let _answering = answering(&engine, answering_id, json!({"result_code": 0}));
    let _mute = mute(&engine, silent);
    // Per shard, one at a time: the unknown device fails at once, the answering one succeeds,
    // then a mute device keeps its shard busy for 20 s.
    let unknown = [ghost_on(0), ghost_on(1)];
    let targets: Vec<String> = unknown.iter().chain(&devices).cloned().collect();
    let task_id = create_commands(&client, &targets, set_level(1));
    wait_until(&client, &task_id, "", WAIT, "3 finished targets", |shown| {
        progress(shown, "success") == 1 && progress(shown, "fail") == 2
    });
    // A later write on shard 0's log (the task owner's): once it is durable, so are the results.
    create_commands(&client, &[ghost_on(0)], set_level(2));
    engine.kill9();

    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    let shown = wait_finished(&client, &task_id);
    assert_eq!(status_of(&shown), "PartialSuccess", "{shown}");
    assert_eq!(progress(&shown, "total"), targets.len() as u64, "{shown}");
    assert_eq!(progress(&shown, "processing"), 0, "{shown}");
    assert_eq!((progress(&shown, "success"), progress(&shown, "fail")), (1, 7), "{shown}");
    let details = details(&shown);
    assert_success(&details[answering_id], &json!({"result_code": 0}));
    for id in &unknown {
        assert_failed(&details[id], "IOTDA.014000");
    }
    for id in silent {
        assert_failed(&details[id], "IOTDA.000503");
        let message = details[id]["error"]["error_msg"].as_str().unwrap_or_default();
        assert!(message.contains("restarted"), "{id}: {message:?}");
    }
}

#[test]
fn a_finished_task_is_pushed_as_batchtask_update() {
    let engine = engine_with(&["n1"], 20_000, "");
    let client = engine.client_a();
    let receiver = Receiver::start();
    let rule = client.post(
        "routing-rule/rules",
        &json!({"rule_name": "r", "subject": {"resource": "batchtask", "event": "update"}, "app_type": "GLOBAL"}),
    );
    assert_eq!(rule.status, 201, "{}", rule.text());
    let rule_id = rule.json()["rule_id"].as_str().expect("a rule_id").to_owned();
    let action = json!({
        "rule_id": rule_id, "channel": "HTTP_FORWARDING",
        "channel_detail": {"http_forwarding": {"url": receiver.url(), "token": "abc123"}}
    });
    let created = client.post("routing-rule/actions", &action);
    assert_eq!(created.status, 201, "{}", created.text());
    let activated = client.put(&format!("routing-rule/rules/{rule_id}"), &json!({"active": true}));
    assert_eq!(activated.status, 200, "{}", activated.text());
    let _online = answering(&engine, "meter_n1", json!({"result_code": 0}));
    let task_id = create_commands(&client, &["meter_n1".to_owned(), ghost_on(0)], set_level(1));

    let pushes = receiver.wait_for(1, WAIT);
    let body = pushes[0].json();
    assert_eq!(
        (body["resource"].as_str(), body["event"].as_str()),
        (Some("batchtask"), Some("update")),
        "{body}"
    );
    assert_eq!(pushes[0].header("x-push-token"), Some("abc123"), "the action's token");
    let task = &body["notify_data"]["body"];
    assert_eq!(task["task_id"], task_id.as_str(), "{body}");
    assert_eq!(task["task_name"], "batch_1", "{body}");
    assert_eq!(task["task_type"], "createCommands", "{body}");
    assert_eq!(task["status"], "PartialSuccess", "pushed once finished: {body}");
    let progress = &task["task_progress"];
    assert_eq!(
        (&progress["total"], &progress["success"], &progress["fail"]),
        (&json!(2), &json!(1), &json!(1))
    );
    assert_eq!(progress["processing"], 0, "{body}");
    assert_eq!(status_of(&show(&client, &task_id, "")), "PartialSuccess");
}

const SCALE_ONLINE: usize = 2_000;
const SCALE_TARGETS: usize = 30_000;
const SCALE_DEADLINE: Duration = Duration::from_secs(60);

/// Registers `meter_s{n}` for every `n` below [`SCALE_ONLINE`] from several client threads.
fn register_scale_devices(client: &Client) {
    let product = client.post("products", &water_meter());
    assert_eq!(product.status, 201, "{}", product.text());
    let threads: Vec<_> = (0..8)
        .map(|worker| {
            let client = client.clone();
            thread::spawn(move || {
                for n in (worker..SCALE_ONLINE).step_by(8) {
                    let body = json!({"node_id": format!("s{n}"), "product_id": "meter", "auth_info": {"secret": SECRET}});
                    let response = client.post("devices", &body);
                    assert_eq!(response.status, 201, "{}", response.text());
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("a registering thread");
    }
}

/// Logs every scale device in (at most 64 logins at a time), each on its own small thread that
/// answers its one command with `{"result_code":0}` and returns how many it answered.
fn connect_scale_devices(engine: &Engine) -> Vec<JoinHandle<usize>> {
    let (logged_in, logins) = mpsc::channel();
    let mut threads = Vec::with_capacity(SCALE_ONLINE);
    let wait_login = |count: &mut usize| {
        logins.recv_timeout(WAIT).unwrap_or_else(|_| panic!("only {count} devices logged in"));
        *count += 1;
    };
    let mut count = 0;
    for n in 0..SCALE_ONLINE {
        if n >= 64 {
            wait_login(&mut count);
        }
        let (mqtt, logged_in) = (engine.mqtt, logged_in.clone());
        let thread = thread::Builder::new()
            .stack_size(64 * 1024)
            .spawn(move || {
                let device_id = format!("meter_s{n}");
                let mut device = MqttDevice::login(mqtt, &device_id, SECRET);
                logged_in.send(()).expect("the test waits for logins");
                device.answer_commands(&device_id, br#"{"result_code":0}"#, 1, DEVICE_IDLE).len()
            })
            .expect("a device thread");
        threads.push(thread);
    }
    while count < SCALE_ONLINE {
        wait_login(&mut count);
    }
    threads
}

#[test]
fn thirty_thousand_targets_with_two_thousand_online_finish_within_a_minute() {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..Default::default() });
    let client = engine.client_a();
    let setup = Instant::now();
    register_scale_devices(&client);
    let devices = connect_scale_devices(&engine);
    println!("registered and connected {SCALE_ONLINE} devices in {:?}", setup.elapsed());
    // Every 15th target is an online device; the others are not registered.
    let targets: Vec<String> = (0..SCALE_TARGETS)
        .map(|n| if n % 15 == 0 { format!("meter_s{}", n / 15) } else { format!("ghost_{n:05}") })
        .collect();

    let started = Instant::now();
    let task_id = create_commands(&client, &targets, json!({"paras": {"on": true}}));
    let shown = wait_until(&client, &task_id, "limit=1", SCALE_DEADLINE, "the 30,000 targets", |shown| {
        FINAL_STATUSES.contains(&status_of(shown))
    });
    let elapsed = started.elapsed();
    println!("{SCALE_TARGETS} targets ({SCALE_ONLINE} online) finished in {elapsed:?}");
    assert!(elapsed < SCALE_DEADLINE, "took {elapsed:?}");
    assert_eq!(status_of(&shown), "PartialSuccess", "{}", shown["batchtask"]["task_progress"]);
    let counts = ["total", "success", "fail", "processing"].map(|field| progress(&shown, field));
    assert_eq!(counts, [30_000, 2_000, 28_000, 0], "total, success, fail, processing");

    let succeeded = show(&client, &task_id, "task_detail_status=Success&limit=50");
    assert_eq!(succeeded["page"]["count"], SCALE_ONLINE, "{}", succeeded["page"]);
    for detail in succeeded["task_details"].as_array().expect("details") {
        assert!(detail["target"].as_str().is_some_and(|t| t.starts_with("meter_s")), "{detail}");
        assert_success(detail, &json!({"result_code": 0}));
    }
    let failed = show(&client, &task_id, "task_detail_status=Fail&limit=50");
    assert_eq!(failed["page"]["count"], SCALE_TARGETS - SCALE_ONLINE, "{}", failed["page"]);
    for detail in failed["task_details"].as_array().expect("details") {
        assert!(detail["target"].as_str().is_some_and(|t| t.starts_with("ghost_")), "{detail}");
        assert_failed(detail, "IOTDA.014000");
    }
    let answered: usize = devices.into_iter().map(|thread| thread.join().expect("a device thread")).sum();
    assert_eq!(answered, SCALE_ONLINE, "every online device got its command once");
}
