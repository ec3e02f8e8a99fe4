//! The scenarios, one file each, and what they share: waiting for the fleet to be online
//! according to the engine itself, the once-a-second progress line, CPU sampling, and the
//! measured window of application clients calling devices (`command-rtt`, `gateway`).

pub mod batch;
pub mod command_rtt;
pub mod connect;
pub mod gateway;
pub mod messages;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::clients::{drive, Caller, ClientPlan, LiveCounters};
use crate::http::HttpConnection;
use crate::observe::{self, CpuUsage, ThreadCpu};
use crate::stats::{merge_all, round3, ResultLine, RunShape};
use crate::target::Target;

/// The Mosquitto binary for a baseline, or `None` after saying why the baseline is skipped.
pub fn mosquitto_binary() -> Option<PathBuf> {
    let binary = crate::mosquitto::find_mosquitto();
    if binary.is_none() {
        eprintln!(
            "Mosquitto baseline skipped: no mosquitto in PATH or /usr/sbin (install it: apt-get install -y mosquitto)"
        );
    }
    binary
}

/// Polls `GET /metrics` until the shards together count `expected` devices online; returns
/// when that was first seen.
pub async fn wait_all_online(target: &Target, expected: u64, deadline: Duration) -> anyhow::Result<Instant> {
    let give_up = Instant::now() + deadline;
    let mut connection = HttpConnection::connect(&target.http).await?;
    loop {
        let response = connection.request("GET", "/metrics", &[], b"").await?;
        if response.status != 200 {
            bail!("GET /metrics answered {}", response.status);
        }
        let online = observe::devices_online(&response.text());
        let Some(online) = online else { bail!("GET /metrics has no ringiot_devices_online series") };
        if online >= expected {
            return Ok(Instant::now());
        }
        if Instant::now() > give_up {
            bail!("only {online} of {expected} devices online after {deadline:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The engine's shard count as its `/metrics` shows it; `None` when it cannot be read.
pub async fn engine_shards(target: &Target) -> Option<usize> {
    let mut connection = HttpConnection::connect(&target.http).await.ok()?;
    let response = connection.request("GET", "/metrics", &[], b"").await.ok()?;
    (response.status == 200).then(|| observe::engine_shards(&response.text())).flatten()
}

/// Prints `[label] elapsed: calls (rate/s), errors` to stderr every second until aborted.
pub fn spawn_progress(
    label: String,
    live: Arc<LiveCounters>,
    started: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        let mut previous_ops = 0;
        loop {
            ticker.tick().await;
            let ops = live.ops.load(Ordering::Relaxed);
            let errors = live.errors.load(Ordering::Relaxed);
            eprintln!(
                "[{label}] {:>5.1} s: {ops} calls ({}/s), {errors} errors",
                started.elapsed().as_secs_f64(),
                ops - previous_ops
            );
            previous_ops = ops;
        }
    })
}

/// CPU of the target process and of the bench, sampled at the start of a window.
#[derive(Debug)]
pub struct CpuWindow {
    started: Instant,
    target_pid: Option<u32>,
    target_before: Vec<ThreadCpu>,
    bench_before: Vec<ThreadCpu>,
}

/// What a window cost in CPU.
#[derive(Debug)]
pub struct CpuSpent {
    pub wall: Duration,
    pub target: Option<CpuUsage>,
    pub bench: CpuUsage,
}

impl CpuWindow {
    pub fn open(target_pid: Option<u32>) -> CpuWindow {
        CpuWindow {
            started: Instant::now(),
            target_pid,
            target_before: target_pid.map(observe::threads_cpu).unwrap_or_default(),
            bench_before: observe::threads_cpu(observe::own_pid()),
        }
    }

    pub fn close(self) -> CpuSpent {
        let target =
            self.target_pid.map(|pid| CpuUsage::between(&self.target_before, &observe::threads_cpu(pid)));
        let bench = CpuUsage::between(&self.bench_before, &observe::threads_cpu(observe::own_pid()));
        CpuSpent { wall: self.started.elapsed(), target, bench }
    }
}

impl CpuSpent {
    pub fn print(&self, target_name: &str) {
        match &self.target {
            Some(usage) => eprintln!("{target_name} CPU: {}", usage.describe(self.wall)),
            None => eprintln!("{target_name} CPU: unknown (not a local process the bench started)"),
        }
        eprintln!("bench CPU: {}", self.bench.describe(self.wall));
    }
}

/// One measured run of application clients, each drawing devices uniformly from `0..devices`.
#[derive(Debug, Clone)]
pub struct CallWindow {
    /// The scenario its result line names.
    pub scenario: &'static str,
    /// What the progress lines say in brackets.
    pub progress_label: String,
    pub devices: u64,
    pub warmup: Duration,
    pub duration: Duration,
    /// Open loop at this total rate; `None` = closed loop.
    pub total_rate_per_s: Option<f64>,
}

/// Runs `callers` through the warm-up and the recorded window, CPU sampled over the window;
/// returns the line of `target_name` (`ringiot`, `mosquitto`) with latency, CPU and loop mode.
pub async fn measure_calls(
    target_name: &str,
    window: &CallWindow,
    callers: Vec<Caller>,
    pid: Option<u32>,
) -> ResultLine {
    let clients = callers.len();
    let start = Instant::now() + Duration::from_millis(10);
    let warmup_end = start + window.warmup;
    let end = warmup_end + window.duration;
    let live = Arc::new(LiveCounters::default());
    let progress = spawn_progress(window.progress_label.clone(), live.clone(), start);
    let tasks: Vec<_> = callers
        .into_iter()
        .enumerate()
        .map(|(client_index, caller)| {
            let plan = ClientPlan {
                client_index,
                clients,
                devices: window.devices,
                start,
                warmup_end,
                end,
                total_rate_per_s: window.total_rate_per_s,
            };
            tokio::spawn(drive(caller, plan, live.clone()))
        })
        .collect();
    tokio::time::sleep_until(tokio::time::Instant::from_std(warmup_end)).await;
    let cpu_window = CpuWindow::open(pid);
    tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    let cpu = cpu_window.close();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a client task panicked"));
    }
    progress.abort();
    cpu.print(if target_name == "ringiot" { "engine" } else { target_name });
    if let Some(error) = results.iter().find_map(|result| result.first_error.as_ref()) {
        eprintln!("[{}] first error: {error}", window.progress_label);
    }
    let latency = merge_all(results.iter().map(|result| &result.latency));
    let shape = RunShape {
        devices: window.devices,
        clients: clients as u64,
        duration_s: window.duration.as_secs_f64(),
        ops: results.iter().map(|result| result.ops).sum(),
        errors: results.iter().map(|result| result.errors).sum(),
    };
    let mut line = ResultLine::new(window.scenario, target_name, shape, latency.summary());
    line.loop_mode = Some(if window.total_rate_per_s.is_some() { "open" } else { "closed" }.to_owned());
    line.rate_per_s = window.total_rate_per_s;
    line.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    line.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    line
}

/// `1234567` → `1,234,567`.
pub fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (position, digit) in digits.chars().enumerate() {
        if position > 0 && (digits.len() - position).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
