//! An independent MQTT client, Eclipse paho-mqtt (from PyPI), logs in with IoTDA credentials
//! over MQTT 3.1.1 and 5.0, reports properties at QoS 1, is refused another device's filter,
//! and receives its shadow at QoS 1 — against an engine with two shards, so logins are handed
//! to the home shard.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use tests::{Engine, EngineOptions};

#[test]
fn paho_devices_work_over_mqtt_3_1_1_and_5() {
    let Some(python) = tests::python::python_or_skip(&[("paho-mqtt", "paho.mqtt.client")]) else {
        return;
    };
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "method": "RE"}]}]
    });
    assert_eq!(client.post("products", &product).status, 201);
    for node in ["v311", "v5"] {
        let body = json!({"node_id": node, "product_id": "meter", "auth_info": {"secret": "paho-secret-1"}});
        assert_eq!(client.post("devices", &body).status, 201);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/paho_device.py");
    for (device_id, version) in [("meter_v311", "311"), ("meter_v5", "5")] {
        let output = Command::new(&python)
            .arg(&script)
            .args([&engine.mqtt.ip().to_string(), &engine.mqtt.port().to_string()])
            .args([device_id, "paho-secret-1", "meter_other", version])
            .output()
            .expect("running the paho script");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("PAHO OK"),
            "MQTT {version}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let shadow = client.get(&format!("devices/{device_id}/shadow")).json();
        assert_eq!(shadow["shadow"][0]["reported"]["properties"]["level"], 7, "{shadow}");
    }
}
