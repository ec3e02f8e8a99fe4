//! # tests — black-box end-to-end tests of ringiot
//!
//! Every test starts the real engine as a child process (the `ringiot-under-test` binary, the
//! same code as `ringiot`) on port 0 with a temporary data dir, waits for its
//! `ringiot ready: http=ADDR` line, and drives it over HTTP like any client would.
//!
//! ## Layout
//! - [`Engine`]: start, stop (SIGTERM), kill -9, restart on the same data dir.
//! - [`Client`]: an HTTP/1.1 client for `/v5/iot/{project}/…` that authenticates with a token,
//!   an `SDK-HMAC-SHA256` signature or a `V11-HMAC-SHA256` signature, signing exactly the
//!   headers it sends.
//! - [`http_request`]: one raw request, for tests that need to send odd bytes.
//! - [`mqtt::MqttDevice`]: a blocking MQTT 3.1.1 device with IoTDA credentials.
//!
//! ## Conventions
//! No sleeps as synchronisation: waits are on an event (a line on stdout, a process exit)
//! with a deadline. One test file per behaviour under `tests/tests/`.

mod client;
mod engine;
pub mod mqtt;
pub mod python;

pub use client::{http_request, sdk_date_now, Auth, Client, HttpResponse};
pub use engine::{run_engine_command, Engine, EngineOptions, ProjectCredentials, HUNG, PROJECT_A, PROJECT_B};
