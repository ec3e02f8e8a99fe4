//! Huawei's official Python SDK (`huaweicloudsdkiotda`, unmodified) signs with both
//! `SDK-HMAC-SHA256` and `V11-HMAC-SHA256` and drives products, devices and synchronous device
//! calls (command, property set and get, answered by a simulated device) end to end.
//!
//! The SDK is installed once into `target/test-python-venv` (from PyPI) by the harness, so
//! `cargo test --workspace` stays the only set-up command (see `tests::python`).

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mqttbytes::QoS;
use serde_json::json;
use tests::mqtt::{request_id_of, MqttDevice};
use tests::{Engine, EngineOptions, PROJECT_A};

const SECRET: &str = "sdk-device-secret";

/// Registers `calls_n1` (online, answered by a thread) and `calls_n2` (never connected).
fn online_device(engine: &Engine, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    let client = engine.client_a();
    let product = json!({
        "product_id": "calls", "name": "calls", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water", "service_type": "water",
            "properties": [{"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RW"}],
            "commands": [{"command_name": "ON_OFF", "paras": [
                {"para_name": "value", "data_type": "string", "enum_list": ["ON", "OFF"], "required": true}]}]
        }]
    });
    assert_eq!(client.post("products", &product).status, 201);
    for node in ["n1", "n2"] {
        let body = json!({"node_id": node, "product_id": "calls", "auth_info": {"secret": SECRET}});
        assert_eq!(client.post("devices", &body).status, 201);
    }
    let mut device = MqttDevice::login(engine.mqtt, "calls_n1", SECRET);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let Some(publish) = device.next_publish(Duration::from_millis(200)) else { continue };
            let request_id = request_id_of(&publish.topic).to_owned();
            let (answer_topic, answer) = if publish.topic.contains("/sys/properties/get/") {
                let answer = json!({"services": [{"service_id": "water", "properties": {"level": 5}}]});
                (publish.topic.replace("/get/", "/get/response/"), answer)
            } else if publish.topic.contains("/sys/properties/set/") {
                (publish.topic.replace("/set/", "/set/response/"), json!({"result_code": 0}))
            } else {
                let answer = json!({"result_code": 0, "request_id": request_id});
                (publish.topic.replace("/commands/", "/commands/response/"), answer)
            };
            device.publish(&answer_topic, answer.to_string().as_bytes(), QoS::AtMostOnce, 0);
        }
    })
}

#[test]
fn the_official_python_sdk_works_unmodified_with_both_signatures() {
    let Some(python) = tests::python::python_or_skip(&[("huaweicloudsdkiotda", "huaweicloudsdkiotda")])
    else {
        return;
    };
    let engine = Engine::start(EngineOptions { shards: 2, ..Default::default() });
    let stop = Arc::new(AtomicBool::new(false));
    let device = online_device(&engine, stop.clone());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/official_sdk.py");
    for mode in ["sdk", "v11"] {
        let output = Command::new(&python)
            .arg(&script)
            .arg(format!("http://{}", engine.http))
            .args([PROJECT_A.project_id, PROJECT_A.ak, PROJECT_A.sk, mode, "calls_n1", "calls_n2"])
            .output()
            .expect("running the SDK script");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success()
                && stdout.contains("OFFICIAL SDK OK")
                && stdout.contains("update_properties / list_properties ok"),
            "mode {mode}:\n{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    stop.store(true, Ordering::Relaxed);
    device.join().expect("the device simulator");
}
