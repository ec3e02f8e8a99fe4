//! IoTDA device login over MQTT (spec §1.2): both signature types log in on the device's home
//! shard whichever shard accepted the socket; every CONNACK refusal code; ONLINE/OFFLINE
//! status with its times; one connection per device (takeover); deleting a device disconnects it.

use std::time::Duration;

use mqttbytes::v4;
use protocol::routing::home_shard;
use serde_json::json;
use tests::mqtt::{iotda_connect, MqttDevice};
use tests::{Client, Engine, EngineOptions};

const SECRET: &str = "device-secret-1";

fn register<S: AsRef<str>>(client: &Client, node_ids: &[S]) {
    tests::register_meter_devices(client, node_ids, SECRET);
}

#[test]
fn both_signature_types_log_in_and_status_follows_the_connection() {
    let engine = Engine::start(EngineOptions::default());
    let client = engine.client_a();
    register(&client, &["n1"]);
    assert_eq!(client.get("devices/meter_n1").json()["status"], "INACTIVE");
    for signature_type in [0, 1] {
        let (mut device, code) =
            MqttDevice::connect(engine.mqtt, &iotda_connect("meter_n1", SECRET, signature_type));
        assert_eq!(code, 0, "signature type {signature_type}");
        assert!(device.ping(), "PINGREQ is answered");
        let online = tests::await_status(&client, "meter_n1", "ONLINE");
        assert!(online["active_time"].as_str().is_some_and(|t| t.ends_with('Z')), "{online}");
        assert!(online["connection_status_update_time"].is_string(), "{online}");
        device.send(|out| {
            v4::Disconnect.write(out).unwrap();
        });
        assert!(device.is_closed_within(Duration::from_secs(10)));
        let offline = tests::await_status(&client, "meter_n1", "OFFLINE");
        assert_eq!(offline["active_time"], online["active_time"], "active_time is the first login's");
    }
}

#[test]
fn devices_log_in_on_their_home_shard_whichever_shard_accepts() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let node_ids: Vec<String> = (0..16).map(|n| format!("n{n}")).collect();
    register(&client, &node_ids);
    let homes: Vec<usize> = node_ids.iter().map(|n| home_shard(&format!("meter_{n}"), 2)).collect();
    assert!(homes.contains(&0) && homes.contains(&1), "the devices live on both shards");
    // The kernel spreads the 16 sockets over both shards, so about half of them are accepted
    // by the shard that is not the device's home and must be handed over.
    let mut devices: Vec<MqttDevice> =
        node_ids.iter().map(|n| MqttDevice::login(engine.mqtt, &format!("meter_{n}"), SECRET)).collect();
    for device in &mut devices {
        assert!(device.ping());
    }
    for node_id in &node_ids {
        tests::await_status(&client, &format!("meter_{node_id}"), "ONLINE");
    }
}

#[test]
fn every_refusal_has_its_connack_code() {
    let engine = Engine::start(EngineOptions::default());
    register(&engine.client_a(), &["n1"]);
    let certificate_device = json!({
        "node_id": "x509", "product_id": "meter",
        "auth_info": {"auth_type": "CERTIFICATES", "fingerprint": "a".repeat(40)}
    });
    assert_eq!(engine.client_a().post("devices", &certificate_device).status, 201);
    let good = iotda_connect("meter_n1", SECRET, 1);
    let cases: Vec<(&str, v4::Connect, u8)> = vec![
        ("malformed clientId", v4::Connect { client_id: "meter_n1".into(), ..good.clone() }, 2),
        ("keep-alive below 30 s", v4::Connect { keep_alive: 29, ..good.clone() }, 2),
        ("keep-alive above 1200 s", v4::Connect { keep_alive: 1201, ..good.clone() }, 2),
        ("wrong password", iotda_connect("meter_n1", "not-the-secret", 1), 4),
        ("unknown device", iotda_connect("meter_nobody", SECRET, 1), 4),
        (
            "a CERTIFICATES device without TLS (no certificate: spec §7.2)",
            iotda_connect("meter_x509", SECRET, 1),
            4,
        ),
        (
            "username is another device",
            {
                let mut connect = good.clone();
                connect.set_login("meter_other".to_owned(), connect.login.clone().unwrap().password);
                connect
            },
            4,
        ),
    ];
    for (case, connect, expected) in cases {
        let (mut device, code) = MqttDevice::connect(engine.mqtt, &connect);
        assert_eq!(code, expected, "{case}");
        assert!(device.is_closed_within(Duration::from_secs(10)), "{case}: the connection is closed");
    }
    assert_eq!(
        engine.client_a().get("devices/meter_n1").json()["status"],
        "INACTIVE",
        "no refused login activates it"
    );
}

#[test]
fn a_new_login_takes_over_and_deleting_the_device_disconnects_it() {
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    register(&client, &["n1"]);
    let mut first = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    let mut second = MqttDevice::login(engine.mqtt, "meter_n1", SECRET);
    assert!(first.is_closed_within(Duration::from_secs(10)), "the older connection is closed");
    assert!(second.ping(), "the newer one is served");
    assert_eq!(
        tests::await_status(&client, "meter_n1", "ONLINE")["status"],
        "ONLINE",
        "the takeover keeps it ONLINE"
    );
    assert_eq!(client.delete("devices/meter_n1").status, 204);
    assert!(second.is_closed_within(Duration::from_secs(10)), "a deleted device is disconnected");
    let (_, code) = MqttDevice::connect(engine.mqtt, &iotda_connect("meter_n1", SECRET, 1));
    assert_eq!(code, 4, "and cannot log in again");
}
