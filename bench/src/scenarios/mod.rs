//! The scenarios, one file each, and what they share: waiting for the fleet to be online
//! according to the engine itself, the once-a-second progress line, CPU sampling.

pub mod batch;
pub mod command_rtt;
pub mod connect;
pub mod messages;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::clients::LiveCounters;
use crate::http::HttpConnection;
use crate::observe::{self, CpuUsage, ThreadCpu};
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
