//! What the bench reads about the processes it measures: devices online from the engine's
//! Prometheus text, resident memory from `/proc/PID/status`, and CPU time per thread from
//! `/proc/PID/task/*/stat`. Whole-machine figures from `/proc/stat` undercount on this kind of
//! VM, so every CPU figure here is per process.

use std::path::Path;
use std::time::Duration;

/// The sum of every `ringiot_devices_online{...}` sample (one per shard).
pub fn devices_online(prometheus_text: &str) -> Option<u64> {
    let mut total = None;
    for line in prometheus_text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix("ringiot_devices_online") else { continue };
        // The series name must end here: `ringiot_devices_online_x` is another metric.
        if !(rest.starts_with('{') || rest.starts_with(' ')) {
            continue;
        }
        let Some((_, value)) = rest.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        *total.get_or_insert(0) += value as u64;
    }
    total
}

/// How many shards report `ringiot_devices_online{shard="N"}` (each shard reports one sample).
pub fn engine_shards(prometheus_text: &str) -> Option<usize> {
    let mut shards: Vec<&str> = prometheus_text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("ringiot_devices_online{"))
        .filter_map(|labels| labels.split_once("shard=\"")?.1.split_once('"').map(|(shard, _)| shard))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    (!shards.is_empty()).then_some(shards.len())
}

/// `VmRSS` of a process, bytes.
pub fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_rss_bytes(&status)
}

fn parse_vm_rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: u64 = line["VmRSS:".len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// CPU time one thread has used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadCpu {
    pub thread_id: u32,
    pub name: String,
    pub user_ticks: u64,
    pub system_ticks: u64,
}

/// user and system ticks from one `/proc/.../stat` line (fields 14 and 15; the name in
/// parentheses may itself contain spaces and parentheses, so split after the last `)`).
pub fn parse_stat_line(stat: &str) -> Option<(String, u64, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat.get(open + 1..close)?.to_owned();
    let fields: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at indexes 11 and 12.
    let user_ticks = fields.get(11)?.parse().ok()?;
    let system_ticks = fields.get(12)?.parse().ok()?;
    Some((name, user_ticks, system_ticks))
}

/// Every thread of a process with its CPU ticks so far.
pub fn threads_cpu(pid: u32) -> Vec<ThreadCpu> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut threads: Vec<ThreadCpu> = entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let thread_id: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            let (name, user_ticks, system_ticks) = parse_stat_line(&stat)?;
            Some(ThreadCpu { thread_id, name, user_ticks, system_ticks })
        })
        .collect();
    threads.sort_by_key(|thread| thread.thread_id);
    threads
}

/// CPU used by a process's threads between two samples.
#[derive(Debug, Clone)]
pub struct CpuUsage {
    pub per_thread: Vec<(String, Duration)>,
    pub total: Duration,
}

impl CpuUsage {
    pub fn between(before: &[ThreadCpu], after: &[ThreadCpu]) -> CpuUsage {
        let tick = Duration::from_secs_f64(1.0 / clock_ticks_per_second() as f64);
        let per_thread: Vec<(String, Duration)> = after
            .iter()
            .map(|thread| {
                let earlier = before.iter().find(|old| old.thread_id == thread.thread_id);
                let (user, system) = earlier.map_or((0, 0), |old| (old.user_ticks, old.system_ticks));
                let ticks =
                    thread.user_ticks.saturating_sub(user) + thread.system_ticks.saturating_sub(system);
                (format!("{}/{}", thread.name, thread.thread_id), tick * ticks as u32)
            })
            .collect();
        let total = per_thread.iter().map(|(_, used)| *used).sum();
        CpuUsage { per_thread, total }
    }

    /// `X s user+sys over S s (Y cores)`, then the busiest threads.
    pub fn describe(&self, wall: Duration) -> String {
        let cores = self.total.as_secs_f64() / wall.as_secs_f64().max(1e-9);
        let mut busiest: Vec<&(String, Duration)> =
            self.per_thread.iter().filter(|(_, used)| !used.is_zero()).collect();
        busiest.sort_by_key(|(_, used)| std::cmp::Reverse(*used));
        let threads: Vec<String> =
            busiest.iter().take(6).map(|(name, used)| format!("{name} {:.2}s", used.as_secs_f64())).collect();
        format!(
            "{:.2} s user+sys over {:.2} s ({cores:.2} cores) [{}]",
            self.total.as_secs_f64(),
            wall.as_secs_f64(),
            threads.join(", ")
        )
    }
}

pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

pub fn own_pid() -> u32 {
    std::process::id()
}

pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# HELP ringiot_devices_online Devices logged in on the shard.
# TYPE ringiot_devices_online gauge
ringiot_devices_online{shard=\"0\"} 4999
ringiot_devices_online{shard=\"1\"} 5001
ringiot_devices_online_peak{shard=\"0\"} 99999
ringiot_devices{shard=\"0\"} 7
ringiot_mqtt_connections{shard=\"1\"} 12
";

    #[test]
    fn online_devices_are_summed_over_shards() {
        assert_eq!(devices_online(METRICS), Some(10_000));
    }

    #[test]
    fn shards_are_counted_from_their_online_samples() {
        assert_eq!(engine_shards(METRICS), Some(2), "the _peak series and other metrics do not count");
        assert_eq!(engine_shards("ringiot_devices_online 3\n"), None);
    }

    #[test]
    fn an_unlabelled_sample_counts_too() {
        assert_eq!(devices_online("ringiot_devices_online 3\n"), Some(3));
    }

    #[test]
    fn text_without_the_metric_gives_none() {
        assert_eq!(devices_online("# TYPE ringiot_devices_online gauge\nringiot_devices 4\n"), None);
    }

    #[test]
    fn vm_rss_is_read_in_bytes() {
        let status = "Name:\tringiot\nVmPeak:\t  900 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_bytes(status), Some(12345 * 1024));
    }

    #[test]
    fn stat_fields_are_found_after_a_name_with_spaces() {
        let stat = "4242 (shard 0 (x)) S 1 4242 4242 0 -1 4194368 100 0 0 0 731 204 0 0 20 0 3 0 1 2 3";
        assert_eq!(parse_stat_line(stat), Some(("shard 0 (x)".to_owned(), 731, 204)));
    }

    #[test]
    fn our_own_threads_are_visible() {
        let threads = threads_cpu(own_pid());
        assert!(!threads.is_empty());
        let usage = CpuUsage::between(&threads, &threads);
        assert!(usage.total.is_zero());
    }
}
