//! Huawei's official Python device SDK (`iot_device_sdk_python`, unmodified, vendored under
//! `tests/vendor/`) as a gateway: a subclass of its `AbstractGateway` with three sub-devices
//! reports them ONLINE, gets a command, a property set, a property get and a message for one of
//! them — sent by Huawei's application SDK (`huaweicloudsdkiotda`) — answers through the SDK's
//! `respond_*`, and adds and deletes a sub-device by event. Both SDKs run in
//! `tests/scripts/device_sdk_gateway.py`; the registry is checked here, over REST.
//!
//! ## Port 1883 without editing the SDK
//! The engine's plain MQTT listener binds `127.0.0.N:1883` (`tests::device_sdk`).
//!
//! ## What is checked
//! - `report_batch_status` (all ONLINE) is answered with `sub_device_update_status_response`
//!   naming all three as successful, and the registry shows them ONLINE.
//! - CreateCommand to a sub-device reaches `on_sub_dev_command` with the sub-device as
//!   `device_id` and the command id as request id; the REST answer is the gateway's.
//! - UpdateProperties reaches the gateway and returns its answer — but not through
//!   `on_sub_dev_properties_set`: see [`SDK_ROUTES_SUB_DEVICE_PROPERTY_SETS`].
//! - ListProperties reaches `on_sub_dev_properties_get` and returns the values just set.
//! - CreateMessage reaches `on_sub_dev_message` with the message's id, name and content, and
//!   the message is DELIVERED.
//! - `gtw_add_sub_device` is answered (event id echoed) through the SDK's
//!   `GtwOperateSubDeviceListener` and the registry holds the new sub-device under the gateway;
//!   `gtw_del_sub_device` likewise, and the registry no longer has it (404).
//! - Nothing else reached the gateway's callbacks; when the SDK disconnects, the gateway and
//!   its sub-devices go OFFLINE.

use serde_json::{json, Value};
use tests::device_sdk::{start_engine_on_sdk_port, wait_for_status, SdkScript};
use tests::PROJECT_A;

const SECRET: &str = "sdk-gateway-secret-1";
const PRODUCT_ID: &str = "meter";
const GATEWAY_ID: &str = "meter_gw";
const SUB_DEVICES: [&str; 3] = ["meter_s1", "meter_s2", "meter_s3"];
/// The sub-device the application calls.
const TARGET: &str = "meter_s2";
/// The sub-device the gateway adds, then deletes, by event.
const ADDED_NODE_ID: &str = "s4";
const ADDED_DEVICE_ID: &str = "meter_s4";
/// Event ids the script gives `gtw_add_sub_device` / `gtw_del_sub_device`.
const ADD_EVENT_ID: &str = "add-1";
const DELETE_EVENT_ID: &str = "del-1";
/// Whether the vendored SDK hands a sub-device's property set to `on_sub_dev_properties_set`.
/// At dd0ee5c it does not: `DeviceClient.on_properties_set` builds the `PropSet` from
/// `services` alone, dropping `object_device_id`, so `AbstractGateway` takes it for the
/// gateway's own (`on_properties_set`, `device_id` empty). The engine does send the id
/// (`gateway_calls.rs` checks the wire); turn this on when an SDK update passes it through.
const SDK_ROUTES_SUB_DEVICE_PROPERTY_SETS: bool = false;
fn register_gateway(client: &tests::Client) {
    let product = json!({
        "product_id": PRODUCT_ID, "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water", "service_type": "water",
            "properties": [{"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RW"}],
            "commands": [{"command_name": "VALVE", "paras": [
                {"para_name": "position", "data_type": "string", "enum_list": ["OPEN", "SHUT"], "required": true}]}]
        }]
    });
    tests::register_devices(client, &product, &["gw"], SECRET);
    for device_id in SUB_DEVICES {
        let node_id = device_id.strip_prefix("meter_").expect("meter_ ids");
        let body = json!({"node_id": node_id, "product_id": PRODUCT_ID, "gateway_id": GATEWAY_ID});
        let added = client.post("devices", &body);
        assert_eq!(added.status, 201, "{}", added.text());
    }
}

/// The `device_id`s of a list of `{device_id, ...}` (or of plain ids).
fn device_ids(list: &Value) -> Vec<String> {
    let ids = list.as_array().map(Vec::as_slice).unwrap_or_default().iter();
    ids.map(|entry| entry["device_id"].as_str().or(entry.as_str()).unwrap_or("?").to_owned()).collect()
}

/// `report_batch_status`: answered for all three, and the registry follows.
fn sub_devices_go_online(script: &mut SdkScript, client: &tests::Client) {
    let reported = script.step("statuses_reported");
    let paras = &reported["response"]["paras"];
    script.check(
        device_ids(&paras["successful_devices"]) == SUB_DEVICES
            && paras["failed_devices"].as_array().is_some_and(Vec::is_empty),
        "sub_device_update_status_response does not list exactly the three sub-devices as successful",
    );
    for device_id in SUB_DEVICES {
        let status = wait_for_status(client, device_id, "ONLINE");
        script.check(
            status == "ONLINE",
            &format!("{device_id} is {status} after its gateway reported it ONLINE"),
        );
    }
    script.resume();
}

/// Command, property set and get, message: each reaches the gateway for `TARGET`, each answer
/// reaches the application.
fn sub_device_calls(script: &mut SdkScript, client: &tests::Client, spec: &Value) {
    let command = script.step("command");
    let got = &command["received"];
    script.check(
        got["handler"] == "on_sub_dev_command" && got["device_id"] == TARGET && got["known"] == true,
        &format!("the command did not reach on_sub_dev_command for {TARGET}"),
    );
    script.check(
        got["service_id"] == spec["command"]["service_id"]
            && got["command_name"] == spec["command"]["command_name"]
            && got["paras"] == spec["command"]["paras"],
        "the gateway got another command",
    );
    script
        .check(got["request_id"] == command["command_id"], "the gateway's request id is not the command id");
    let expected = json!({"result_code": 0, "response_name": "VALVE",
        "paras": {"for": TARGET, "echo": spec["command"]["paras"]}});
    script.check(
        command["status_code"] == 200 && command["response"] == expected && command["error_code"].is_null(),
        &format!("CreateCommand did not return 200 with the gateway's answer {expected}"),
    );

    let set = script.step("properties_set");
    let got = &set["received"];
    let (handler, device_id) = if SDK_ROUTES_SUB_DEVICE_PROPERTY_SETS {
        ("on_sub_dev_properties_set", TARGET)
    } else {
        ("on_properties_set", "")
    };
    script.check(
        got["handler"] == handler && got["device_id"] == device_id,
        &format!(
            "the property set did not reach the SDK's {handler} with device_id {device_id:?} \
             (see SDK_ROUTES_SUB_DEVICE_PROPERTY_SETS)"
        ),
    );
    let sent = &spec["properties"][0];
    script.check(
        got["services"][0]["service_id"] == sent["service_id"]
            && got["services"][0]["properties"] == sent["properties"],
        "the gateway got other properties to set",
    );
    let expected = json!({"result_code": 0, "result_desc": format!("set by {handler} for {device_id}")});
    script.check(
        set["status_code"] == 200 && set["response"] == expected && set["error_code"].is_null(),
        &format!("UpdateProperties did not return 200 with the gateway's answer {expected}"),
    );

    let get = script.step("properties_get");
    let got = &get["received"];
    script.check(
        got["handler"] == "on_sub_dev_properties_get"
            && got["device_id"] == TARGET
            && got["known"] == true
            && got["service_id"] == sent["service_id"],
        &format!("the property get did not reach on_sub_dev_properties_get for {TARGET}"),
    );
    let values = &get["response"]["services"][0];
    script.check(
        get["status_code"] == 200
            && values["service_id"] == sent["service_id"]
            && values["properties"] == sent["properties"],
        "ListProperties did not return 200 with the values the gateway answered",
    );
    sub_device_message(script, client, spec);
}

/// CreateMessage reaches `on_sub_dev_message` and is DELIVERED.
fn sub_device_message(script: &mut SdkScript, client: &tests::Client, spec: &Value) {
    let message = script.step("message");
    script.check(
        message["status_code"] == 201 && message["message_id"].is_string(),
        "CreateMessage to the sub-device did not return 201 with a message id",
    );
    let got = &message["received"];
    script.check(
        got["handler"] == "on_sub_dev_message" && got["device_id"] == TARGET && got["known"] == true,
        &format!("the message did not reach on_sub_dev_message for {TARGET}"),
    );
    script.check(
        got["id"] == message["message_id"]
            && got["name"] == spec["message"]["name"]
            && got["content"] == spec["message"]["message"],
        "the gateway got another message (id, name or content)",
    );
    let message_id = message["message_id"].as_str().unwrap_or_default();
    let shown = client.get(&format!("devices/{TARGET}/messages/{message_id}"));
    script.check(
        shown.status == 200 && shown.json()["status"] == "DELIVERED",
        &format!("ShowDeviceMessage after the gateway got it: {} {}", shown.status, shown.text()),
    );
}

/// `gtw_add_sub_device` / `gtw_del_sub_device`: answered through the SDK's listener, and the
/// registry follows each.
fn sub_devices_managed_by_event(script: &mut SdkScript, client: &tests::Client) {
    let added = script.step("sub_device_added");
    script.check(added["event_id"] == ADD_EVENT_ID, "add_sub_device_response did not echo the event id");
    let successful = &added["successful_devices"];
    script.check(
        device_ids(successful) == [ADDED_DEVICE_ID]
            && successful[0]["node_id"] == ADDED_NODE_ID
            && successful[0]["parent_device_id"] == GATEWAY_ID
            && added["failed_devices"].as_array().is_some_and(Vec::is_empty),
        &format!("add_sub_device_response does not list {ADDED_DEVICE_ID} alone, under {GATEWAY_ID}"),
    );
    let shown = client.get(&format!("devices/{ADDED_DEVICE_ID}"));
    let device = shown.json();
    script.check(
        shown.status == 200
            && device["gateway_id"] == GATEWAY_ID
            && device["node_id"] == ADDED_NODE_ID
            && device["device_name"] == "pump"
            && device["product_id"] == PRODUCT_ID,
        &format!("the added sub-device in the registry: {} {}", shown.status, shown.text()),
    );
    script.resume();

    let deleted = script.step("sub_device_deleted");
    script.check(
        deleted["event_id"] == DELETE_EVENT_ID,
        "delete_sub_device_response did not echo the event id",
    );
    script.check(
        deleted["successful_devices"] == json!([ADDED_DEVICE_ID])
            && deleted["failed_devices"].as_array().is_some_and(Vec::is_empty),
        &format!("delete_sub_device_response does not list {ADDED_DEVICE_ID} alone"),
    );
    let shown = client.get(&format!("devices/{ADDED_DEVICE_ID}"));
    script.check(shown.status == 404, &format!("the deleted sub-device: {} {}", shown.status, shown.text()));
    let children = client.get(&format!("devices?gateway_id={GATEWAY_ID}")).json();
    let mut listed = device_ids(&children["devices"]);
    listed.sort();
    script.check(listed == SUB_DEVICES, &format!("the gateway's sub-devices after the delete: {listed:?}"));
    script.resume();
}

#[test]
fn the_official_sdk_gateway_serves_its_sub_devices_and_manages_them_by_event() {
    let Some(python) = tests::python::python_or_skip(&[
        ("paho-mqtt", "paho.mqtt.client"),
        ("schedule", "schedule"),
        ("apscheduler", "apscheduler"),
        ("requests", "requests"),
        ("huaweicloudsdkiotda", "huaweicloudsdkiotda"),
    ]) else {
        return;
    };
    let started = start_engine_on_sdk_port(false);
    let engine = &started.engine;
    let client = engine.client_a();
    register_gateway(&client);
    let spec = json!({
        "mqtt_host": started.host, "gateway_id": GATEWAY_ID, "secret": SECRET,
        "product_id": PRODUCT_ID, "sub_devices": SUB_DEVICES, "target": TARGET,
        "http_endpoint": format!("http://{}", engine.http),
        "project_id": PROJECT_A.project_id, "ak": PROJECT_A.ak, "sk": PROJECT_A.sk,
        "command": {"service_id": "water", "command_name": "VALVE", "paras": {"position": "OPEN"}},
        "properties": [{"service_id": "water", "properties": {"level": 42}}],
        "message": {"name": "greeting", "message": "hello, s2"},
        // The SDK sends unset fields as "": no device id (the engine makes {product}_{node}).
        "added": {"node_id": ADDED_NODE_ID, "device_id": "", "name": "pump", "description": "added by its gateway"},
    });
    // The application SDK talks to 127.0.0.1: no proxy in between.
    let unset = ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"];
    let mut script = SdkScript::spawn(&python, "device_sdk_gateway.py", &spec, &unset);

    let connected = script.step("connected");
    // connect() gives the CONNACK a fixed second; a slow machine may need its listener's word.
    script.check(connected["completed"] == true, "the gateway SDK did not connect");
    let status = wait_for_status(&client, GATEWAY_ID, "ONLINE");
    script.check(status == "ONLINE", &format!("the SDK's gateway is {status} while connected"));
    sub_devices_go_online(&mut script, &client);
    sub_device_calls(&mut script, &client, &spec);
    sub_devices_managed_by_event(&mut script, &client);
    let done = script.step("done");
    script.check(done["disconnected"] == true, "the gateway SDK's destroy() did not end the session");
    script.check(
        done["unexpected"] == json!({}),
        "the gateway's callbacks got something nobody sent (or twice)",
    );
    script.wait_for_exit();

    for device_id in std::iter::once(GATEWAY_ID).chain(SUB_DEVICES) {
        let status = wait_for_status(&client, device_id, "OFFLINE");
        assert_eq!(status, "OFFLINE", "{device_id} after the gateway SDK disconnected");
    }
}
