//! Sub-devices in the registry (spec §7.1): AddDevice with `gateway_id` makes an ENDPOINT of
//! an existing direct device of the same project, up to `gateway_sub_devices_max`; ListDevices
//! filters by gateway; a gateway with sub-devices is not deleted; what a gateway's events and
//! the application created or deleted survives kill -9.

use std::time::Duration;

use mqttbytes::QoS;
use serde_json::{json, Value};
use tests::mqtt::MqttDevice;
use tests::{assert_invalid, Engine, EngineOptions};

fn add(client: &tests::Client, node_id: &str, gateway_id: Option<&str>) -> tests::HttpResponse {
    let mut body =
        json!({"node_id": node_id, "product_id": "meter", "auth_info": {"secret": "gateway-secret-1"}});
    if let Some(gateway_id) = gateway_id {
        body["gateway_id"] = json!(gateway_id);
    }
    client.post("devices", &body)
}

#[test]
fn sub_devices_hang_under_a_direct_gateway_of_their_project() {
    let engine = Engine::start(EngineOptions {
        shards: 2,
        config_extra: "gateway_sub_devices_max = 3\n".into(),
        ..Default::default()
    });
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["gw", "other_gw"], "gateway-secret-1");
    for node in ["s1", "s2", "s3"] {
        let added = add(&client, node, Some("meter_gw"));
        assert_eq!(added.status, 201, "{}", added.text());
        assert_eq!(added.json()["node_type"], "ENDPOINT");
        assert_eq!(added.json()["gateway_id"], "meter_gw");
    }
    let shown = client.get("devices/meter_s1").json();
    assert_eq!((&shown["node_type"], &shown["gateway_id"]), (&json!("ENDPOINT"), &json!("meter_gw")));
    assert_eq!(client.get("devices/meter_gw").json()["node_type"], "GATEWAY");

    // The bound, an unknown gateway, a sub-device as gateway, another project's gateway.
    let over = add(&client, "s4", Some("meter_gw"));
    assert_invalid(&over, "gateway_id");
    assert!(over.text().contains("already has 3 sub-devices"), "{}", over.text());
    assert_invalid(&add(&client, "s5", Some("meter_nobody")), "gateway_id");
    let nested = add(&client, "s6", Some("meter_s1"));
    assert_invalid(&nested, "gateway_id");
    assert!(nested.text().contains("one level deep"), "{}", nested.text());
    let product_b = json!({"product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT", "service_capabilities": []});
    let client_b =
        engine.client(tests::PROJECT_B.project_id, tests::Auth::Token(tests::PROJECT_B.token.into()));
    assert_eq!(client_b.post("products", &product_b).status, 201);
    let foreign = client_b.post(
        "devices",
        &json!({"node_id": "b1", "product_id": "meter", "gateway_id": "meter_gw", "auth_info": {"secret": "gateway-secret-1"}}),
    );
    assert_invalid(&foreign, "gateway_id");

    // ListDevices by gateway, paged.
    let page = |query: &str| -> Value { client.get(&format!("devices?gateway_id=meter_gw&{query}")).json() };
    let first = page("limit=2");
    assert_eq!(first["page"]["count"], 3, "{first}");
    let mut seen: Vec<String> = first["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["device_id"].as_str().unwrap().to_owned())
        .collect();
    let marker = first["page"]["marker"].as_str().unwrap().to_owned();
    let second = page(&format!("limit=2&marker={marker}"));
    seen.extend(
        second["devices"].as_array().unwrap().iter().map(|d| d["device_id"].as_str().unwrap().to_owned()),
    );
    seen.sort();
    assert_eq!(seen, ["meter_s1", "meter_s2", "meter_s3"]);
    assert!(first["devices"].as_array().unwrap().iter().all(|d| d["node_type"] == "ENDPOINT"));

    // A gateway with sub-devices is not deleted; once they are gone, it is.
    let refused = client.delete("devices/meter_gw");
    tests::assert_error(&refused, 400, "IOTDA.000006");
    assert!(refused.text().contains("gateway of 3 sub-devices"), "{}", refused.text());
    for node in ["s1", "s2", "s3"] {
        assert_eq!(client.delete(&format!("devices/meter_{node}")).status, 204);
    }
    assert_eq!(client.delete("devices/meter_gw").status, 204);
    assert_eq!(add(&client, "s7", Some("meter_other_gw")).status, 201);
}

#[test]
fn sub_devices_added_and_deleted_by_event_or_rest_survive_kill_9() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions {
        shards: 2,
        config_extra: "gateway_sub_devices_max = 3\n".into(),
        ..Default::default()
    };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    tests::register_meter_devices(&client, &["gw"], "gateway-secret-1");
    assert_eq!(add(&client, "rest1", Some("meter_gw")).status, 201);
    assert_eq!(add(&client, "rest2", Some("meter_gw")).status, 201);
    let mut gateway = MqttDevice::login(engine.mqtt, "meter_gw", "gateway-secret-1");
    let mut event = |event_type: &str, paras: Value| {
        let body = json!({"services": [{"service_id": "$sub_device_manager", "event_type": event_type, "paras": paras}]});
        gateway.publish(
            "$oc/devices/meter_gw/sys/events/up",
            body.to_string().as_bytes(),
            QoS::AtMostOnce,
            0,
        );
        loop {
            let down = gateway.next_publish(Duration::from_secs(10)).expect("the response");
            let body: Value = serde_json::from_slice(&down.payload).unwrap();
            if body["services"][0]["event_type"].as_str().is_some_and(|t| t.ends_with("_response")) {
                return body["services"][0]["paras"].clone();
            }
        }
    };
    let added =
        event("add_sub_device_request", json!({"devices": [{"node_id": "ev1", "product_id": "meter"}]}));
    assert_eq!(added["successful_devices"][0]["device_id"], "meter_ev1", "{added}");
    let deleted = event("delete_sub_device_request", json!({"devices": ["meter_rest1"]}));
    assert_eq!(deleted["successful_devices"], json!(["meter_rest1"]), "{deleted}");
    let online = event(
        "sub_device_update_status",
        json!({"device_statuses": [{"device_id": "meter_ev1", "status": "ONLINE"}]}),
    );
    assert_eq!(online["successful_devices"][0]["device_id"], "meter_ev1", "{online}");
    assert_eq!(client.get("devices/meter_ev1").json()["status"], "ONLINE");

    // Answered means durable: after kill -9 the registry is as the answers said, the children
    // index included (the bound of 3 and the refusal to delete the gateway still hold).
    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    assert_eq!(client.get("devices/meter_rest1").status, 404, "deleted by event");
    // The gateway's session died with the process: its sub-devices are not ONLINE either.
    assert_eq!(client.get("devices/meter_gw").json()["status"], "OFFLINE");
    assert_eq!(client.get("devices/meter_ev1").json()["status"], "OFFLINE");
    for id in ["meter_rest2", "meter_ev1"] {
        let shown = client.get(&format!("devices/{id}")).json();
        assert_eq!(
            (&shown["gateway_id"], &shown["node_type"]),
            (&json!("meter_gw"), &json!("ENDPOINT")),
            "{shown}"
        );
    }
    let children = client.get("devices?gateway_id=meter_gw").json();
    assert_eq!(children["page"]["count"], 2, "{children}");
    assert_eq!(add(&client, "rest3", Some("meter_gw")).status, 201);
    assert_invalid(&add(&client, "rest4", Some("meter_gw")), "gateway_id");
    tests::assert_error(&client.delete("devices/meter_gw"), 400, "IOTDA.000006");
}
