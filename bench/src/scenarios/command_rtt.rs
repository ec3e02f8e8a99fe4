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

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::clients::{drive, BrokerCaller, Caller, ClientPlan, LiveCounters, RestCaller};
use crate::fleet::{Fleet, FleetConfig};
use crate::mosquitto::{self, Mosquitto};
use crate::observe;
use crate::registration::register_fleet;
use crate::report::{cpu_us_per_op, target_label};
use crate::scenarios::{mosquitto_binary, spawn_progress, thousands, wait_all_online, CpuWindow};
use crate::stats::{merge_all, ResultLine, RunShape};
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
    let mut line = measure("ringiot", options, callers, target.pid).await;
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
    let mut line = measure("mosquitto", options, callers, Some(broker.pid())).await;
    line.engine_rss_bytes = observe::resident_bytes(broker.pid());
    line.set_transport(&endpoint);
    fleet.stop().await;
    Ok(line)
}

/// Runs the clients through warm-up and the recorded window; CPU is sampled over the window.
async fn measure(
    label: &str,
    options: &CommandRttOptions,
    callers: Vec<Caller>,
    pid: Option<u32>,
) -> ResultLine {
    let clients = callers.len();
    let start = Instant::now() + Duration::from_millis(10);
    let warmup_end = start + options.warmup;
    let end = warmup_end + options.duration;
    let live = Arc::new(LiveCounters::default());
    let progress = spawn_progress(label.to_owned(), live.clone(), start);
    let tasks: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(client_index, caller)| {
            let plan = ClientPlan {
                client_index,
                clients,
                devices: options.devices,
                start,
                warmup_end,
                end,
                total_rate_per_s: options.total_rate_per_s,
            };
            tokio::spawn(drive(caller, plan, live.clone()))
        })
        .collect();
    tokio::time::sleep_until(tokio::time::Instant::from_std(warmup_end)).await;
    let window = CpuWindow::open(pid);
    tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    let cpu = window.close();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a client task panicked"));
    }
    progress.abort();
    cpu.print(if label == "ringiot" { "engine" } else { label });
    if let Some(error) = results.iter().find_map(|result| result.first_error.as_ref()) {
        eprintln!("[{label}] first error: {error}");
    }
    let latency = merge_all(results.iter().map(|result| &result.latency));
    let shape = RunShape {
        devices: options.devices,
        clients: clients as u64,
        duration_s: options.duration.as_secs_f64(),
        ops: results.iter().map(|result| result.ops).sum(),
        errors: results.iter().map(|result| result.errors).sum(),
    };
    let mut line = ResultLine::new(SCENARIO, label, shape, latency.summary());
    line.loop_mode = Some(if options.total_rate_per_s.is_some() { "open" } else { "closed" }.to_owned());
    line.rate_per_s = options.total_rate_per_s;
    line.target_cpu_s = cpu.target.as_ref().map(|usage| crate::stats::round3(usage.total.as_secs_f64()));
    line.bench_cpu_s = Some(crate::stats::round3(cpu.bench.total.as_secs_f64()));
    line
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
