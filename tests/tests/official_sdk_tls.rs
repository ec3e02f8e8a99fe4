//! Huawei's official Python device SDK (`iot_device_sdk_python`, unmodified, vendored under
//! `tests/vendor/`) logs in over MQTT with TLS, trusting only the engine's generated CA, and
//! answers a command that Huawei's application SDK (`huaweicloudsdkiotda`) sends over HTTPS
//! with certificate verification on — the same CA given to its `HttpConfig`. Both SDKs run in
//! `tests/scripts/device_sdk_tls.py`, with the vendored SDK on `PYTHONPATH` and its PyPI
//! dependencies installed by the harness (`tests::python`).
//!
//! ## Port 8883 without editing the SDK
//! The device SDK turns TLS on exactly when the port is 8883; the engine's TLS listener binds
//! `127.0.0.N:8883` and the SDK is given `server_uri = "127.0.0.N"` (`tests::device_sdk`). The SDK turns
//! host-name checking off (`tls_insecure_set(True)`) but verifies the chain, so the address
//! need not be in the server certificate, and the CA still decides: with public roots only
//! the same SDK gets no session.
//!
//! ## What is checked
//! - The device SDK with public roots (certifi's bundle) does not connect; with the engine's
//!   `{data_dir}/tls/ca.pem` it does, and the REST API shows the device ONLINE.
//! - The application SDK over HTTPS with verification on and no CA fails the handshake
//!   (`SslHandShakeException`): verification is really on.
//! - With the CA, CreateCommand reaches the device through the SDK's command listener (the
//!   request id is the command id) and returns 200 with exactly the answer the device sent.
//! - Both listeners counted a completed and a failed handshake (the refusals above happened
//!   in TLS); after the SDK disconnects the device goes OFFLINE.

use serde_json::json;
use tests::device_sdk::{start_engine_on_sdk_port, wait_for_status, SdkScript};
use tests::{Engine, PROJECT_A};

const SECRET: &str = "sdk-tls-secret-1";
const DEVICE_ID: &str = "meter_sdk";
fn register_device(client: &tests::Client) {
    let product = json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": [{
            "service_id": "water", "service_type": "water",
            "commands": [{"command_name": "ON_OFF", "paras": [
                {"para_name": "value", "data_type": "string", "enum_list": ["ON", "OFF"], "required": true}]}]
        }]
    });
    tests::register_devices(client, &product, &["sdk"], SECRET);
}

/// The device's `status` once it equals `expected`, or the last one seen at the deadline.
/// `ringiot_tls_handshakes_total` of `listener`: (completed, failed for any reason).
fn tls_handshakes(engine: &Engine, listener: &str) -> (f64, f64) {
    let text = tests::http_request(engine.http, "GET", "/metrics", &[], b"").text();
    let prefix = format!("ringiot_tls_handshakes_total{{listener=\"{listener}\",result=\"");
    let (mut completed, mut failed) = (0.0, 0.0);
    for line in text.lines() {
        let Some((result, count)) = line.strip_prefix(&prefix).and_then(|rest| rest.split_once("\"} "))
        else {
            continue;
        };
        let count: f64 = count.parse().unwrap_or_else(|_| panic!("not a count: {line}"));
        if result == "ok" {
            completed += count;
        } else {
            failed += count;
        }
    }
    (completed, failed)
}

#[test]
fn the_official_device_sdk_answers_a_command_over_tls_sent_by_the_application_sdk_over_https() {
    let Some(python) = tests::python::python_or_skip(&[
        ("paho-mqtt", "paho.mqtt.client"),
        ("schedule", "schedule"),
        ("apscheduler", "apscheduler"),
        ("requests", "requests"),
        ("huaweicloudsdkiotda", "huaweicloudsdkiotda"),
    ]) else {
        return;
    };
    let started = start_engine_on_sdk_port(true);
    let engine = &started.engine;
    let client = engine.client_a();
    register_device(&client);
    let ca_file = engine.data_dir.join("tls/ca.pem");
    assert!(ca_file.exists(), "the engine generated no CA at {}", ca_file.display());
    let https = engine.https.expect("the HTTPS listener");
    let command = json!({"service_id": "water", "command_name": "ON_OFF", "paras": {"value": "ON"}});
    let spec = json!({
        "mqtt_host": started.host, "device_id": DEVICE_ID, "secret": SECRET, "ca": ca_file,
        "https_endpoint": format!("https://localhost:{}", https.port()),
        "project_id": PROJECT_A.project_id, "ak": PROJECT_A.ak, "sk": PROJECT_A.sk,
        "command": command,
    });
    // "No CA" must mean the default roots, and localhost must not go through a proxy.
    let unset =
        ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];
    let mut script = SdkScript::spawn(&python, "device_sdk_tls.py", &spec, &unset);

    let untrusted = script.step("untrusted_ca");
    script.check(untrusted["rc"] != 0, "the device SDK connected trusting public roots only");
    let connected = script.step("connected");
    // connect() gives the CONNACK a fixed second; a slow machine may need its listener's word.
    script.check(
        connected["completed"] == true,
        "the device SDK did not connect over TLS with the engine's CA",
    );
    let status = wait_for_status(&client, DEVICE_ID, "ONLINE");
    script.check(status == "ONLINE", &format!("the SDK's device is {status} while connected"));
    script.resume();

    let without_ca = script.step("https_without_ca");
    let unverified = without_ca["message"].as_str().is_some_and(|m| m.contains("CERTIFICATE_VERIFY_FAILED"));
    script.check(
        without_ca["error"] == "SslHandShakeException" && unverified,
        "the application SDK without the CA did not refuse the engine's certificate",
    );
    let got = script.step("device_got_command");
    script.check(
        got["service_id"] == "water" && got["command_name"] == "ON_OFF" && got["paras"] == command["paras"],
        "the device SDK got another command",
    );
    let answered = script.step("command_answered");
    let expected = json!({"result_code": 0, "response_name": "ON_OFF", "paras": {"echo": {"value": "ON"}}});
    script.check(
        answered["status_code"] == 200
            && answered["response"] == expected
            && answered["error_code"].is_null(),
        &format!("CreateCommand did not return 200 with {expected}"),
    );
    script
        .check(answered["command_id"] == got["request_id"], "the device's request id is not the command id");
    let done = script.step("done");
    script.check(done["disconnected"] == true, "the device SDK's destroy() did not end the session");
    script.wait_for_exit();

    let status = wait_for_status(&client, DEVICE_ID, "OFFLINE");
    assert_eq!(status, "OFFLINE", "the SDK's device after it disconnected");
    // MQTT: the trusting device completed one, the untrusting one aborted one; HTTPS: the
    // call with the CA completed one, the call without it aborted one.
    for listener in ["mqtt", "https"] {
        let (completed, failed) = tls_handshakes(engine, listener);
        assert!(completed >= 1.0 && failed >= 1.0, "{listener}: {completed} TLS handshakes, {failed} failed");
    }
}
