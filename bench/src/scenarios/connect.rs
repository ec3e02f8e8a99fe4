//! `connect`: how fast the engine logs a fleet in, and what a connection costs it in memory.
//!
//! Measured: D devices log in as fast as the bench can offer them (at most
//! `--logins-in-flight` at once). Logins per second = D / (last CONNACK − first CONNECT),
//! each login's CONNECT→CONNACK time goes into the percentiles (TCP connect included), and
//! "all online" is when the engine's own `/metrics` first counts every device online,
//! measured from the first CONNECT. Memory per connection = (engine VmRSS once idle after the
//! logins − VmRSS before them) / D, taken only when the bench started the engine (otherwise
//! null): the devices are registered before the "before" sample, so it is the cost of a
//! live session, not of a registry entry.

use std::time::Duration;

use anyhow::bail;

use crate::fleet::{Fleet, FleetConfig};
use crate::observe;
use crate::registration::register_fleet;
use crate::scenarios::{thousands, wait_all_online, CpuWindow};
use crate::stats::{round3, ResultLine, RunShape};
use crate::target::Target;

pub const SCENARIO: &str = "connect";
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);
/// Time left to the engine after the logins before memory is sampled.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub devices: u64,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
}

pub async fn run(options: &ConnectOptions, target: &Target) -> anyhow::Result<ResultLine> {
    register_fleet(target, options.devices).await?;
    tokio::time::sleep(SETTLE).await;
    let rss_before = target.pid.and_then(observe::resident_bytes);
    let config = FleetConfig::for_engine(
        options.devices,
        target.mqtt,
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

    let elapsed_s = logins.elapsed().as_secs_f64();
    let shape = RunShape {
        devices: options.devices,
        clients: 0,
        duration_s: elapsed_s,
        ops: logins.accepted,
        errors: logins.failed,
    };
    let mut line = ResultLine::new(SCENARIO, "ringiot", shape, logins.latency.summary());
    line.engine_rss_bytes = rss_after;
    line.all_online_s = Some(round3(all_online_s));
    line.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    line.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    line.rss_per_connection_bytes = match (rss_before, rss_after) {
        (Some(before), Some(after)) => Some(after.saturating_sub(before) / logins.accepted),
        _ => None,
    };

    eprintln!();
    eprintln!(
        "connect: {} devices, {} logged in in {:.2} s = {} logins/s; login p50 {} µs, p99 {} µs, max {} µs",
        thousands(options.devices),
        thousands(logins.accepted),
        elapsed_s,
        thousands(line.throughput_per_s.round() as u64),
        thousands(line.p50_us),
        thousands(line.p99_us),
        thousands(line.max_us)
    );
    eprintln!(
        "all {} online per /metrics {:.2} s after the first CONNECT",
        thousands(logins.accepted),
        all_online_s
    );
    cpu.print("engine");
    if logins.failed > 0 {
        eprintln!("{} logins failed, first: {:?}", logins.failed, logins.first_failure);
    }
    match (rss_before, rss_after, line.rss_per_connection_bytes) {
        (Some(before), Some(after), Some(per_connection)) => eprintln!(
            "engine RSS {:.1} MiB → {:.1} MiB: {} bytes per connection",
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            thousands(per_connection)
        ),
        _ => eprintln!("engine RSS: unknown (the bench did not start the engine)"),
    }
    Ok(line)
}
