//! Registers the bench product and the fleet's devices through the REST API before a run
//! (not measured). Devices that already exist (400 IOTDA.014031) count as registered, so a
//! long-lived engine can be benchmarked again without clean-up. Sub-devices (the `gateway`
//! scenario) are registered the same way, with `gateway_id` and no secret: they never log in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::fleet::{device_id, DeviceSet, DEVICE_SECRET, PRODUCT_ID};
use crate::http::HttpConnection;
use crate::target::Target;

/// Keep-alive connections registering devices at the same time.
pub const REGISTRATION_CONNECTIONS: usize = 32;

fn json_headers(token: &str) -> [(&str, &str); 2] {
    [("X-Auth-Token", token), ("Content-Type", "application/json")]
}

/// Creates the product (if missing) and devices `bench_n0 … bench_n{devices-1}`.
pub async fn register_fleet(target: &Target, devices: u64) -> anyhow::Result<()> {
    let mut connection = HttpConnection::connect(&target.http).await.context("connecting to the REST API")?;
    let product = format!(
        r#"{{"product_id":"{PRODUCT_ID}","name":"{PRODUCT_ID}","device_type":"Bench","protocol_type":"MQTT","service_capabilities":[]}}"#
    );
    let path = format!("/v5/iot/{}/products", target.project_id);
    let response =
        connection.request("POST", &path, &json_headers(&target.token), product.as_bytes()).await?;
    if response.status != 201 && !(response.status == 400 && response.text().contains("already exists")) {
        bail!("creating the bench product: {} {}", response.status, response.text());
    }
    register_set(target, DeviceSet::Direct, devices).await
}

/// Creates `per_gateway` sub-devices under each of the fleet's devices `0..gateways`, which
/// must be registered already ([`register_fleet`]).
pub async fn register_sub_devices(target: &Target, gateways: u64, per_gateway: u64) -> anyhow::Result<()> {
    register_set(target, DeviceSet::SubDevices { per_gateway }, gateways * per_gateway).await
}

/// Registers devices `0..count` of `set` over [`REGISTRATION_CONNECTIONS`] connections.
async fn register_set(target: &Target, set: DeviceSet, count: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let next_index = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..REGISTRATION_CONNECTIONS.min(count as usize).max(1) {
        let target = target.clone();
        let next_index = next_index.clone();
        workers.push(tokio::spawn(async move { register_devices(&target, set, count, &next_index).await }));
    }
    let mut created = 0;
    for worker in workers {
        created += worker.await.context("a registration task panicked")??;
    }
    let what = match set {
        DeviceSet::Direct => "devices",
        DeviceSet::SubDevices { .. } => "sub-devices",
    };
    eprintln!(
        "registered {count} {what} ({created} new, {} existing) in {:.1} s",
        count - created,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The AddDevice body of device `index` of `set`.
pub fn add_device_body(set: DeviceSet, index: u64) -> String {
    let node_id = set.node_id(index);
    match set.gateway_index(index) {
        None => format!(
            r#"{{"node_id":"{node_id}","product_id":"{PRODUCT_ID}","auth_info":{{"secret":"{DEVICE_SECRET}"}}}}"#
        ),
        Some(gateway_index) => format!(
            r#"{{"node_id":"{node_id}","product_id":"{PRODUCT_ID}","gateway_id":"{}"}}"#,
            device_id(gateway_index)
        ),
    }
}

/// Takes device indexes from `next_index` until all are registered; returns how many were new.
async fn register_devices(
    target: &Target,
    set: DeviceSet,
    count: u64,
    next_index: &AtomicU64,
) -> anyhow::Result<u64> {
    let mut connection = HttpConnection::connect(&target.http).await?;
    let path = format!("/v5/iot/{}/devices", target.project_id);
    let mut created = 0;
    loop {
        let index = next_index.fetch_add(1, Ordering::Relaxed);
        if index >= count {
            return Ok(created);
        }
        let body = add_device_body(set, index);
        let mut attempts = 0;
        let response = loop {
            attempts += 1;
            match connection.request("POST", &path, &json_headers(&target.token), body.as_bytes()).await {
                Ok(response) if response.status == 503 && attempts < 5 => {}
                Ok(response) => break response,
                Err(error) if attempts < 5 => {
                    eprintln!("registering {}: {error}; retrying", set.node_id(index))
                }
                Err(error) => return Err(error.into()),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        match response.status {
            201 => created += 1,
            400 if response.text().contains("IOTDA.014031") => {}
            status => bail!("registering device {}: {status} {}", set.node_id(index), response.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_devices_carry_a_secret_and_sub_devices_their_gateway() {
        assert_eq!(
            add_device_body(DeviceSet::Direct, 3),
            r#"{"node_id":"n3","product_id":"bench","auth_info":{"secret":"benchsecret1"}}"#
        );
        assert_eq!(
            add_device_body(DeviceSet::SubDevices { per_gateway: 50 }, 120),
            r#"{"node_id":"g2s20","product_id":"bench","gateway_id":"bench_n2"}"#
        );
    }
}
