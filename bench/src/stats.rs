//! Latency histograms and the result line every scenario emits.
//!
//! Each client task owns one [`LatencyHistogram`] (no sharing, no locks on the hot path); the
//! scenario merges them when the clients stop. Values are microseconds from 1 µs to 60 s with
//! 3 significant digits; a value outside that range is clamped, never dropped, so a stall
//! still shows up as the maximum.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::transport::{transport_label, Endpoint};

/// The smallest and largest recordable latency, microseconds.
pub const LATENCY_US_MIN: u64 = 1;
pub const LATENCY_US_MAX: u64 = 60_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// A microsecond latency histogram.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    pub fn new() -> LatencyHistogram {
        let histogram = Histogram::new_with_bounds(LATENCY_US_MIN, LATENCY_US_MAX, SIGNIFICANT_DIGITS)
            .expect("constant histogram bounds are valid");
        LatencyHistogram { histogram }
    }

    pub fn record_us(&mut self, latency_us: u64) {
        self.histogram.saturating_record(latency_us.max(LATENCY_US_MIN));
    }

    /// Adds every value of `other` (same bounds, so this cannot fail).
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.histogram.add(&other.histogram).expect("histograms share their bounds");
    }

    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub fn summary(&self) -> LatencySummary {
        let at =
            |quantile: f64| if self.count() == 0 { 0 } else { self.histogram.value_at_quantile(quantile) };
        LatencySummary {
            count: self.count(),
            p50_us: at(0.50),
            p90_us: at(0.90),
            p99_us: at(0.99),
            p999_us: at(0.999),
            max_us: if self.count() == 0 { 0 } else { self.histogram.max() },
        }
    }
}

/// Percentiles of a histogram (all zero when it is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
}

/// Merges per-client histograms into one.
pub fn merge_all<'a>(histograms: impl IntoIterator<Item = &'a LatencyHistogram>) -> LatencyHistogram {
    let mut merged = LatencyHistogram::new();
    for histogram in histograms {
        merged.merge(histogram);
    }
    merged
}

/// One JSON line per (scenario, target) on stdout with `--json`. The first fifteen keys are
/// the same for every scenario; the optional ones after them are left out when absent.
/// (`tls` reads as false in lines written before it existed.)
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultLine {
    pub scenario: String,
    pub target: String,
    pub devices: u64,
    pub clients: u64,
    pub duration_s: f64,
    pub ops: u64,
    pub throughput_per_s: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub errors: u64,
    pub engine_rss_bytes: Option<u64>,
    /// Devices and clients spoke TLS (`--tls`), every connection a full handshake.
    #[serde(default)]
    pub tls: bool,
    /// The TLS version the target negotiated: `1.3` or `1.2` (TLS lines only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    /// The engine's shard count (ringiot lines; from its ready line or its `/metrics`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_shards: Option<u64>,
    /// `closed` or `open` (command-rtt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loop_mode: Option<String>,
    /// The open-loop target rate (command-rtt `--rate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// User+system CPU seconds of the target process (engine or Mosquitto) over the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cpu_s: Option<f64>,
    /// User+system CPU seconds of the bench process over the measured window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bench_cpu_s: Option<f64>,
    /// connect: seconds from the first CONNECT until /metrics counted every device online.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub all_online_s: Option<f64>,
    /// connect: engine RSS growth per logged-in connection once idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_per_connection_bytes: Option<u64>,
    /// messages: messages created per device (M).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_device: Option<u64>,
    /// messages-deliver: devices that did not get exactly their messages in creation order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices_wrong: Option<u64>,
    /// messages-deliver, batch: seconds from the first CONNECT to the last CONNACK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logins_s: Option<f64>,
    /// batch: the final `batchtask.status` (Success, Fail, PartialSuccess, Stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_status: Option<String>,
    /// batch: `task_progress.success` and `.fail` at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_success: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_fail: Option<u64>,
    /// batch: ShowBatchTask polls made until the final status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polls: Option<u64>,
    /// gateway: what the calls went to, `sub_device` or `direct` (the gateways themselves).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_kind: Option<String>,
    /// gateway: the gateways logged in (G).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<u64>,
    /// gateway: sub-devices registered under each gateway (S).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_devices_per_gateway: Option<u64>,
    /// gateway, `sub_device` line: the share of the sub-devices whose home shard is not their
    /// gateway's (each of their calls takes one more mesh hop); from the engine's shard count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_hop_share: Option<f64>,
}

impl ResultLine {
    /// A line with the latency fields taken from `summary` and the optional fields empty.
    pub fn new(scenario: &str, target: &str, shape: RunShape, summary: LatencySummary) -> ResultLine {
        let throughput_per_s = if shape.duration_s > 0.0 { shape.ops as f64 / shape.duration_s } else { 0.0 };
        ResultLine {
            scenario: scenario.to_owned(),
            target: target.to_owned(),
            devices: shape.devices,
            clients: shape.clients,
            duration_s: round3(shape.duration_s),
            ops: shape.ops,
            throughput_per_s: round3(throughput_per_s),
            p50_us: summary.p50_us,
            p90_us: summary.p90_us,
            p99_us: summary.p99_us,
            p999_us: summary.p999_us,
            max_us: summary.max_us,
            errors: shape.errors,
            engine_rss_bytes: None,
            tls: false,
            tls_version: None,
            engine_shards: None,
            loop_mode: None,
            rate_per_s: None,
            target_cpu_s: None,
            bench_cpu_s: None,
            all_online_s: None,
            rss_per_connection_bytes: None,
            per_device: None,
            devices_wrong: None,
            logins_s: None,
            task_status: None,
            task_success: None,
            task_fail: None,
            polls: None,
            target_kind: None,
            gateways: None,
            sub_devices_per_gateway: None,
            gateway_hop_share: None,
        }
    }

    /// Records how the target was reached: TCP, or TLS and the version it negotiated.
    pub fn set_transport(&mut self, endpoint: &Endpoint) {
        self.tls = endpoint.is_tls();
        self.tls_version = endpoint.tls_version().map(str::to_owned);
    }

    /// `tcp`, `tls1.3`, `tls1.2`.
    pub fn transport_label(&self) -> String {
        transport_label(self.tls, self.tls_version.as_deref())
    }

    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a result line always serializes")
    }
}

/// The counts a result line is built from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunShape {
    pub devices: u64,
    pub clients: u64,
    pub duration_s: f64,
    pub ops: u64,
    pub errors: u64,
}

pub fn round3(value: f64) -> f64 {
    (value * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_histogram_summarises_to_zeros() {
        assert_eq!(LatencyHistogram::new().summary(), LatencySummary::default());
    }

    #[test]
    fn percentiles_come_from_the_recorded_values() {
        let mut histogram = LatencyHistogram::new();
        for value in 1..=1000 {
            histogram.record_us(value);
        }
        let summary = histogram.summary();
        assert_eq!(summary.count, 1000);
        assert_eq!(summary.p50_us, 500);
        assert_eq!(summary.p90_us, 900);
        assert_eq!(summary.p99_us, 990);
        assert_eq!(summary.p999_us, 999);
        assert_eq!(summary.max_us, 1000);
    }

    #[test]
    fn merging_gives_the_histogram_of_all_values() {
        let mut fast = LatencyHistogram::new();
        let mut slow = LatencyHistogram::new();
        (0..99).for_each(|_| fast.record_us(100));
        slow.record_us(50_000);
        let merged = merge_all([&fast, &slow]);
        let summary = merged.summary();
        assert_eq!(summary.count, 100);
        assert_eq!(summary.p50_us, 100);
        assert_eq!(summary.p99_us, 100);
        assert!(summary.max_us >= 50_000 && summary.max_us <= 50_050, "{summary:?}");
    }

    #[test]
    fn out_of_range_values_are_clamped_not_dropped() {
        let mut histogram = LatencyHistogram::new();
        histogram.record_us(0);
        histogram.record_us(LATENCY_US_MAX * 10);
        let summary = histogram.summary();
        assert_eq!(summary.count, 2);
        assert!(summary.max_us >= LATENCY_US_MAX - LATENCY_US_MAX / 1000, "{summary:?}");
    }

    #[test]
    fn the_result_line_has_the_documented_keys_in_order() {
        let shape = RunShape { devices: 1000, clients: 64, duration_s: 10.0, ops: 250_000, errors: 2 };
        let summary = LatencySummary {
            count: 250_000,
            p50_us: 200,
            p90_us: 400,
            p99_us: 900,
            p999_us: 2000,
            max_us: 9000,
        };
        let line = ResultLine::new("command-rtt", "ringiot", shape, summary).to_json_line();
        assert_eq!(
            line,
            "{\"scenario\":\"command-rtt\",\"target\":\"ringiot\",\"devices\":1000,\"clients\":64,\
             \"duration_s\":10.0,\"ops\":250000,\"throughput_per_s\":25000.0,\"p50_us\":200,\
             \"p90_us\":400,\"p99_us\":900,\"p999_us\":2000,\"max_us\":9000,\"errors\":2,\
             \"engine_rss_bytes\":null,\"tls\":false}"
        );
    }

    #[test]
    fn optional_fields_appear_only_when_set() {
        let shape = RunShape { devices: 10, clients: 0, duration_s: 0.5, ops: 10, errors: 0 };
        let mut line = ResultLine::new("connect", "ringiot", shape, LatencySummary::default());
        line.engine_rss_bytes = Some(123);
        line.all_online_s = Some(0.75);
        let value: serde_json::Value = serde_json::from_str(&line.to_json_line()).unwrap();
        assert_eq!(value["throughput_per_s"], 20.0);
        assert_eq!(value["engine_rss_bytes"], 123);
        assert_eq!(value["all_online_s"], 0.75);
        assert!(value.get("loop_mode").is_none());
        assert!(value.get("rss_per_connection_bytes").is_none());
        assert_eq!(value["tls"], false);
        assert!(value.get("tls_version").is_none());
    }

    #[test]
    fn tls_lines_say_so_and_older_lines_read_as_tcp() {
        let shape = RunShape { devices: 10, clients: 1, duration_s: 1.0, ops: 10, errors: 0 };
        let mut line = ResultLine::new("connect", "mosquitto", shape, LatencySummary::default());
        line.tls = true;
        line.tls_version = Some("1.3".to_owned());
        let json = line.to_json_line();
        assert!(json.contains("\"tls\":true,\"tls_version\":\"1.3\""), "{json}");
        assert_eq!(line.transport_label(), "tls1.3");
        let old = json.replace(",\"tls\":true,\"tls_version\":\"1.3\"", "");
        let parsed: ResultLine = serde_json::from_str(&old).unwrap();
        assert_eq!(parsed.transport_label(), "tcp");
    }
}
