//! The operator console in a real browser: headless Chromium (Debian's packages) driven by
//! Selenium (PyPI) through `tests/scripts/console_browser.py`, against the real engine, with
//! paho-mqtt devices — sign in, a device turning ONLINE without a reload, a command through the
//! dialog generated from the product model (answered, timed out, refused by the model), a
//! message PENDING then DELIVERED, a batch task to its end, a device name and a message body
//! that are markup shown as text, a wrong token refused, sign-out forgetting the token.
//! Screenshots of every page land in `target/console-screenshots/`.

use std::path::Path;
use std::process::Command;

use serde_json::json;
use tests::{Engine, EngineOptions, PROJECT_A};

const SECRET: &str = "console-secret-1";
/// Long enough for a debug engine under a browser, short enough to wait for in a test.
const COMMAND_TIMEOUT_MS: u64 = 3000;

#[test]
fn the_console_drives_the_engine_in_a_real_browser() {
    let Some((chromium, chromedriver)) = tests::browser::chromium_or_skip() else { return };
    let Some(python) =
        tests::python::python_or_skip(&[("selenium", "selenium"), ("paho-mqtt", "paho.mqtt.client")])
    else {
        return;
    };
    let engine = Engine::start(EngineOptions {
        shards: 2,
        args: vec!["--command-timeout-ms".into(), COMMAND_TIMEOUT_MS.to_string()],
        ..Default::default()
    });
    let client = engine.client_a();
    let product = json!({
        "product_id": "meter", "name": "Water meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{"service_id": "water", "service_type": "Water",
            "properties": [{"property_name": "level", "data_type": "int", "min": "0", "max": "100", "method": "RW"}],
            "commands": [{"command_name": "SET_LEVEL",
                "paras": [{"para_name": "value", "data_type": "int", "min": "0", "max": "100", "required": true}]}]}]
    });
    assert_eq!(client.post("products", &product).status, 201);
    for (node, name) in [
        ("answering", "answering meter"),
        ("mute", "mute meter"),
        ("sleepy", "sleepy meter"),
        ("xss", "<img src=x onerror=alert(1)>"),
    ] {
        let body = json!({"node_id": node, "device_name": name, "product_id": "meter", "auth_info": {"secret": SECRET}});
        let added = client.post("devices", &body);
        assert_eq!(added.status, 201, "{}", added.text());
    }

    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/console_browser.py");
    let output = Command::new(&python)
        .arg(&script)
        .env("CONSOLE_URL", format!("http://{}/console/", engine.http))
        .env("MQTT_HOST", engine.mqtt.ip().to_string())
        .env("MQTT_PORT", engine.mqtt.port().to_string())
        .env("PROJECT_ID", PROJECT_A.project_id)
        .env("TOKEN", PROJECT_A.token)
        .env("DEVICE_SECRET", SECRET)
        .env("COMMAND_TIMEOUT_MS", COMMAND_TIMEOUT_MS.to_string())
        .env("SCREENSHOTS", &screenshots)
        .env("CHROMIUM", &chromium)
        .env("CHROMEDRIVER", &chromedriver)
        .output()
        .expect("running the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("CONSOLE OK"),
        "the browser flows failed:\n{stdout}\n--- stderr ---\n{stderr}"
    );
    for step in [
        "signed in",
        "device ONLINE without reload",
        "command answered",
        "command timed out",
        "model error shown",
        "message PENDING then DELIVERED",
        "batch task finished",
        "markup shown as text",
        "wrong token refused",
        "signed out",
    ] {
        assert!(stdout.contains(&format!("STEP {step}")), "step '{step}' missing:\n{stdout}");
    }
    // What the browser did went through the engine for real.
    let task_list = client.get("batchtasks?task_type=createCommands").json();
    assert!(task_list["batchtasks"].as_array().is_some_and(|tasks| !tasks.is_empty()), "{task_list}");
    let messages = client.get("devices/meter_sleepy/messages").json();
    assert_eq!(messages["messages"][0]["status"], "DELIVERED", "{messages}");
}
