//! Batch tasks under control: stop (all, or named targets) ends the targets not started as
//! `Stopped`; kill -9 mid-task keeps finished results and fails the rest with `IOTDA.000503`;
//! a finished task pushes `batchtask:update`; and 30,000 targets finish within a minute.

use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::batch::*;
use tests::mqtt::MqttDevice;
use tests::receiver::Receiver;
use tests::{Client, Engine, EngineOptions};

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
