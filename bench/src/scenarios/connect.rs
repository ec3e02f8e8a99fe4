//! `connect`: how fast the engine logs a fleet in, and what a connection costs it in memory.
//!
//! Measured: D devices log in as fast as the bench can offer them (at most
//! `--logins-in-flight` at once). Logins per second = D / (last CONNACK − first CONNECT),
//! each login's CONNECT→CONNACK time goes into the percentiles (TCP connect included, and
//! with `--tls` the full TLS handshake), and "all online" is when the engine's own `/metrics`
//! first counts every device online, measured from the first CONNECT. Memory per connection =
//! (engine VmRSS once idle after the logins − VmRSS before them) / D, taken only when the
//! bench started the engine (otherwise null): the devices are registered before the "before"
//! sample, so it is the cost of a live session, not of a registry entry. The target's CPU over
//! the logins divided by D is its cost per login.
//!
//! With `--baseline mosquitto` the same fleet then logs in to a Mosquitto the bench starts
//! (plain or TLS as the engine run, the same certificate), CONNECT→CONNACK and nothing else
//! (no SUBSCRIBE), at most [`mosquitto::LOGINS_IN_FLIGHT_MAX`] at once; its RSS and CPU are
//! taken the same way ("all online" has no equivalent there).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;

use crate::fleet::{Fleet, FleetConfig, LoginReport};
use crate::mosquitto::{self, Mosquitto};
use crate::observe;
use crate::registration::register_fleet;
use crate::scenarios::{mosquitto_binary, thousands, wait_all_online, CpuSpent, CpuWindow};
use crate::stats::{round3, ResultLine, RunShape};
use crate::target::{EngineProcess, Target};
use crate::transport::{Endpoint, ServerIdentity};

pub const SCENARIO: &str = "connect";
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);
/// Time left to the engine after the logins before memory is sampled.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub devices: u64,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
    pub baseline_mosquitto: bool,
    /// What the baseline's TLS listener serves when the fleet speaks TLS.
    pub baseline_identity: Option<ServerIdentity>,
}

/// Logs the fleet in to the engine, then (optionally) to the baseline; one line per target.
pub async fn run(
    options: &ConnectOptions,
    target: &Target,
    engine: &mut Option<EngineProcess>,
) -> anyhow::Result<Vec<ResultLine>> {
    let mut lines = vec![run_engine(options, target).await?];
    if let Some(engine) = engine.take() {
        engine.stop()?;
    }
    if let Some(binary) = options.baseline_mosquitto.then(mosquitto_binary).flatten() {
        // The engine's line is kept whatever becomes of the baseline.
        match run_mosquitto(&binary, options, &target.mqtt).await {
            Ok(line) => lines.push(line),
            Err(error) => eprintln!("Mosquitto baseline failed: {error:#}"),
        }
    }
    Ok(lines)
}

async fn run_engine(options: &ConnectOptions, target: &Target) -> anyhow::Result<ResultLine> {
    register_fleet(target, options.devices).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_before = target.pid.and_then(observe::resident_bytes);
    let config = FleetConfig::for_engine(
        options.devices,
        target.mqtt.clone(),
        options.keep_alive_s,
        options.logins_in_flight_max,
    );
    let window = CpuWindow::open(target.pid);
    let (fleet, logins) = Fleet::start(config).await?;
    let cpu = window.close();
    if logins.accepted == 0 {
        bail!("no login succeeded; first failure: {:?}", logins.first_failure);
    }
    let all_online = wait_all_online(target, logins.accepted, ONLINE_DEADLINE).await?;
    let all_online_s = all_online.saturating_duration_since(logins.first_connect).as_secs_f64();
    tokio::time::sleep(SETTLE).await;
    let rss_after = target.pid.and_then(observe::resident_bytes);
    fleet.stop().await;

    let mut line = login_line("ringiot", options, &target.mqtt, &logins, &cpu, (rss_before, rss_after));
    line.all_online_s = Some(round3(all_online_s));
    print_logins(&line, &logins, &cpu, (rss_before, rss_after));
    eprintln!(
        "all {} online per /metrics {all_online_s:.2} s after the first CONNECT",
        thousands(logins.accepted)
    );
    Ok(line)
}

async fn run_mosquitto(
    binary: &Path,
    options: &ConnectOptions,
    engine_mqtt: &Endpoint,
) -> anyhow::Result<ResultLine> {
    let (broker, endpoint) = Mosquitto::start_like(binary, engine_mqtt, options.baseline_identity.as_ref())?;
    let rss_before = observe::resident_bytes(broker.pid());
    let config = FleetConfig::for_engine(
        options.devices,
        endpoint.clone(),
        options.keep_alive_s,
        options.logins_in_flight_max.min(mosquitto::LOGINS_IN_FLIGHT_MAX),
    );
    let window = CpuWindow::open(Some(broker.pid()));
    let (fleet, logins) = Fleet::start(config).await?;
    let cpu = window.close();
    if logins.accepted == 0 {
        bail!("no Mosquitto login succeeded; first failure: {:?}", logins.first_failure);
    }
    tokio::time::sleep(SETTLE).await;
    let rss_after = observe::resident_bytes(broker.pid());
    fleet.stop().await;
    let line = login_line("mosquitto", options, &endpoint, &logins, &cpu, (rss_before, rss_after));
    print_logins(&line, &logins, &cpu, (rss_before, rss_after));
    Ok(line)
}

/// The result line of one target's logins; `rss` is (before, after) the logins.
fn login_line(
    target_name: &str,
    options: &ConnectOptions,
    endpoint: &Endpoint,
    logins: &LoginReport,
    cpu: &CpuSpent,
    rss: (Option<u64>, Option<u64>),
) -> ResultLine {
    let shape = RunShape {
        devices: options.devices,
        clients: 0,
        duration_s: logins.elapsed().as_secs_f64(),
        ops: logins.accepted,
        errors: logins.failed,
    };
    let mut line = ResultLine::new(SCENARIO, target_name, shape, logins.latency.summary());
    line.set_transport(endpoint);
    line.engine_rss_bytes = rss.1;
    line.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    line.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    line.rss_per_connection_bytes = match rss {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) / logins.accepted),
        _ => None,
    };
    line
}

fn print_logins(line: &ResultLine, logins: &LoginReport, cpu: &CpuSpent, rss: (Option<u64>, Option<u64>)) {
    eprintln!();
    eprintln!(
        "connect to {} over {}: {} devices, {} logged in in {:.2} s = {} logins/s; login p50 {} µs, p99 {} µs, max {} µs",
        line.target,
        line.transport_label(),
        thousands(line.devices),
        thousands(logins.accepted),
        line.duration_s,
        thousands(line.throughput_per_s.round() as u64),
        thousands(line.p50_us),
        thousands(line.p99_us),
        thousands(line.max_us)
    );
    cpu.print(if line.target == "ringiot" { "engine" } else { &line.target });
    if let Some(cpu_us) = crate::report::cpu_us_per_op(line) {
        eprintln!("{} CPU per login: {cpu_us:.1} µs", line.target);
    }
    if logins.failed > 0 {
        eprintln!("{} logins failed, first: {:?}", logins.failed, logins.first_failure);
    }
    match (rss, line.rss_per_connection_bytes) {
        ((Some(before), Some(after)), Some(per_connection)) => eprintln!(
            "{} RSS {:.1} MiB → {:.1} MiB: {} bytes per connection",
            line.target,
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            thousands(per_connection)
        ),
        _ => eprintln!("{} RSS: unknown (the bench did not start it)", line.target),
    }
}
