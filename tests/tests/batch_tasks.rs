//! Batch tasks (spec §2.8): `createCommands` and `createMessages` over a list of device ids,
//! each target run like a single CreateCommand / CreateMessage on its home shard. The task is
//! created (201, `Initializing`), runs at once, ends `Success`, `Fail` or `PartialSuccess`, and
//! shows every target's outcome (filtered and paged); it can be listed by type and deleted once
//! finished. Stop, restart, push and scale: `batch_task_control.rs`.

use serde_json::{json, Value};
use tests::batch::*;
use tests::{assert_error, assert_invalid};

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
