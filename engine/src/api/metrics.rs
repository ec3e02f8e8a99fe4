//! `GET /metrics`: Prometheus text format 0.0.4, no authentication (DESIGN.md §9). Every shard
//! reports its own figures over the mesh; counters and histograms are summed here, gauges are
//! given per shard.

use std::fmt::Write;

use http::Method;
use protocol::model::report::DropReason;
use shards::calls::metrics::{CallMetrics, Outcome};
use shards::calls::CallKind;
use shards::messages::{Reply, Request, ShardMetrics};

use crate::app::{ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

pub async fn render(app: &std::rc::Rc<App>, method: &Method) -> ApiResult {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!("{method} /metrics")));
    }
    let mut shards = Vec::new();
    for reply in app.shard.call_all(|_| Request::Metrics).await {
        match reply {
            Reply::Metrics(metrics) => shards.push(*metrics),
            Reply::Failed(error) => return Err(error.into()),
            _ => return Err(ApiError::Unavailable("unexpected reply to a metrics request".into())),
        }
    }
    Ok(ApiResponse::prometheus(exposition(&shards)))
}

/// One summary line per quantile of `histogram` (microseconds), in seconds; `NaN` when empty.
fn quantile_lines(o: &mut String, name: &str, kind: CallKind, histogram: &hdrhistogram::Histogram<u64>) {
    for (quantile, label) in QUANTILES {
        let value = if histogram.is_empty() {
            "NaN".to_owned()
        } else {
            seconds(histogram.value_at_quantile(quantile))
        };
        let _ = writeln!(o, "{name}{{kind=\"{}\",quantile=\"{label}\"}} {value}", kind.as_str());
    }
}

/// The text of a scrape from the shards' figures.
pub fn exposition(shards: &[ShardMetrics]) -> String {
    let mut calls = CallMetrics::default();
    for shard in shards {
        calls.merge(&shard.calls);
    }
    let mut out = String::with_capacity(8 * 1024);
    let o = &mut out;

    header(
        o,
        "ringiot_device_calls_total",
        "counter",
        "Synchronous device calls (commands, property set and get) by how they ended.",
    );
    for kind in CallKind::ALL {
        for outcome in Outcome::ALL {
            let value = calls.calls(kind, outcome);
            let _ = writeln!(
                o,
                "ringiot_device_calls_total{{kind=\"{}\",outcome=\"{}\"}} {value}",
                kind.as_str(),
                outcome.as_str()
            );
        }
    }
    header(
        o,
        "ringiot_device_call_round_trip_seconds",
        "summary",
        "From the publish to the device's answer, answered calls only (hdrhistogram, 3 significant digits).",
    );
    for kind in CallKind::ALL {
        let histogram = calls.round_trip_us(kind);
        quantile_lines(o, "ringiot_device_call_round_trip_seconds", kind, histogram);
        let _ = writeln!(
            o,
            "ringiot_device_call_round_trip_seconds_sum{{kind=\"{}\"}} {}",
            kind.as_str(),
            seconds(calls.round_trip_sum_us(kind))
        );
        let _ = writeln!(
            o,
            "ringiot_device_call_round_trip_seconds_count{{kind=\"{}\"}} {}",
            kind.as_str(),
            histogram.len()
        );
    }
    header(
        o,
        "ringiot_device_call_round_trip_recent_seconds",
        "summary",
        "The same round trips, of the last 60 to 120 s only (each shard's current and previous minute).",
    );
    let now = std::time::Instant::now();
    for kind in CallKind::ALL {
        let histogram = calls.recent_round_trip_us(kind, now);
        quantile_lines(o, "ringiot_device_call_round_trip_recent_seconds", kind, &histogram);
        let _ = writeln!(
            o,
            "ringiot_device_call_round_trip_recent_seconds_count{{kind=\"{}\"}} {}",
            kind.as_str(),
            histogram.len()
        );
    }
    header(
        o,
        "ringiot_device_responses_unmatched_total",
        "counter",
        "Device answers with an unknown or late request id, dropped.",
    );
    let _ = writeln!(o, "ringiot_device_responses_unmatched_total {}", calls.unmatched_answers);
    header(
        o,
        "ringiot_device_responses_malformed_total",
        "counter",
        "Device answers that were not JSON, dropped.",
    );
    let _ = writeln!(o, "ringiot_device_responses_malformed_total {}", calls.malformed_answers);

    header(o, "ringiot_device_uplink_total", "counter", "Device publishes by kind.");
    let mut uplink = [0u64; 6];
    for shard in shards {
        let u = shard.uplink;
        for (sum, value) in
            uplink.iter_mut().zip([u.messages, u.events, u.property_reports, u.other, u.malformed, u.refused])
        {
            *sum += value;
        }
    }
    for (label, value) in
        ["message", "event", "property_report", "other", "malformed", "refused"].iter().zip(uplink)
    {
        let _ = writeln!(o, "ringiot_device_uplink_total{{kind=\"{label}\"}} {value}");
    }

    header(
        o,
        "ringiot_reported_properties_dropped_total",
        "counter",
        "Reported property values dropped for not conforming to the device's product model, by reason; the rest of each report is applied.",
    );
    let mut dropped = [0u64; DropReason::ALL.len()];
    for shard in shards {
        for (sum, value) in dropped.iter_mut().zip(shard.reported_properties_dropped) {
            *sum += value;
        }
    }
    for reason in DropReason::ALL {
        let value = dropped[reason.index()];
        let _ = writeln!(
            o,
            "ringiot_reported_properties_dropped_total{{reason=\"{}\"}} {value}",
            reason.as_str()
        );
    }

    header(o, "ringiot_messages_total", "counter", "Downlink message status changes (accepted, then pending, delivered, failed, timeout; evicted from the 20-message history).");
    let mut messages = [0u64; 6];
    let mut push = [0u64; 3];
    for shard in shards {
        let m = shard.messages;
        for (sum, value) in
            messages.iter_mut().zip([m.accepted, m.pending, m.delivered, m.failed, m.timeout, m.evicted])
        {
            *sum += value;
        }
        for (sum, value) in
            push.iter_mut().zip([shard.push.sent, shard.push.failed_attempts, shard.push.dropped])
        {
            *sum += value;
        }
    }
    for (label, value) in
        ["accepted", "pending", "delivered", "failed", "timeout", "evicted"].iter().zip(messages)
    {
        let _ = writeln!(o, "ringiot_messages_total{{status=\"{label}\"}} {value}");
    }
    for ((name, help), value) in [
        ("ringiot_push_sent_total", "Push notifications the receiver accepted (2xx)."),
        ("ringiot_push_failed_attempts_total", "Push attempts that failed and will be retried."),
        (
            "ringiot_push_dropped_total",
            "Push notifications dropped because the outbox was full (the oldest go).",
        ),
    ]
    .iter()
    .zip(push)
    {
        header(o, name, "counter", help);
        let _ = writeln!(o, "{name} {value}");
    }

    admission(o, shards);
    tls(o, shards);

    let gauges: [PerShard; 14] = [
        ("ringiot_devices", "gauge", "Registered devices whose home is the shard.", |s| s.devices as u64),
        ("ringiot_devices_online", "gauge", "Devices logged in on the shard.", |s| s.live_sessions as u64),
        ("ringiot_mqtt_connections", "gauge", "Open MQTT connections (logging in or logged in).", |s| {
            s.open_connections as u64
        }),
        (
            "ringiot_device_calls_waiting",
            "gauge",
            "Synchronous calls waiting for their device's answer.",
            |s| s.waiting_calls as u64,
        ),
        ("ringiot_log_written_bytes_total", "counter", "Bytes written to the shard log since start.", |s| {
            s.log.written_bytes
        }),
        ("ringiot_log_records_total", "counter", "Records appended to the shard log since start.", |s| {
            s.log.appended_count
        }),
        ("ringiot_log_batches_total", "counter", "Group-commit batches written since start.", |s| {
            s.log.batch_count
        }),
        ("ringiot_log_fsyncs_total", "counter", "fdatasync calls since start.", |s| s.log.fsync_count),
        ("ringiot_log_last_fsync_seconds", "gauge", "Duration of the latest fdatasync.", |s| {
            s.log.fsync_latency_us_last
        }),
        (
            "ringiot_log_fsync_seconds_total",
            "counter",
            "Time spent in fdatasync since start (divided by ringiot_log_fsyncs_total: the mean).",
            |s| s.log.fsync_latency_us_total,
        ),
        ("ringiot_messages_kept", "gauge", "Downlink messages in the devices' histories.", |s| {
            s.messages_kept.0 as u64
        }),
        ("ringiot_messages_pending", "gauge", "Downlink messages cached for delivery.", |s| {
            s.messages_kept.1 as u64
        }),
        ("ringiot_push_queued", "gauge", "Push notifications waiting in the shard's outbox.", |s| {
            s.push.queued as u64
        }),
        (
            "ringiot_mesh_waiting_calls",
            "gauge",
            "Requests this shard sent to other shards and still waits on.",
            |s| s.mesh_pending as u64,
        ),
    ];
    for (name, kind, help, value) in gauges {
        header(o, name, kind, help);
        for shard in shards {
            let value = value(shard);
            let text = if name.contains("_seconds") { seconds(value) } else { value.to_string() };
            let _ = writeln!(o, "{name}{{shard=\"{}\"}} {text}", shard.shard);
        }
    }
    out
}

/// A per-shard series: name, type, help, and how to read it from a shard's figures.
type PerShard = (&'static str, &'static str, &'static str, fn(&ShardMetrics) -> u64);

/// The MQTT connections that are not logged in yet, and the process-wide bound the open-files
/// plan gives MQTT (`shards::device_access::admission`, `shards::listen::DescriptorPlan`).
fn admission(o: &mut String, shards: &[ShardMetrics]) {
    let (open, max) = shards.first().map_or((0, 0), |shard| shard.mqtt_budget);
    header(
        o,
        "ringiot_mqtt_connections_max",
        "gauge",
        "MQTT connections allowed (all shards), from the open-files limit less the reserve.",
    );
    if max != usize::MAX {
        // Unbounded when the open-files limit could not be read: no series then.
        let _ = writeln!(o, "ringiot_mqtt_connections_max {max}");
    }
    header(
        o,
        "ringiot_mqtt_connections_budgeted",
        "gauge",
        "MQTT connections holding a share of that bound (all shards).",
    );
    let _ = writeln!(o, "ringiot_mqtt_connections_budgeted {open}");
    header(o, "ringiot_mqtt_connections_waiting", "gauge", "MQTT connections waiting for their CONNECT.");
    for shard in shards {
        let _ = writeln!(
            o,
            "ringiot_mqtt_connections_waiting{{shard=\"{}\"}} {}",
            shard.shard, shard.mqtt_waiting
        );
    }
    header(
        o,
        "ringiot_mqtt_connections_closed_before_login_total",
        "counter",
        "MQTT connections closed before a CONNECT: evicted (oldest waiting, to make room), silent (nothing sent within the first-byte timeout), connect_timeout, refused_full (connection bound reached).",
    );
    let mut totals = [0u64; 4];
    for shard in shards {
        let counts = shard.mqtt_admission;
        for (total, value) in totals.iter_mut().zip([
            counts.evicted,
            counts.silent_timeouts,
            counts.connect_timeouts,
            counts.refused_full,
        ]) {
            *total += value;
        }
    }
    for (reason, value) in ["evicted", "silent", "connect_timeout", "refused_full"].iter().zip(totals) {
        let _ =
            writeln!(o, "ringiot_mqtt_connections_closed_before_login_total{{reason=\"{reason}\"}} {value}");
    }
}

/// TLS handshakes of both TLS listeners by result, and TLS connections open per shard
/// (`shards::tls`).
fn tls(o: &mut String, shards: &[ShardMetrics]) {
    use shards::tls::stream::HandshakeFailure;
    let listeners = [("mqtt", 0), ("https", 1)];
    let counts = |shard: &ShardMetrics, index: usize| if index == 0 { shard.tls.0 } else { shard.tls.1 };
    header(
        o,
        "ringiot_tls_handshakes_total",
        "counter",
        "TLS handshakes by listener and result: ok, or why one failed (timeout, closed, too_large, protocol — not TLS, no common parameters, a bad certificate or signature — or io).",
    );
    for (listener, index) in listeners {
        let ok: u64 = shards.iter().map(|shard| counts(shard, index).handshakes_ok).sum();
        let _ = writeln!(o, "ringiot_tls_handshakes_total{{listener=\"{listener}\",result=\"ok\"}} {ok}");
        for (reason_index, reason) in HandshakeFailure::LABELS.iter().enumerate() {
            let failed: u64 =
                shards.iter().map(|shard| counts(shard, index).handshakes_failed[reason_index]).sum();
            let _ = writeln!(
                o,
                "ringiot_tls_handshakes_total{{listener=\"{listener}\",result=\"{reason}\"}} {failed}"
            );
        }
    }
    header(
        o,
        "ringiot_tls_connections",
        "gauge",
        "TLS connections open: MQTT sessions (on their home shard) and HTTPS connections.",
    );
    for shard in shards {
        for (listener, index) in listeners {
            let _ = writeln!(
                o,
                "ringiot_tls_connections{{listener=\"{listener}\",shard=\"{}\"}} {}",
                shard.shard,
                counts(shard, index).open
            );
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn seconds(micros: u64) -> String {
    format!("{:.6}", micros as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: usize, ok: u64) -> ShardMetrics {
        let mut calls = CallMetrics::default();
        for _ in 0..ok {
            calls.count(CallKind::Command, Outcome::Ok);
            calls.record_round_trip(CallKind::Command, 1500);
        }
        ShardMetrics {
            shard: id,
            devices: 3,
            live_sessions: 1,
            open_connections: 2,
            mqtt_waiting: 1,
            mqtt_admission: shards::device_access::admission::AdmissionCounts {
                evicted: ok,
                ..Default::default()
            },
            mqtt_budget: (4, 500),
            tls: Default::default(),
            waiting_calls: 0,
            messages: Default::default(),
            messages_kept: (0, 0),
            push: Default::default(),
            mesh_pending: 0,
            calls,
            uplink: Default::default(),
            reported_properties_dropped: [ok; DropReason::ALL.len()],
            log: Default::default(),
        }
    }

    #[test]
    fn counters_are_summed_over_shards_and_gauges_kept_per_shard() {
        let text = exposition(&[shard(0, 2), shard(1, 1)]);
        assert!(text.contains("ringiot_device_calls_total{kind=\"command\",outcome=\"ok\"} 3\n"), "{text}");
        assert!(text.contains("ringiot_device_calls_total{kind=\"properties_get\",outcome=\"busy\"} 0\n"));
        assert!(text.contains("ringiot_device_call_round_trip_seconds_count{kind=\"command\"} 3\n"));
        assert!(text.contains("ringiot_device_call_round_trip_recent_seconds_count{kind=\"command\"} 3\n"));
        assert!(text.contains(
            "ringiot_device_call_round_trip_recent_seconds{kind=\"command\",quantile=\"0.5\"} 0.0015"
        ));
        assert!(text.contains("ringiot_device_call_round_trip_seconds_sum{kind=\"command\"} 0.004500\n"));
        assert!(
            text.contains("ringiot_device_call_round_trip_seconds{kind=\"command\",quantile=\"0.5\"} 0.0015")
        );
        assert!(text.contains(
            "ringiot_device_call_round_trip_seconds{kind=\"properties_set\",quantile=\"0.99\"} NaN\n"
        ));
        assert!(text.contains("ringiot_devices{shard=\"1\"} 3\n"));
        assert!(text.contains("ringiot_mqtt_connections_max 500\n"), "{text}");
        assert!(text.contains("ringiot_mqtt_connections_waiting{shard=\"1\"} 1\n"));
        assert!(text.contains("ringiot_mqtt_connections_closed_before_login_total{reason=\"evicted\"} 3\n"));
        assert!(
            text.contains("ringiot_reported_properties_dropped_total{reason=\"too_deep\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("# TYPE ringiot_device_call_round_trip_seconds summary\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (_, value) = line.rsplit_once(' ').unwrap();
            assert!(value == "NaN" || value.parse::<f64>().is_ok(), "{line}");
        }
    }
}
