//! `batch`: one CreateBatchTask of type `createCommands` over the whole fleet, timed to its end.
//!
//! D answering devices are registered and logged in (the fleet, as in `command-rtt`); once
//! `/metrics` counts them all online, one `POST /v5/iot/{project}/batchtasks`
//! `{"task_name":"bench","task_type":"createCommands","targets":[every id],
//! "document":{"paras":{"n":1}}}` is sent (201 with `task_id`), and
//! `GET /v5/iot/{project}/batchtasks/{task_id}` is polled at once and then every
//! `--poll-ms` (20 ms) until `batchtask.status` is final (Success, Fail, PartialSuccess,
//! Stopped). Time to finish = from just before the POST is written until the answer of the
//! first poll showing a final status has been read (so it carries up to one poll interval
//! plus one poll's round trip). Throughput = targets finished / that time; errors =
//! `task_progress.fail`. The percentiles are per device: from the POST until the command
//! request reached the device (on the bench's clock).
//!
//! Every poll's answer lists all D targets (the task object carries `targets`), so polling
//! costs the engine one D-id JSON serialisation per poll — part of what is measured.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Deserialize;

use crate::downlink::DownlinkLog;
use crate::fleet::{device_id, Fleet, FleetConfig};
use crate::http::HttpConnection;
use crate::observe;
use crate::registration::register_fleet;
use crate::scenarios::{thousands, wait_all_online, CpuWindow};
use crate::stats::{round3, LatencyHistogram, ResultLine, RunShape};
use crate::target::Target;

pub const SCENARIO: &str = "batch";
const ONLINE_DEADLINE: Duration = Duration::from_secs(120);
const FINISH_DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct BatchOptions {
    pub devices: u64,
    pub poll_every: Duration,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
}

/// The CreateBatchTask body for devices `0..devices`.
pub fn create_body(devices: u64) -> String {
    let targets: Vec<String> = (0..devices).map(device_id).collect();
    serde_json::json!({
        "task_name": "bench",
        "task_type": "createCommands",
        "targets": targets,
        "document": {"paras": {"n": 1}},
    })
    .to_string()
}

#[derive(Debug, Deserialize)]
struct Created {
    task_id: String,
}

/// The `task_id` of a CreateBatchTask 201.
pub fn created_task_id(status: u16, body: &[u8]) -> Result<String, String> {
    let text = || String::from_utf8_lossy(body).chars().take(500).collect::<String>();
    if status != 201 {
        return Err(format!("CreateBatchTask answered {status}: {}", text()));
    }
    serde_json::from_slice::<Created>(body)
        .map(|created| created.task_id)
        .map_err(|error| format!("CreateBatchTask 201 without a task_id ({error}): {}", text()))
}

/// `batchtask.status` and `batchtask.task_progress` of a ShowBatchTask answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TaskSnapshot {
    pub status: String,
    pub task_progress: Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct Progress {
    #[serde(default)]
    pub total: u64,
    #[serde(default)]
    pub success: u64,
    #[serde(default)]
    pub fail: u64,
    #[serde(default)]
    pub stopped: u64,
}

#[derive(Debug, Deserialize)]
struct Show {
    batchtask: TaskSnapshot,
}

/// Parses a ShowBatchTask 200.
pub fn parse_show(status: u16, body: &[u8]) -> Result<TaskSnapshot, String> {
    let text = || String::from_utf8_lossy(body).chars().take(500).collect::<String>();
    if status != 200 {
        return Err(format!("ShowBatchTask answered {status}: {}", text()));
    }
    serde_json::from_slice::<Show>(body).map(|show| show.batchtask).map_err(|error| {
        format!("ShowBatchTask 200 without batchtask.status/task_progress ({error}): {}", text())
    })
}

/// Whether a task status is one a task does not leave.
pub fn is_final(status: &str) -> bool {
    matches!(status, "Success" | "Fail" | "PartialSuccess" | "Stopped")
}

pub async fn run(options: &BatchOptions, target: &Target) -> anyhow::Result<ResultLine> {
    register_fleet(target, options.devices).await?;
    let log = Arc::new(DownlinkLog::default());
    let config = FleetConfig {
        downlink: Some(log.clone()),
        ..FleetConfig::for_engine(
            options.devices,
            target.mqtt.clone(),
            options.keep_alive_s,
            options.logins_in_flight_max,
        )
    };
    let (fleet, logins) = Fleet::start(config).await?;
    if logins.failed > 0 {
        bail!("{} of {} logins failed, first: {:?}", logins.failed, options.devices, logins.first_failure);
    }
    wait_all_online(target, options.devices, ONLINE_DEADLINE).await?;
    eprintln!(
        "{} devices online on ringiot ({:.2} s of logins)",
        thousands(options.devices),
        logins.elapsed().as_secs_f64()
    );

    let body = create_body(options.devices);
    let headers = [("X-Auth-Token", target.token.as_str()), ("Content-Type", "application/json")];
    let mut connection = HttpConnection::connect(&target.http).await.context("connecting to the REST API")?;
    let window = CpuWindow::open(target.pid);
    let posted = Instant::now();
    let response = connection
        .request("POST", &format!("/v5/iot/{}/batchtasks", target.project_id), &headers, body.as_bytes())
        .await?;
    let created_s = posted.elapsed().as_secs_f64();
    let task_id = created_task_id(response.status, &response.body).map_err(anyhow::Error::msg)?;
    let show_path = format!("/v5/iot/{}/batchtasks/{task_id}?limit=1", target.project_id);
    let mut ticker = tokio::time::interval(options.poll_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut polls = 0;
    let (mut poll_total, mut poll_max) = (Duration::ZERO, Duration::ZERO);
    let mut next_progress = posted + Duration::from_secs(1);
    let (snapshot, finished) = loop {
        ticker.tick().await;
        let sent = Instant::now();
        let response = connection.request("GET", &show_path, &headers, b"").await?;
        let read = Instant::now();
        polls += 1;
        poll_total += read - sent;
        poll_max = poll_max.max(read - sent);
        let snapshot = parse_show(response.status, &response.body).map_err(anyhow::Error::msg)?;
        if is_final(&snapshot.status) {
            break (snapshot, read);
        }
        if read >= next_progress {
            let progress = snapshot.task_progress;
            eprintln!(
                "[batch] {:>5.1} s: {}, {} of {} succeeded, {} failed; {} commands reached devices",
                posted.elapsed().as_secs_f64(),
                snapshot.status,
                progress.success,
                progress.total,
                progress.fail,
                log.command_times().len()
            );
            next_progress += Duration::from_secs(1);
        }
        if posted.elapsed() > FINISH_DEADLINE {
            bail!("task {task_id} not finished after {FINISH_DEADLINE:?}: {snapshot:?}");
        }
    };
    let cpu = window.close();
    let commands = log.command_times();
    fleet.stop().await;

    let finish_s = finished.saturating_duration_since(posted).as_secs_f64();
    let mut reached = LatencyHistogram::new();
    for at in &commands {
        reached.record_us(at.saturating_duration_since(posted).as_micros() as u64);
    }
    let progress = snapshot.task_progress;
    let shape = RunShape {
        devices: options.devices,
        clients: 1,
        duration_s: finish_s,
        ops: progress.success + progress.fail,
        errors: progress.fail,
    };
    let mut line = ResultLine::new(SCENARIO, "ringiot", shape, reached.summary());
    line.engine_rss_bytes = target.pid.and_then(observe::resident_bytes);
    line.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    line.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    line.logins_s = Some(round3(logins.elapsed().as_secs_f64()));
    line.task_status = Some(snapshot.status.clone());
    line.task_success = Some(progress.success);
    line.task_fail = Some(progress.fail);
    line.polls = Some(polls);

    eprintln!();
    eprintln!(
        "batch: {} targets, {} after {finish_s:.3} s (201 after {:.3} s; {polls} polls, round trip mean {:.1} \
         ms, max {:.1} ms) = {} targets/s; success {}, fail {}, stopped {}",
        thousands(options.devices),
        snapshot.status,
        created_s,
        poll_total.as_secs_f64() * 1000.0 / polls as f64,
        poll_max.as_secs_f64() * 1000.0,
        thousands(line.throughput_per_s.round() as u64),
        thousands(progress.success),
        thousands(progress.fail),
        thousands(progress.stopped)
    );
    eprintln!(
        "POST → command at the device: {} commands, p50 {} µs, p90 {} µs, p99 {} µs, max {} µs",
        thousands(commands.len() as u64),
        thousands(line.p50_us),
        thousands(line.p90_us),
        thousands(line.p99_us),
        thousands(line.max_us)
    );
    cpu.print("engine");
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_lists_every_device_once() {
        let body: serde_json::Value = serde_json::from_str(&create_body(3)).unwrap();
        assert_eq!(body["task_type"], "createCommands");
        assert_eq!(body["targets"], serde_json::json!(["bench_n0", "bench_n1", "bench_n2"]));
        assert_eq!(body["document"], serde_json::json!({"paras": {"n": 1}}));
    }

    #[test]
    fn a_201_gives_the_task_id() {
        assert_eq!(created_task_id(201, br#"{"task_id":"abc","status":"Initializing"}"#), Ok("abc".into()));
        assert!(created_task_id(400, br#"{"error_code":"IOTDA.000006"}"#).unwrap_err().contains("400"));
        assert!(created_task_id(201, b"{}").is_err());
    }

    #[test]
    fn a_show_gives_status_and_progress() {
        let body = br#"{"batchtask":{"task_id":"abc","targets":["a","b"],"status":"PartialSuccess",
            "task_progress":{"total":2,"processing":0,"success":1,"fail":1,"waitting":0,
            "fail_wait_retry":0,"stopped":0,"removed":0}},"task_details":[],"page":{"count":2}}"#;
        let snapshot = parse_show(200, body).unwrap();
        assert_eq!(snapshot.status, "PartialSuccess");
        assert_eq!(snapshot.task_progress, Progress { total: 2, success: 1, fail: 1, stopped: 0 });
        assert!(parse_show(404, b"{}").is_err());
        assert!(parse_show(200, br#"{"batchtask":{}}"#).is_err());
    }

    #[test]
    fn final_statuses_are_the_four_the_spec_names() {
        for status in ["Success", "Fail", "PartialSuccess", "Stopped"] {
            assert!(is_final(status), "{status}");
        }
        for status in ["Initializing", "Waitting", "Processing", "Stopping", "success"] {
            assert!(!is_final(status), "{status}");
        }
    }
}
