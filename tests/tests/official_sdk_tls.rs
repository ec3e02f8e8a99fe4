//! Huawei's official Python device SDK (`iot_device_sdk_python`, unmodified, vendored under
//! `tests/vendor/`) logs in over MQTT with TLS, trusting only the engine's generated CA, and
//! answers a command that Huawei's application SDK (`huaweicloudsdkiotda`) sends over HTTPS
//! with certificate verification on — the same CA given to its `HttpConfig`. Both SDKs run in
//! `tests/scripts/device_sdk_tls.py`, with the vendored SDK on `PYTHONPATH` and its PyPI
//! dependencies installed by the harness (`tests::python`).
//!
//! ## Port 8883 without editing the SDK
//! The device SDK accepts only ports 1883 and 8883 and turns TLS on exactly when the port is
//! 8883, and 8883 may be taken on the test machine (a local broker, a parallel test run). The
//! whole of 127.0.0.0/8 is loopback on Linux, so the engine's TLS listener binds
//! `127.0.0.N:8883` for an N in 2..=254 picked from the test's pid, and the SDK is given
//! `server_uri = "127.0.0.N"`, port 8883. The engine refuses to start when another process
//! listens on that address (or on 0.0.0.0:8883); the test then tries the next N. The SDK turns
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

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tests::{Engine, EngineOptions, PROJECT_A};

const SECRET: &str = "sdk-tls-secret-1";
const DEVICE_ID: &str = "meter_sdk";
/// The device SDK's TLS port (it takes only 1883 and 8883, and TLS means 8883).
const SDK_TLS_PORT: u16 = 8883;
/// Loopback addresses tried before giving up (each refused one is taken by another process).
const ADDRESS_ATTEMPTS: u32 = 4;
/// For one step of the script (the SDK alone waits a second after connecting).
const STEP_DEADLINE: Duration = Duration::from_secs(30);
const STATUS_DEADLINE: Duration = Duration::from_secs(5);

/// An engine whose MQTT TLS listener is on some `127.0.0.N:8883`, with the data dir it owns.
struct EngineOn8883 {
    engine: Engine,
    tls_host: String,
    /// Dropped after the engine (fields drop in order).
    _data_dir: tempfile::TempDir,
}

/// `127.0.0.N:8883` for N in 2..=254, N from the pid and the attempt (distinct over attempts).
fn loopback_8883(attempt: u32) -> SocketAddr {
    let offset = std::process::id().wrapping_add(attempt * 61) % 253;
    SocketAddr::from(([127, 0, 0, 2 + offset as u8], SDK_TLS_PORT))
}

fn start_engine_on_8883() -> EngineOn8883 {
    let mut refused = Vec::new();
    for attempt in 0..ADDRESS_ATTEMPTS {
        let address = loopback_8883(attempt);
        let data_dir = tempfile::tempdir().expect("temp dir");
        let options = EngineOptions {
            shards: 2,
            args: vec!["--mqtt-tls-listen".into(), address.to_string()],
            ..Default::default()
        };
        match Engine::start_on(&data_dir.path().join("data"), &options) {
            Ok(engine) => {
                assert_eq!(engine.mqtt_tls, Some(address), "the ready line names another TLS address");
                let tls_host = address.ip().to_string();
                return EngineOn8883 { engine, tls_host, _data_dir: data_dir };
            }
            Err(stderr) if stderr.contains("in use") => refused.push(address),
            Err(stderr) => panic!("engine did not start with its TLS listener on {address}:\n{stderr}"),
        }
    }
    panic!("another process listens on every address tried ({refused:?}), or on 0.0.0.0:8883")
}

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
fn wait_for_status(client: &tests::Client, expected: &str) -> Value {
    let deadline = Instant::now() + STATUS_DEADLINE;
    loop {
        let status = client.get(&format!("devices/{DEVICE_ID}")).json()["status"].clone();
        if status == expected || Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

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

/// The running script: its JSON step lines, its stderr (the SDKs' logs), killed when dropped.
struct SdkScript {
    child: Child,
    stdin: Option<ChildStdin>,
    steps: mpsc::Receiver<String>,
    transcript: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl SdkScript {
    fn spawn(python: &Path, spec: &Value) -> SdkScript {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new(python);
        command
            .arg(root.join("scripts/device_sdk_tls.py"))
            .arg(spec.to_string())
            .env("PYTHONPATH", root.join("vendor/huaweicloud-iot-device-sdk-python"))
            // No __pycache__ inside the vendored SDK.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        // "No CA" must mean the default roots, and localhost must not go through a proxy.
        for variable in
            ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        {
            command.env_remove(variable);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the device SDK script");
        let (sender, steps) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let stderr_writer = stderr.clone();
        let pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut text = stderr_writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        let stdin = child.stdin.take();
        SdkScript { child, stdin, steps, transcript: Vec::new(), stderr }
    }

    /// The next step line, which must be `name`.
    fn step(&mut self, name: &str) -> Value {
        let line = match self.steps.recv_timeout(STEP_DEADLINE) {
            Ok(line) => line,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                self.fail(&format!("no {name:?} step within {STEP_DEADLINE:?}"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                self.fail(&format!("the script ended before its {name:?} step"))
            }
        };
        self.transcript.push(line.clone());
        match serde_json::from_str::<Value>(&line) {
            Ok(step) if step["step"] == name => step,
            _ => self.fail(&format!("expected the {name:?} step")),
        }
    }

    /// Lets the script go on past its `connected` step.
    fn resume(&mut self) {
        let mut stdin = self.stdin.take().expect("resumed once");
        stdin.write_all(b"go\n").expect("writing to the script");
    }

    fn wait_for_exit(&mut self) {
        let deadline = Instant::now() + STEP_DEADLINE;
        loop {
            match self.child.try_wait().expect("waiting for the script") {
                Some(status) if status.success() => return,
                Some(status) => self.fail(&format!("the script exited with {status}")),
                None if Instant::now() >= deadline => self.fail("the script did not exit"),
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// Panics with `what`, the steps so far and the script's stderr.
    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.transcript.extend(self.steps.try_iter());
        let stderr = self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        panic!("{what}\n--- steps:\n{}\n--- stderr:\n{stderr}", self.transcript.join("\n"));
    }

    /// Checks `condition` on the script's output, failing with the transcript.
    fn check(&mut self, condition: bool, what: &str) {
        if !condition {
            self.fail(what);
        }
    }
}

impl Drop for SdkScript {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let started = start_engine_on_8883();
    let engine = &started.engine;
    let client = engine.client_a();
    register_device(&client);
    let ca_file = engine.data_dir.join("tls/ca.pem");
    assert!(ca_file.exists(), "the engine generated no CA at {}", ca_file.display());
    let https = engine.https.expect("the HTTPS listener");
    let command = json!({"service_id": "water", "command_name": "ON_OFF", "paras": {"value": "ON"}});
    let spec = json!({
        "mqtt_host": started.tls_host, "device_id": DEVICE_ID, "secret": SECRET, "ca": ca_file,
        "https_endpoint": format!("https://localhost:{}", https.port()),
        "project_id": PROJECT_A.project_id, "ak": PROJECT_A.ak, "sk": PROJECT_A.sk,
        "command": command,
    });
    let mut script = SdkScript::spawn(&python, &spec);

    let untrusted = script.step("untrusted_ca");
    script.check(untrusted["rc"] != 0, "the device SDK connected trusting public roots only");
    let connected = script.step("connected");
    // connect() gives the CONNACK a fixed second; a slow machine may need its listener's word.
    script.check(
        connected["completed"] == true,
        "the device SDK did not connect over TLS with the engine's CA",
    );
    let status = wait_for_status(&client, "ONLINE");
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

    let status = wait_for_status(&client, "OFFLINE");
    assert_eq!(status, "OFFLINE", "the SDK's device after it disconnected");
    // MQTT: the trusting device completed one, the untrusting one aborted one; HTTPS: the
    // call with the CA completed one, the call without it aborted one.
    for listener in ["mqtt", "https"] {
        let (completed, failed) = tls_handshakes(engine, listener);
        assert!(completed >= 1.0 && failed >= 1.0, "{listener}: {completed} TLS handshakes, {failed} failed");
    }
}
