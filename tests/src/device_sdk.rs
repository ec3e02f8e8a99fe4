//! Running Huawei's official Python device SDK (vendored unmodified under `tests/vendor/`) from
//! a test: an engine listening where the SDK can reach it, and the test's script as a child
//! process that reports JSON step lines on stdout and waits for `go` on stdin where the test
//! checks the registry.
//!
//! ## Ports 1883 and 8883 without editing the SDK
//! The SDK accepts only ports 1883 (plain) and 8883 (TLS), and either may be taken on the test
//! machine (a local broker, a parallel test run). The whole of 127.0.0.0/8 is loopback on
//! Linux, so the engine's listener binds `127.0.0.N:1883` (or `:8883`) for an N in 2..=254
//! picked from the test's pid, and the SDK is given `server_uri = "127.0.0.N"`. The engine
//! refuses to start when another process listens on that address (or on 0.0.0.0 with that
//! port); the next N is tried.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Client, Engine, EngineOptions};

/// Loopback addresses tried before giving up (each refused one is taken by another process).
const ADDRESS_ATTEMPTS: u32 = 4;
/// For one step of a script (the SDK alone waits a second after connecting).
pub const STEP_DEADLINE: Duration = Duration::from_secs(30);
/// For a device's status to follow the SDK's connection.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(5);

/// An engine whose MQTT listener (plain or TLS) is on some `127.0.0.N` at the SDK's port, with
/// the data dir it owns.
#[derive(Debug)]
pub struct EngineOnSdkPort {
    pub engine: Engine,
    /// `127.0.0.N`, for the SDK's `server_uri`.
    pub host: String,
    /// Dropped after the engine (fields drop in order).
    _data_dir: tempfile::TempDir,
}

/// `127.0.0.N:port` for N in 2..=254, N from the pid and the attempt (distinct over attempts).
fn loopback(port: u16, attempt: u32) -> SocketAddr {
    let offset = std::process::id().wrapping_add(attempt * 61) % 253;
    SocketAddr::from(([127, 0, 0, 2 + offset as u8], port))
}

/// Two shards, the plain MQTT listener on `127.0.0.N:1883` (`tls` false) or the TLS one on
/// `127.0.0.N:8883` (`tls` true); everything else as usual.
pub fn start_engine_on_sdk_port(tls: bool) -> EngineOnSdkPort {
    let (flag, port) = if tls { ("--mqtt-tls-listen", 8883) } else { ("--mqtt-listen", 1883) };
    let mut refused = Vec::new();
    for attempt in 0..ADDRESS_ATTEMPTS {
        let address = loopback(port, attempt);
        let data_dir = tempfile::tempdir().expect("temp dir");
        let options =
            EngineOptions { shards: 2, args: vec![flag.into(), address.to_string()], ..Default::default() };
        match Engine::start_on(&data_dir.path().join("data"), &options) {
            Ok(engine) => {
                let listening = if tls { engine.mqtt_tls } else { Some(engine.mqtt) };
                assert_eq!(listening, Some(address), "the ready line names another {flag} address");
                let host = address.ip().to_string();
                return EngineOnSdkPort { engine, host, _data_dir: data_dir };
            }
            Err(stderr) if stderr.contains("in use") => refused.push(address),
            Err(stderr) => panic!("engine did not start with {flag} {address}:\n{stderr}"),
        }
    }
    panic!("another process listens on every address tried ({refused:?}), or on 0.0.0.0:{port}")
}

/// Polls ShowDevice until its status is `expected` or [`STATUS_DEADLINE`] passes; the last
/// status seen.
pub fn wait_for_status(client: &Client, device_id: &str, expected: &str) -> Value {
    let deadline = Instant::now() + STATUS_DEADLINE;
    loop {
        let status = client.get(&format!("devices/{device_id}")).json()["status"].clone();
        if status == expected || Instant::now() >= deadline {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running script: its JSON step lines, its stderr (the SDKs' logs), killed when dropped.
#[derive(Debug)]
pub struct SdkScript {
    child: Child,
    stdin: ChildStdin,
    steps: mpsc::Receiver<String>,
    transcript: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl SdkScript {
    /// Runs `tests/scripts/{script}` with `spec` (JSON) as its argument and the vendored SDK on
    /// `PYTHONPATH`, without the environment variables named in `unset` (proxies, CA bundles).
    pub fn spawn(python: &Path, script: &str, spec: &Value, unset: &[&str]) -> SdkScript {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut command = Command::new(python);
        command
            .arg(root.join("scripts").join(script))
            .arg(spec.to_string())
            .env("PYTHONPATH", root.join("vendor/huaweicloud-iot-device-sdk-python"))
            // No __pycache__ inside the vendored SDK.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONUNBUFFERED", "1");
        for variable in unset {
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
        let stdin = child.stdin.take().expect("stdin");
        SdkScript { child, stdin, steps, transcript: Vec::new(), stderr }
    }

    /// The next step line, which must be `name`.
    pub fn step(&mut self, name: &str) -> Value {
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

    /// Lets the script go on past a step where it waits for the test.
    pub fn resume(&mut self) {
        if let Err(error) = self.stdin.write_all(b"go\n") {
            self.fail(&format!("writing to the script: {error}"));
        }
    }

    /// Waits for the script to exit successfully.
    pub fn wait_for_exit(&mut self) {
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
    pub fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.transcript.extend(self.steps.try_iter());
        let stderr = self.stderr.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        panic!("{what}\n--- steps:\n{}\n--- stderr:\n{stderr}", self.transcript.join("\n"));
    }

    /// Checks `condition` on the script's output, failing with the transcript.
    pub fn check(&mut self, condition: bool, what: &str) {
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
