//! Devices over REST (spec §2.4): add with its defaults (id, status, generated secret), show,
//! list with paging and filters and never a secret, update, delete, duplicates, unknown
//! products, the validation rules (each broken rule is 400 `IOTDA.000006` naming the field),
//! and isolation between projects.

use serde_json::{json, Value};
use tests::{assert_invalid, Auth, Client, Engine, EngineOptions, HttpResponse, PROJECT_B};

fn add_product(client: &Client, product_id: &str) {
    let body = json!({
        "product_id": product_id,
        "name": format!("{product_id} product"),
        "device_type": "Meter",
        "protocol_type": "MQTT",
        "service_capabilities": [],
    });
    let answer = client.post("products", &body);
    assert_eq!(answer.status, 201, "{}", answer.text());
}

fn added(client: &Client, body: &Value) -> Value {
    let answer = client.post("devices", body);
    assert_eq!(answer.status, 201, "{}", answer.text());
    answer.json()
}

fn device_ids(list: &Value) -> Vec<String> {
    let devices = list["devices"].as_array().expect("a devices array");
    devices.iter().map(|d| d["device_id"].as_str().expect("device_id").to_owned()).collect()
}

fn assert_no_device(answer: &HttpResponse) {
    assert_eq!(answer.status, 404, "{}", answer.text());
    assert_eq!(answer.error_code(), "IOTDA.014000");
}

fn is_valid_generated_secret(secret: &str) -> bool {
    (8..=32).contains(&secret.len())
        && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[test]
fn a_device_added_with_only_product_and_node_gets_the_defaults() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");

    let device = added(&client, &json!({"product_id": "meter", "node_id": "node-1"}));

    assert_eq!(device["device_id"], "meter_node-1");
    assert_eq!(device["node_id"], "node-1");
    assert_eq!(device["product_id"], "meter");
    assert_eq!(device["product_name"], "meter product");
    assert_eq!(device["status"], "INACTIVE");
    assert_eq!(device["gateway_id"], "meter_node-1", "a direct device is its own gateway");
    assert_eq!(device["node_type"], "GATEWAY");
    assert_eq!(device["app_id"], "default");
    assert_eq!(device["auth_info"]["auth_type"], "SECRET");
    let secret = device["auth_info"]["secret"].as_str().expect("a generated secret");
    assert!(is_valid_generated_secret(secret), "generated secret {secret:?}");
    let create_time = device["create_time"].as_str().expect("create_time");
    assert!(protocol::time::parse_sdk_date(create_time).is_ok(), "create_time {create_time} is not T1");

    let other = added(&client, &json!({"product_id": "meter", "node_id": "node-2"}));
    assert_ne!(other["auth_info"]["secret"], device["auth_info"]["secret"], "secrets are not reused");
}

#[test]
fn a_device_added_with_its_own_id_and_secret_is_shown_as_given() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let body = json!({
        "device_id": "kitchen-meter",
        "node_id": "IMEI-861234",
        "product_id": "meter",
        "device_name": "Kitchen meter",
        "description": "under the sink",
        "auth_info": {"auth_type": "SECRET", "secret": "s3cret_Kitchen-01", "secure_access": true},
        "extension_info": {"floor": 2},
    });

    let device = added(&client, &body);
    let shown = client.get("devices/kitchen-meter");

    assert_eq!(shown.status, 200, "{}", shown.text());
    let shown = shown.json();
    assert_eq!(shown, device);
    assert_eq!(shown["device_id"], "kitchen-meter");
    assert_eq!(shown["node_id"], "IMEI-861234");
    assert_eq!(shown["device_name"], "Kitchen meter");
    assert_eq!(shown["description"], "under the sink");
    assert_eq!(shown["auth_info"]["secret"], "s3cret_Kitchen-01");
    assert_eq!(shown["auth_info"]["secure_access"], true);
    assert_eq!(shown["extension_info"], json!({"floor": 2}));
    assert_eq!(shown["status"], "INACTIVE");
}

#[test]
fn lists_never_carry_a_secret() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let mut secrets = vec!["given-secret-0001".to_owned()];
    let body = json!({"product_id": "meter", "node_id": "n0", "auth_info": {"secret": secrets[0]}});
    added(&client, &body);
    for node in ["n1", "n2"] {
        let device = added(&client, &json!({"product_id": "meter", "node_id": node}));
        secrets.push(device["auth_info"]["secret"].as_str().unwrap().to_owned());
    }

    for query in ["devices", "devices?limit=1", "devices?product_id=meter", "devices?node_id=n0"] {
        let list = client.get(query);
        assert_eq!(list.status, 200, "{}", list.text());
        let text = list.text();
        assert!(!text.contains("secret"), "{query}: {text}");
        assert!(!text.contains("auth_info"), "{query}: {text}");
        for secret in &secrets {
            assert!(!text.contains(secret.as_str()), "{query} leaks a secret: {text}");
        }
    }
}

#[test]
fn lists_page_newest_first_through_markers_and_offsets() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let created: Vec<String> = (0..7).map(|n| format!("meter_node-{n}")).collect();
    for n in 0..7 {
        added(&client, &json!({"product_id": "meter", "node_id": format!("node-{n}")}));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    let mut listed = Vec::new();
    let mut target = "devices?limit=3".to_owned();
    for expected_len in [3, 3, 1] {
        let page = client.get(&target);
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        assert_eq!(page["page"]["count"], 7, "count is every match, not this page");
        assert_eq!(device_ids(&page).len(), expected_len);
        listed.extend(device_ids(&page));
        let marker = page["page"]["marker"].as_str().expect("a marker for a non-empty page");
        target = format!("devices?limit=3&marker={marker}");
    }
    assert_eq!(listed, newest_first);
    assert!(device_ids(&client.get(&target).json()).is_empty(), "nothing after the oldest");

    assert_eq!(device_ids(&client.get("devices?limit=2&offset=4").json()), newest_first[4..6]);
    assert_eq!(device_ids(&client.get("devices?offset=6").json()), newest_first[6..]);
    assert!(device_ids(&client.get("devices?offset=7").json()).is_empty());

    for (query, error_code) in [
        ("limit=0", "IOTDA.000017"),
        ("limit=51", "IOTDA.000017"),
        ("marker=12345", "IOTDA.000018"),
        ("offset=501", "IOTDA.000006"),
    ] {
        let answer = client.get(&format!("devices?{query}"));
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
        assert_eq!(answer.error_code(), error_code, "{query}");
    }
}

#[test]
fn lists_filter_by_product_and_node() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    add_product(&client, "valve");
    for (product_id, node_id) in [("meter", "a"), ("valve", "a"), ("meter", "b"), ("valve", "c")] {
        added(&client, &json!({"product_id": product_id, "node_id": node_id}));
    }

    let meters = client.get("devices?product_id=meter").json();
    assert_eq!(device_ids(&meters), ["meter_b", "meter_a"]);
    assert_eq!(meters["page"]["count"], 2);
    let node_a = client.get("devices?node_id=a").json();
    assert_eq!(device_ids(&node_a), ["valve_a", "meter_a"]);
    let valve_c = client.get("devices?product_id=valve&node_id=c").json();
    assert_eq!(device_ids(&valve_c), ["valve_c"]);
    let nothing = client.get("devices?product_id=meter&node_id=c").json();
    assert_eq!(nothing["page"]["count"], 0);
    assert!(device_ids(&nothing).is_empty());
}

#[test]
fn update_changes_name_description_and_extension_info_only() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let before = added(&client, &json!({"product_id": "meter", "node_id": "node-1", "description": "old"}));

    let answer = client.put(
        "devices/meter_node-1",
        &json!({"device_name": "Hall meter", "description": "by the door", "extension_info": {"room": "hall"}}),
    );

    assert_eq!(answer.status, 200, "{}", answer.text());
    let after = answer.json();
    assert_eq!(after["device_name"], "Hall meter");
    assert_eq!(after["description"], "by the door");
    assert_eq!(after["extension_info"], json!({"room": "hall"}));
    for unchanged in ["device_id", "node_id", "product_id", "status", "create_time"] {
        assert_eq!(after[unchanged], before[unchanged], "{unchanged}");
    }
    assert_eq!(after["auth_info"]["secret"], before["auth_info"]["secret"]);
    assert_eq!(client.get("devices/meter_node-1").json(), after);

    let secret_change =
        client.put("devices/meter_node-1", &json!({"auth_info": {"secret": "new-secret-123"}}));
    assert_invalid(&secret_change, "auth_info.secret");
    assert!(!secret_change.text().contains("new-secret-123"), "the refused secret is not echoed");
    assert_invalid(
        &client.put("devices/meter_node-1", &json!({"device_name": "n".repeat(257)})),
        "device_name",
    );
    let shown = client.get("devices/meter_node-1").json();
    assert_eq!(shown["auth_info"]["secret"], before["auth_info"]["secret"], "refused updates change nothing");
    assert_eq!(shown["device_name"], "Hall meter");

    assert_no_device(&client.put("devices/no-such-device", &json!({"device_name": "x"})));
}

#[test]
fn a_deleted_device_is_gone() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    added(&client, &json!({"product_id": "meter", "node_id": "node-1"}));
    added(&client, &json!({"product_id": "meter", "node_id": "node-2"}));

    let answer = client.delete("devices/meter_node-1");

    assert_eq!(answer.status, 204, "{}", answer.text());
    assert!(answer.body.is_empty());
    assert_no_device(&client.get("devices/meter_node-1"));
    assert_no_device(&client.delete("devices/meter_node-1"));
    assert_no_device(&client.delete("devices/never-existed"));
    assert_eq!(device_ids(&client.get("devices").json()), ["meter_node-2"]);
    added(&client, &json!({"product_id": "meter", "node_id": "node-1"}));
}

#[test]
fn a_duplicate_device_or_an_unknown_product_is_refused() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let original = added(&client, &json!({"product_id": "meter", "node_id": "node-1"}));

    let again = client.post("devices", &json!({"product_id": "meter", "node_id": "node-1"}));
    assert_eq!(again.status, 400, "{}", again.text());
    assert_eq!(again.error_code(), "IOTDA.014031");
    let same_id =
        client.post("devices", &json!({"device_id": "meter_node-1", "product_id": "meter", "node_id": "x"}));
    assert_eq!(same_id.status, 400, "{}", same_id.text());
    assert_eq!(same_id.error_code(), "IOTDA.014031");
    assert_eq!(client.get("devices/meter_node-1").json(), original, "the original is kept");

    let orphan = client.post("devices", &json!({"product_id": "no-such-product", "node_id": "node-1"}));
    assert_eq!(orphan.status, 404, "{}", orphan.text());
    assert_eq!(orphan.error_code(), "IOTDA.013000");
    assert_no_device(&client.get("devices/no-such-product_node-1"));
}

#[test]
fn each_broken_rule_is_refused_naming_its_field() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    let cases: Vec<(&str, Value)> = vec![
        ("node_id", json!({"product_id": "meter"})),
        ("node_id", json!({"product_id": "meter", "node_id": "bad node!"})),
        ("node_id", json!({"product_id": "meter", "node_id": "n".repeat(65)})),
        ("product_id", json!({"node_id": "node-1"})),
        ("product_id", json!({"product_id": "bad/product", "node_id": "node-1"})),
        ("device_id", json!({"device_id": "bad id", "product_id": "meter", "node_id": "node-1"})),
        ("device_id", json!({"device_id": "d".repeat(129), "product_id": "meter", "node_id": "node-1"})),
        ("device_name", json!({"product_id": "meter", "node_id": "node-1", "device_name": "n".repeat(257)})),
        ("description", json!({"product_id": "meter", "node_id": "node-1", "description": "d".repeat(2049)})),
        (
            "auth_info.secret",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"secret": "short"}}),
        ),
        (
            "auth_info.secret",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"secret": "s".repeat(33)}}),
        ),
        (
            "auth_info.secret",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"secret": "no spaces here"}}),
        ),
        (
            "auth_info.auth_type",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"auth_type": "TOKEN"}}),
        ),
        (
            "auth_info.fingerprint",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"auth_type": "CERTIFICATES"}}),
        ),
        (
            "auth_info.timeout",
            json!({"product_id": "meter", "node_id": "node-1", "auth_info": {"timeout": -1}}),
        ),
        (
            "extension_info",
            json!({"product_id": "meter", "node_id": "node-1", "extension_info": {"blob": "x".repeat(1100)}}),
        ),
        ("gateway_id", json!({"product_id": "meter", "node_id": "node-1", "gateway_id": "bad gateway"})),
    ];

    for (field, body) in &cases {
        let answer = client.post("devices", body);
        assert_invalid(&answer, field);
        if let Some(secret) = body["auth_info"]["secret"].as_str() {
            assert!(!answer.text().contains(secret), "a refused secret is echoed: {}", answer.text());
        }
    }
    assert_eq!(client.get("devices").json()["page"]["count"], 0, "no broken device was stored");
}

#[test]
fn bodies_that_are_not_the_json_expected_are_400_iotda_000008() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");
    added(&client, &json!({"product_id": "meter", "node_id": "node-1"}));

    for (method, path, body) in [
        ("POST", "devices", &br#"{"product_id": "meter", "node_id": "#[..]),
        ("POST", "devices", br#"{"product_id": "meter", "node_id": 42}"#),
        ("PUT", "devices/meter_node-1", br#"{"device_name": "#),
        ("PUT", "devices/meter_node-1", br#"{"device_name": ["a", "list"]}"#),
    ] {
        let answer = client.call(method, path, body);
        assert_eq!(answer.status, 400, "{method} {}: {}", String::from_utf8_lossy(body), answer.text());
        assert_eq!(answer.error_code(), "IOTDA.000008", "{method} {}", String::from_utf8_lossy(body));
    }
}

/// Regression: serde maps a JSON array onto a struct's fields by position, so
/// `[null, "node-1", "meter"]` used to register device `meter_node-1`.
#[test]
fn a_json_array_is_not_a_device() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    add_product(&client, "meter");

    let answer = client.call("POST", "devices", br#"[null, "node-1", "meter"]"#);

    assert_eq!(answer.status, 400, "{}", answer.text());
    assert_eq!(answer.error_code(), "IOTDA.000008");
    assert_no_device(&client.get("devices/meter_node-1"));
}

#[test]
fn another_project_cannot_see_or_touch_a_device() {
    let engine = Engine::start(EngineOptions::default());
    let project_a = engine.client_a();
    let project_b = engine.client(PROJECT_B.project_id, Auth::Token(PROJECT_B.token.into()));
    add_product(&project_a, "meter");
    let device = added(&project_a, &json!({"product_id": "meter", "node_id": "node-1"}));

    assert_no_device(&project_b.get("devices/meter_node-1"));
    assert_no_device(&project_b.put("devices/meter_node-1", &json!({"device_name": "mine now"})));
    assert_no_device(&project_b.delete("devices/meter_node-1"));
    let listed = project_b.get("devices").json();
    assert_eq!(listed["page"]["count"], 0);
    assert!(device_ids(&listed).is_empty());

    assert_eq!(project_a.get("devices/meter_node-1").json(), device, "A's device untouched");
}
