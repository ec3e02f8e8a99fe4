//! `command-rtt`: the round trip of a synchronous device command, application to device and
//! back.
//!
//! Measured: from the moment a client sends `POST …/devices/{id}/commands` (closed loop) or
//! was scheduled to send it (open loop) until the whole 200 answer carrying the device's
//! response has been read — on the bench's clock, so it includes the HTTP parse, the hop to
//! the device's home shard, the downlink publish, the simulated device's answer, and the
//! bench's own scheduling. Devices are drawn uniformly at random per call. The first
//! `--warmup-s` seconds are run but not recorded; throughput is the successful calls in the
//! recorded window divided by its length.
//!
//! With `--baseline mosquitto` the same fleet (same devices, same logins) and the same
//! request/response pattern run through a Mosquitto the bench starts, right after the engine
//! run, and the table ends with the ratios ringiot / Mosquitto. With `--tls` both runs go
//! over TLS (Mosquitto serving the engine's certificate), the clients' connections too; each
//! of them made one full handshake before the measured window, so the window measures
//! encrypted round trips, not handshakes.

use std::time::Duration;

use anyhow::{bail, Context};

use crate::clients::{BrokerCaller, Caller, RestCaller};
use crate::fleet::{Fleet, FleetConfig};
use crate::mosquitto::{self, Mosquitto};
use crate::observe;
use crate::registration::register_fleet;
use crate::report::{cpu_us_per_op, target_label};
use crate::scenarios::{measure_calls, mosquitto_binary, thousands, wait_all_online, CallWindow};
use crate::stats::ResultLine;
use crate::target::{EngineProcess, Target};
use crate::transport::ServerIdentity;

pub const SCENARIO: &str = "command-rtt";
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);

#[derive(Debug, Clone)]
pub struct CommandRttOptions {
    pub devices: u64,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub total_rate_per_s: Option<f64>,
    pub think: Duration,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
    pub baseline_mosquitto: bool,
    /// What the baseline's TLS listener serves when the fleet speaks TLS (the engine's chain
    /// and key, or `--tls-cert`/`--tls-key`).
    pub baseline_identity: Option<ServerIdentity>,
}

/// Runs against the engine, then (optionally) the baseline; returns one line per target.
pub async fn run(
    options: &CommandRttOptions,
    target: &Target,
    engine: &mut Option<EngineProcess>,
) -> anyhow::Result<Vec<ResultLine>> {
    let mut lines = Vec::new();
    register_fleet(target, options.devices).await?;
    let fleet_config = FleetConfig {
        think: options.think,
        ..FleetConfig::for_engine(
            options.devices,
            target.mqtt.clone(),
            options.keep_alive_s,
            options.logins_in_flight_max,
        )
    };
    let (fleet, logins) = Fleet::start(fleet_config.clone()).await?;
    if logins.failed > 0 {
        bail!("{} of {} logins failed, first: {:?}", logins.failed, options.devices, logins.first_failure);
    }
    wait_all_online(target, options.devices, ONLINE_DEADLINE).await?;
    eprintln!(
        "{} devices online on ringiot ({:.2} s of logins)",
        options.devices,
        logins.elapsed().as_secs_f64()
    );
    let mut callers = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        callers.push(Caller::Rest(RestCaller::connect(target).await.context("opening an HTTP client")?));
    }
    let mut line = measure_calls("ringiot", &call_window(options, "ringiot"), callers, target.pid).await;
    line.engine_rss_bytes = target.pid.and_then(observe::resident_bytes);
    line.set_transport(&target.mqtt);
    // main sets this on every scenario's lines too; the table below prints before that.
    line.engine_shards = target.shards.map(|shards| shards as u64);
    lines.push(line);
    fleet.stop().await;
    if let Some(engine) = engine.take() {
        engine.stop()?;
    }

    if let Some(binary) = options.baseline_mosquitto.then(mosquitto_binary).flatten() {
        // The engine's line is kept whatever becomes of the baseline.
        match run_mosquitto(&binary, options, fleet_config).await {
            Ok(line) => lines.push(line),
            Err(error) => eprintln!("Mosquitto baseline failed: {error:#}"),
        }
    }
    print_table(&lines);
    Ok(lines)
}

/// The same fleet and pattern through a Mosquitto started for the purpose.
async fn run_mosquitto(
    binary: &std::path::Path,
    options: &CommandRttOptions,
    fleet_config: FleetConfig,
) -> anyhow::Result<ResultLine> {
    let (broker, endpoint) =
        Mosquitto::start_like(binary, &fleet_config.mqtt, options.baseline_identity.as_ref())?;
    let config = FleetConfig {
        mqtt: endpoint.clone(),
        subscribe_commands: true,
        logins_in_flight_max: fleet_config.logins_in_flight_max.min(mosquitto::LOGINS_IN_FLIGHT_MAX),
        ..fleet_config
    };
    let (fleet, logins) = Fleet::start(config).await?;
    if logins.failed > 0 {
        fleet.stop().await;
        bail!("{} Mosquitto logins failed, first: {:?}", logins.failed, logins.first_failure);
    }
    eprintln!(
        "{} devices subscribed on mosquitto ({:.2} s)",
        options.devices,
        logins.elapsed().as_secs_f64()
    );
    let mut callers = Vec::with_capacity(options.clients);
    for client_index in 0..options.clients {
        callers.push(Caller::Broker(BrokerCaller::connect(&endpoint, client_index).await?));
    }
    let window = call_window(options, "mosquitto");
    let mut line = measure_calls("mosquitto", &window, callers, Some(broker.pid())).await;
    line.engine_rss_bytes = observe::resident_bytes(broker.pid());
    line.set_transport(&endpoint);
    fleet.stop().await;
    Ok(line)
}

/// The measured window of `options` for `target_name`.
fn call_window(options: &CommandRttOptions, target_name: &str) -> CallWindow {
    CallWindow {
        scenario: SCENARIO,
        progress_label: target_name.to_owned(),
        devices: options.devices,
        warmup: options.warmup,
        duration: options.duration,
        total_rate_per_s: options.total_rate_per_s,
    }
}

fn print_table(lines: &[ResultLine]) {
    eprintln!();
    eprintln!(
        "{:<18} {:<9} {:>8} {:>7} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12}",
        "target",
        "transport",
        "devices",
        "clients",
        "calls/s",
        "p50 µs",
        "p90 µs",
        "p99 µs",
        "p99.9 µs",
        "max µs",
        "errors",
        "RSS MiB",
        "CPU µs/call"
    );
    for line in lines {
        eprintln!(
            "{:<18} {:<9} {:>8} {:>7} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>10} {:>12}",
            target_label(line),
            line.transport_label(),
            thousands(line.devices),
            line.clients,
            thousands(line.throughput_per_s.round() as u64),
            thousands(line.p50_us),
            thousands(line.p90_us),
            thousands(line.p99_us),
            thousands(line.p999_us),
            thousands(line.max_us),
            line.errors,
            line.engine_rss_bytes.map_or("-".to_owned(), |bytes| format!("{:.1}", bytes as f64 / 1048576.0)),
            cpu_us_per_op(line).map_or("-".to_owned(), |us| format!("{us:.1}")),
        );
    }
    if let [ringiot, baseline] = lines {
        let cpu = match (cpu_us_per_op(ringiot), cpu_us_per_op(baseline)) {
            (Some(ringiot), Some(baseline)) => format!(", CPU per call ×{:.2}", ringiot / baseline.max(1e-9)),
            _ => String::new(),
        };
        eprintln!(
            "{} / {}: throughput ×{:.2}, p99 ×{:.2}{cpu} (lower p99 and CPU are better)",
            target_label(ringiot),
            baseline.target,
            ringiot.throughput_per_s / baseline.throughput_per_s.max(1e-9),
            ringiot.p99_us as f64 / (baseline.p99_us.max(1) as f64)
        );
    }
}
