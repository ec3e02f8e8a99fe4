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
//! - [`keep_alive::KeepAliveClient`]: a persistent-connection client that reports a broken
//!   connection instead of panicking (load across a crash).
//!
//! ## Conventions
//! No sleeps as synchronisation: waits are on an event (a line on stdout, a process exit)
//! with a deadline. One test file per behaviour under `tests/tests/`.

pub mod batch;
pub mod browser;
mod client;
pub mod device_sdk;
mod engine;
pub mod keep_alive;
pub mod messages;
pub mod mqtt;
pub mod python;
pub mod receiver;
pub mod tls;

pub use client::{assert_error, assert_invalid, http_request, sdk_date_now, Auth, Client, HttpResponse};
pub use engine::{run_engine_command, Engine, EngineOptions, ProjectCredentials, HUNG, PROJECT_A, PROJECT_B};

/// Waits (up to 20 s) until ShowDevice says `status`, and returns the device (the status is
/// written when a session starts or ends, a moment after the socket event a test sees).
pub fn await_status(client: &Client, device_id: &str, status: &str) -> serde_json::Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let device = client.get(&format!("devices/{device_id}")).json();
        if device["status"] == status {
            return device;
        }
        assert!(std::time::Instant::now() < deadline, "{device_id} never became {status}: {device}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Registers product `meter` and one device `meter_{node_id}` per node id, each with `secret`,
/// through the REST API (asserting every 201).
pub fn register_meter_devices<S: AsRef<str>>(client: &Client, node_ids: &[S], secret: &str) {
    let product = serde_json::json!({
        "product_id": "meter", "name": "meter", "device_type": "Meter", "protocol_type": "MQTT",
        "service_capabilities": []
    });
    register_devices(client, &product, node_ids, secret);
}

/// Registers `product` (its `product_id` must be `meter`) and one device `meter_{node_id}` per
/// node id, each with `secret` (asserting every 201).
pub fn register_devices<S: AsRef<str>>(
    client: &Client,
    product: &serde_json::Value,
    node_ids: &[S],
    secret: &str,
) {
    let created = client.post("products", product);
    assert_eq!(created.status, 201, "{}", created.text());
    for node_id in node_ids {
        let body = serde_json::json!({"node_id": node_id.as_ref(), "product_id": "meter", "auth_info": {"secret": secret}});
        let response = client.post("devices", &body);
        assert_eq!(response.status, 201, "{}", response.text());
    }
}
