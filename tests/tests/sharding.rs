//! Devices spread over two shards behave as one table: each device is found where it lives,
//! and a list merges both shards into one newest-first order that pages through markers
//! without losing or repeating a device, before and after deletes.

use serde_json::{json, Value};
use tests::{Client, Engine, EngineOptions};

const SHARDS: usize = 2;
const DEVICES: usize = 40;

fn device_ids(list: &Value) -> Vec<String> {
    let devices = list["devices"].as_array().expect("a devices array");
    devices.iter().map(|d| d["device_id"].as_str().expect("device_id").to_owned()).collect()
}

/// Every device through pages of `limit`, following `page.marker`; also checks that each
/// page reports `expected_count` matches in all.
fn list_all(client: &Client, limit: usize, expected_count: usize) -> Vec<String> {
    let mut listed = Vec::new();
    let mut target = format!("devices?limit={limit}");
    for _ in 0..=expected_count / limit {
        let page = client.get(&target);
        assert_eq!(page.status, 200, "{target}: {}", page.text());
        let page = page.json();
        assert_eq!(page["page"]["count"], expected_count, "{target}");
        let ids = device_ids(&page);
        if ids.is_empty() {
            return listed;
        }
        listed.extend(ids);
        let marker = page["page"]["marker"].as_str().expect("a marker for a non-empty page");
        target = format!("devices?limit={limit}&marker={marker}");
    }
    assert!(device_ids(&client.get(&target).json()).is_empty(), "more pages than devices");
    listed
}

#[test]
fn devices_on_two_shards_list_as_one_table() {
    let engine = Engine::start(EngineOptions { shards: SHARDS, ..EngineOptions::default() });
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter",
        "name": "Meter",
        "device_type": "Meter",
        "protocol_type": "MQTT",
        "service_capabilities": [],
    });
    assert_eq!(client.post("products", &product).status, 201);
    let created: Vec<String> = (0..DEVICES).map(|n| format!("meter_node-{n:02}")).collect();
    let mut per_shard = [0usize; SHARDS];
    for device_id in &created {
        per_shard[protocol::routing::home_shard(device_id, SHARDS)] += 1;
    }
    assert!(per_shard.iter().all(|&count| count > 0), "the test data must span both shards: {per_shard:?}");

    for n in 0..DEVICES {
        let answer =
            client.post("devices", &json!({"product_id": "meter", "node_id": format!("node-{n:02}")}));
        assert_eq!(answer.status, 201, "{}", answer.text());
    }
    for device_id in &created {
        let answer = client.get(&format!("devices/{device_id}"));
        assert_eq!(answer.status, 200, "{device_id}: {}", answer.text());
        assert_eq!(answer.json()["device_id"], device_id.as_str());
    }

    let newest_first: Vec<String> = created.iter().rev().cloned().collect();
    let one_page = client.get("devices?limit=50").json();
    assert_eq!(one_page["page"]["count"], DEVICES);
    assert_eq!(device_ids(&one_page), newest_first);
    assert_eq!(list_all(&client, 7, DEVICES), newest_first, "small pages merge the shards the same way");

    let (deleted, kept): (Vec<_>, Vec<_>) = created.iter().enumerate().partition(|(n, _)| n % 2 == 0);
    for (_, device_id) in &deleted {
        let answer = client.delete(&format!("devices/{device_id}"));
        assert_eq!(answer.status, 204, "{device_id}: {}", answer.text());
    }
    let kept_newest_first: Vec<String> = kept.iter().rev().map(|(_, id)| (*id).clone()).collect();
    assert_eq!(list_all(&client, 50, DEVICES / 2), kept_newest_first);
    assert_eq!(list_all(&client, 3, DEVICES / 2), kept_newest_first);
    for (_, device_id) in &deleted {
        let answer = client.get(&format!("devices/{device_id}"));
        assert_eq!(answer.status, 404, "{device_id}: {}", answer.text());
        assert_eq!(answer.error_code(), "IOTDA.014000");
    }
}
