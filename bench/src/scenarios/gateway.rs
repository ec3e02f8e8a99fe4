//! `gateway`: command round trips to sub-devices through their gateways, beside round trips
//! to the gateways themselves as direct devices, in the same run against the same engine.
//!
//! G gateways (`bench_n0 … bench_n{G-1}`, the fleet's devices) are registered and log in;
//! S sub-devices per gateway (`bench_g{g}s{s}`, registered with `gateway_id`, no secret) never
//! connect. Then two measured windows, one after the other, each with its own warm-up and C
//! fresh keep-alive HTTP clients in a closed loop:
//!
//! 1. **sub_device**: `POST …/devices/{sub_id}/commands` to a sub-device drawn uniformly from
//!    all G×S. The engine checks the call on the sub-device's home shard, hands it to the
//!    gateway's home shard when that is another shard (one mesh hop), and publishes it on the
//!    gateway's `…/sys/commands/request_id={id}` with `object_device_id`; the gateway answers on
//!    its own response topic (the fleet's usual answer — the topic is the gateway's).
//! 2. **direct**: the same calls to a gateway drawn uniformly from the G, as to any device.
//!
//! Both windows go over the same G connections and the same engine process, so the ratio
//! sub_device / direct isolates what a sub-device's call costs beyond a direct one: the extra
//! hop for the sub-devices whose home shard is not their gateway's (their share is reported
//! as `gateway_hop_share`, computed from the engine's shard count and the routing hash), the
//! sub-device lookup, and the `object_device_id` in the payload. The windows run in sequence,
//! so the machine's drift between them is part of one ratio; `bench/run.sh`'s repetitions and
//! the report's medians smooth it.

use std::time::Duration;

use anyhow::{bail, Context};
use protocol::routing::home_shard;

use crate::clients::{Caller, RestCaller};
use crate::fleet::{device_id, DeviceSet, Fleet, FleetConfig};
use crate::observe;
use crate::registration::{register_fleet, register_sub_devices};
use crate::report::{cpu_us_per_op, target_label};
use crate::scenarios::{measure_calls, thousands, wait_all_online, CallWindow};
use crate::stats::{round3, ResultLine};
use crate::target::Target;

pub const SCENARIO: &str = "gateway";
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct GatewayOptions {
    pub gateways: u64,
    pub sub_devices_per_gateway: u64,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub think: Duration,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
}

/// Registers and logs in the gateways, then measures calls to sub-devices and to gateways;
/// returns the `sub_device` line, then the `direct` one.
pub async fn run(options: &GatewayOptions, target: &Target) -> anyhow::Result<Vec<ResultLine>> {
    let (gateways, per_gateway) = (options.gateways, options.sub_devices_per_gateway);
    register_fleet(target, gateways).await?;
    register_sub_devices(target, gateways, per_gateway).await?;
    let fleet_config = FleetConfig {
        think: options.think,
        ..FleetConfig::for_engine(
            gateways,
            target.mqtt.clone(),
            options.keep_alive_s,
            options.logins_in_flight_max,
        )
    };
    let (fleet, logins) = Fleet::start(fleet_config).await?;
    if logins.failed > 0 {
        bail!("{} of {gateways} gateway logins failed, first: {:?}", logins.failed, logins.first_failure);
    }
    wait_all_online(target, gateways, ONLINE_DEADLINE).await?;
    eprintln!(
        "{gateways} gateways online on ringiot ({:.2} s of logins), {} sub-devices behind them",
        logins.elapsed().as_secs_f64(),
        thousands(gateways * per_gateway)
    );

    let sub_devices = DeviceSet::SubDevices { per_gateway };
    let mut lines = Vec::with_capacity(2);
    for (devices, count) in [(sub_devices, gateways * per_gateway), (DeviceSet::Direct, gateways)] {
        let mut callers = Vec::with_capacity(options.clients);
        for _ in 0..options.clients {
            let caller = RestCaller::connect(target).await.context("opening an HTTP client")?;
            callers.push(Caller::Rest(caller.calling(devices)));
        }
        let window = CallWindow {
            scenario: SCENARIO,
            progress_label: format!("ringiot {}", devices.kind()),
            devices: count,
            warmup: options.warmup,
            duration: options.duration,
            total_rate_per_s: None,
        };
        let mut line = measure_calls("ringiot", &window, callers, target.pid).await;
        line.engine_rss_bytes = target.pid.and_then(observe::resident_bytes);
        line.set_transport(&target.mqtt);
        line.engine_shards = target.shards.map(|shards| shards as u64);
        line.target_kind = Some(devices.kind().to_owned());
        line.gateways = Some(gateways);
        line.sub_devices_per_gateway = Some(per_gateway);
        if devices == sub_devices {
            line.gateway_hop_share =
                target.shards.map(|shards| gateway_hop_share(gateways, per_gateway, shards));
        }
        lines.push(line);
    }
    fleet.stop().await;
    print_table(&lines);
    Ok(lines)
}

/// The share of the G×S sub-devices whose home shard differs from their gateway's, rounded
/// to 3 decimals: with calls drawn uniformly, the share of sub-device calls that take the
/// extra mesh hop.
pub fn gateway_hop_share(gateways: u64, per_gateway: u64, shards: usize) -> f64 {
    let sub_devices = DeviceSet::SubDevices { per_gateway };
    let total = gateways * per_gateway;
    let elsewhere = (0..total)
        .filter(|&index| {
            let gateway = sub_devices.gateway_index(index).map(device_id).unwrap_or_default();
            home_shard(&sub_devices.device_id(index), shards) != home_shard(&gateway, shards)
        })
        .count();
    round3(elsewhere as f64 / total.max(1) as f64)
}

fn print_table(lines: &[ResultLine]) {
    eprintln!();
    eprintln!(
        "{:<18} {:<9} {:<10} {:>8} {:>7} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12}",
        "target",
        "transport",
        "calls to",
        "devices",
        "clients",
        "calls/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "errors",
        "CPU µs/call"
    );
    for line in lines {
        eprintln!(
            "{:<18} {:<9} {:<10} {:>8} {:>7} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>12}",
            target_label(line),
            line.transport_label(),
            line.target_kind.as_deref().unwrap_or("-"),
            thousands(line.devices),
            line.clients,
            thousands(line.throughput_per_s.round() as u64),
            thousands(line.p50_us),
            thousands(line.p90_us),
            thousands(line.p99_us),
            thousands(line.p999_us),
            thousands(line.max_us),
            line.errors,
            cpu_us_per_op(line).map_or("-".to_owned(), |us| format!("{us:.1}")),
        );
    }
    if let [sub_device, direct] = lines {
        let cpu = match (cpu_us_per_op(sub_device), cpu_us_per_op(direct)) {
            (Some(sub_device), Some(direct)) => {
                format!(", CPU per call ×{:.2}", sub_device / direct.max(1e-9))
            }
            _ => String::new(),
        };
        let hops = sub_device.gateway_hop_share.map_or(String::new(), |share| {
            format!("; {:.0} % of the sub-devices live on another shard than their gateway", share * 100.0)
        });
        eprintln!(
            "sub_device / direct: throughput ×{:.2}, p99 ×{:.2}{cpu}{hops}",
            sub_device.throughput_per_s / direct.throughput_per_s.max(1e-9),
            sub_device.p99_us as f64 / (direct.p99_us.max(1) as f64)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shard_has_no_gateway_hops() {
        assert_eq!(gateway_hop_share(10, 10, 1), 0.0);
    }

    #[test]
    fn with_more_shards_most_sub_devices_live_away_from_their_gateway() {
        let two = gateway_hop_share(100, 100, 2);
        assert!((0.4..0.6).contains(&two), "about 1/2 of the sub-devices hop with 2 shards: {two}");
        let eight = gateway_hop_share(100, 100, 8);
        assert!((0.8..0.95).contains(&eight), "about 7/8 hop with 8 shards: {eight}");
    }
}
