//! Downlink messages, their record: a device keeps its 20 latest messages, List/Show give the
//! whole message object, unknown ones are 404, every invalid field is a 400 naming it, and
//! `/metrics` counts statuses. Delivery: `device_messages.rs`.

use serde_json::{json, Value};
use tests::messages::*;
use tests::mqtt::MqttDevice;
use tests::{assert_error, http_request, Auth, Engine, HttpResponse, PROJECT_B};

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
