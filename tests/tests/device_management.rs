//! Freezing a device and resetting its secret (spec §7.3), end to end: what happens to its
//! live session, its logins, and calls and messages to it — and that both survive kill -9.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::mqtt::{iotda_connect, MqttDevice};
use tests::{assert_error, assert_invalid, register_meter_devices, Engine, EngineOptions};

const SECRET: &str = "managed-secret-1";

fn login_code(engine: &Engine, device_id: &str, secret: &str) -> u8 {
    MqttDevice::connect(engine.mqtt, &iotda_connect(device_id, secret, 1)).1
}

#[test]
fn a_frozen_device_is_cut_off_refused_and_stays_frozen_across_kill_9_until_unfrozen() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, log_filter: Some("info".into()), ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    register_meter_devices(&client, &["ice", "other"], SECRET);
    let mut device = MqttDevice::login(engine.mqtt, "meter_ice", SECRET);
    let mut other = MqttDevice::login(engine.mqtt, "meter_other", SECRET);
    tests::await_status(&client, "meter_ice", "ONLINE");

    // A command waiting for the device's answer when it is frozen fails at once (403 frozen).
    let frozen = std::thread::scope(|scope| {
        let waiting = scope.spawn(|| client.post("devices/meter_ice/commands", &json!({"paras": {}})));
        let command = device.next_publish(Duration::from_secs(10)).expect("the command");
        assert!(command.topic.contains("/sys/commands/"), "{}", command.topic);
        let started = Instant::now();
        let frozen = client.post("devices/meter_ice/freeze", &json!(null));
        let waiting = waiting.join().unwrap();
        assert_error(&waiting, 403, "IOTDA.014016");
        assert!(started.elapsed() < Duration::from_secs(5), "the waiting call ran to its deadline");
        frozen
    });
    assert_eq!(frozen.status, 204, "{}", frozen.text());
    assert!(device.is_closed_within(Duration::from_secs(5)), "the frozen device's session is still up");
    engine
        .wait_for_log(&["meter_ice", "device session ended: the device was frozen"], Duration::from_secs(5));
    tests::await_status(&client, "meter_ice", "FROZEN");
    assert_eq!(login_code(&engine, "meter_ice", SECRET), 5);
    let command = client.post("devices/meter_ice/commands", &json!({"paras": {}}));
    assert_error(&command, 403, "IOTDA.014016");
    assert!(command.text().contains("frozen"), "{}", command.text());
    let message = client.post("devices/meter_ice/messages", &json!({"message": "hello"}));
    assert_error(&message, 403, "IOTDA.014016");
    assert_eq!(
        client.post("devices/meter_ice/freeze", &json!(null)).status,
        204,
        "freezing twice is no error"
    );
    assert!(other.ping(), "another device was disturbed");

    // Durable: after kill -9 the device is still frozen.
    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    assert_eq!(client.get("devices/meter_ice").json()["status"], "FROZEN");
    assert_eq!(login_code(&engine, "meter_ice", SECRET), 5);

    assert_eq!(client.post("devices/meter_ice/unfreeze", &json!(null)).status, 204);
    assert_eq!(client.get("devices/meter_ice").json()["status"], "OFFLINE");
    assert_error(&client.post("devices/meter_ice/unfreeze", &json!(null)), 400, "IOTDA.014040");
    assert_error(&client.post("devices/meter_none/freeze", &json!(null)), 404, "IOTDA.014000");
    let mut back = MqttDevice::login(engine.mqtt, "meter_ice", SECRET);
    tests::await_status(&client, "meter_ice", "ONLINE");
    assert!(back.ping());
}

#[test]
fn reset_secret_replaces_or_adds_a_secret_and_honours_force_disconnect() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let options = EngineOptions { shards: 2, ..Default::default() };
    let mut engine = Engine::start_on(&data_dir, &options).unwrap();
    let client = engine.client_a();
    register_meter_devices(&client, &["key"], SECRET);
    let reset =
        |body: serde_json::Value| client.post("devices/meter_key/action?action_id=resetSecret", &body);

    // A given secret, without force_disconnect: the session stays, the old secret is dead.
    let mut device = MqttDevice::login(engine.mqtt, "meter_key", SECRET);
    let answer = reset(json!({"secret": "second-secret-2"}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body = answer.json();
    assert_eq!(
        (&body["device_id"], &body["secret"], &body["secret_type"]),
        (&json!("meter_key"), &json!("second-secret-2"), &json!("PRIMARY"))
    );
    assert!(device.ping(), "a reset without force_disconnect ended the session");
    assert_eq!(login_code(&engine, "meter_key", SECRET), 4, "the old secret still works");

    // A generated secret, with force_disconnect.
    let mut device = MqttDevice::login(engine.mqtt, "meter_key", "second-secret-2");
    let answer = reset(json!({"force_disconnect": true}));
    assert_eq!(answer.status, 200, "{}", answer.text());
    let generated = answer.json()["secret"].as_str().unwrap().to_owned();
    assert!(generated.len() >= 8 && generated != "second-secret-2", "{generated}");
    assert!(device.is_closed_within(Duration::from_secs(5)), "force_disconnect left the session up");
    assert_eq!(login_code(&engine, "meter_key", "second-secret-2"), 4);
    drop(MqttDevice::login(engine.mqtt, "meter_key", &generated));

    // A secondary secret: both log in.
    let answer = reset(json!({"secret": "standby-secret-3", "secret_type": "SECONDARY"}));
    assert_eq!(answer.json()["secret_type"], "SECONDARY", "{}", answer.text());
    drop(MqttDevice::login(engine.mqtt, "meter_key", "standby-secret-3"));
    drop(MqttDevice::login(engine.mqtt, "meter_key", &generated));
    assert_eq!(login_code(&engine, "meter_key", "neither-secret-4"), 4);
    let listed = client.get("devices").text();
    assert!(!listed.contains("standby-secret-3") && !listed.contains(&generated), "a list shows a secret");

    assert_invalid(&reset(json!({"secret": "short"})), "secret");
    assert_invalid(&reset(json!({"secret_type": "TERTIARY"})), "secret_type");
    let certificate = json!({"node_id": "x509", "product_id": "meter",
        "auth_info": {"auth_type": "CERTIFICATES", "fingerprint": "ab".repeat(20)}});
    assert_eq!(client.post("devices", &certificate).status, 201);
    assert_invalid(&client.post("devices/meter_x509/action?action_id=resetSecret", &json!({})), "secret");
    assert_invalid(&client.post("devices/meter_key/action?action_id=reboot", &json!({})), "action_id");
    assert_error(
        &client.post("devices/meter_none/action?action_id=resetSecret", &json!({})),
        404,
        "IOTDA.014000",
    );

    // Answered 200 means durable: after kill -9 the new secrets work and the old one does not.
    engine.kill9();
    let engine = Engine::start_on(&data_dir, &options).unwrap();
    drop(MqttDevice::login(engine.mqtt, "meter_key", &generated));
    drop(MqttDevice::login(engine.mqtt, "meter_key", "standby-secret-3"));
    assert_eq!(login_code(&engine, "meter_key", "second-secret-2"), 4);
}
