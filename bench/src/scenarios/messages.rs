//! `messages`: device messages to an offline fleet, accepted durably, then delivered at login.
//!
//! Two phases, two result lines:
//!
//! - **accept** (`messages-accept`): D devices are registered but not connected; C keep-alive
//!   HTTP clients send `POST /v5/iot/{project}/devices/{id}/messages` `{"message":"m-<k>"}`
//!   (default ttl), M per device, one call in flight per client, as fast as they are
//!   answered. Client `c` owns devices `c, c+C, c+2C, …` and sends round `k` (the `k`-th
//!   message of each of its devices) before round `k+1`, so a device's messages are created
//!   one after another and the load spreads over every device's home shard. A call counts
//!   when it is answered 201 with `result.status` `PENDING` (the engine has fsynced it, group
//!   commit); latency is the 201's round trip on the bench's clock; throughput = accepted /
//!   (last 201 − start).
//! - **deliver** (`messages-deliver`): the whole fleet logs in at once (as in `connect`); the
//!   engine publishes each device's pending messages right after its CONNACK, QoS 0, on
//!   `$oc/devices/{id}/sys/messages/down`, in creation order (no SUBSCRIBE needed). The bench
//!   waits until every accepted message has arrived (or none has for [`DELIVERY_STALL`]),
//!   then checks that each device got exactly its message ids in creation order (errors
//!   otherwise, see [`order_errors`](crate::downlink::order_errors)). Throughput = messages
//!   received / (last one received − first CONNECT); the percentiles are per device: its
//!   CONNECT sent → its last message received.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Deserialize;

use crate::clients::LiveCounters;
use crate::downlink::DownlinkLog;
use crate::fleet::{device_id, Fleet, FleetConfig};
use crate::http::HttpConnection;
use crate::observe;
use crate::registration::register_fleet;
use crate::scenarios::{spawn_progress, thousands, CpuWindow};
use crate::stats::{merge_all, round3, LatencyHistogram, ResultLine, RunShape};
use crate::target::Target;

pub const ACCEPT_SCENARIO: &str = "messages-accept";
pub const DELIVER_SCENARIO: &str = "messages-deliver";
/// The delivery phase gives up when no expected message has arrived for this long.
pub const DELIVERY_STALL: Duration = Duration::from_secs(15);
const DELIVERY_DEADLINE: Duration = Duration::from_secs(600);
const ERROR_PAUSE: Duration = Duration::from_millis(1);

#[derive(Debug, Clone)]
pub struct MessagesOptions {
    pub devices: u64,
    pub per_device: u64,
    pub clients: usize,
    pub keep_alive_s: u16,
    pub logins_in_flight_max: usize,
}

/// What a CreateMessage 201 says: `{"message_id","result":{"status","created_time"}}`.
#[derive(Debug, Deserialize)]
struct Created {
    message_id: String,
    result: CreatedResult,
}

#[derive(Debug, Deserialize)]
struct CreatedResult {
    status: String,
}

/// The message id of a CreateMessage answer that accepted the message for later delivery.
pub fn accepted_message_id(status: u16, body: &[u8]) -> Result<String, String> {
    let text = || String::from_utf8_lossy(body).into_owned();
    if status != 201 {
        return Err(format!("{status} {}", text()));
    }
    let created: Created = serde_json::from_slice(body)
        .map_err(|error| format!("201 with an unexpected body ({error}): {}", text()))?;
    if created.result.status != "PENDING" {
        return Err(format!("201 but status {} (not PENDING): {}", created.result.status, text()));
    }
    Ok(created.message_id)
}

/// The devices client `client_index` of `clients` owns: `client_index, +clients, …`.
pub fn devices_of(client_index: usize, clients: usize, devices: u64) -> impl Iterator<Item = u64> {
    (client_index as u64..devices).step_by(clients.max(1))
}

/// What one client did in the accept phase.
#[derive(Debug)]
struct AcceptResult {
    latency: LatencyHistogram,
    accepted: u64,
    errors: u64,
    first_error: Option<String>,
    /// (device index, message id) of each accepted message, in the order they were created.
    created: Vec<(u64, String)>,
    last_answer: Option<Instant>,
}

async fn post_messages(
    mut connection: HttpConnection,
    target: Target,
    client_index: usize,
    options: MessagesOptions,
    live: Arc<LiveCounters>,
) -> AcceptResult {
    let mut result = AcceptResult {
        latency: LatencyHistogram::new(),
        accepted: 0,
        errors: 0,
        first_error: None,
        created: Vec::new(),
        last_answer: None,
    };
    let headers = [("X-Auth-Token", target.token.as_str()), ("Content-Type", "application/json")];
    let clients = options.clients;
    for round in 0..options.per_device {
        let body = format!(r#"{{"message":"m-{round}"}}"#);
        for device in devices_of(client_index, clients, options.devices) {
            let path = format!("/v5/iot/{}/devices/{}/messages", target.project_id, device_id(device));
            let sent = Instant::now();
            let outcome = match connection.request("POST", &path, &headers, body.as_bytes()).await {
                Ok(response) => accepted_message_id(response.status, &response.body),
                Err(error) => Err(error.to_string()),
            };
            let done = Instant::now();
            result.last_answer = Some(done);
            match outcome {
                Ok(message_id) => {
                    live.ops.fetch_add(1, Ordering::Relaxed);
                    result.accepted += 1;
                    result.latency.record_us((done - sent).as_micros() as u64);
                    result.created.push((device, message_id));
                }
                Err(error) => {
                    live.errors.fetch_add(1, Ordering::Relaxed);
                    result.errors += 1;
                    result.first_error.get_or_insert(error);
                    tokio::time::sleep(ERROR_PAUSE).await;
                }
            }
        }
    }
    result
}

pub async fn run(options: &MessagesOptions, target: &Target) -> anyhow::Result<Vec<ResultLine>> {
    register_fleet(target, options.devices).await?;
    let clients = options.clients.min(options.devices as usize).max(1);
    let options = MessagesOptions { clients, ..options.clone() };
    let mut connections = Vec::with_capacity(clients);
    for _ in 0..clients {
        connections.push(HttpConnection::connect(&target.http).await.context("opening an HTTP client")?);
    }

    // Accept.
    let live = Arc::new(LiveCounters::default());
    let window = CpuWindow::open(target.pid);
    let started = Instant::now();
    let progress = spawn_progress("accept".to_owned(), live.clone(), started);
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(client_index, connection)| {
            tokio::spawn(post_messages(
                connection,
                target.clone(),
                client_index,
                options.clone(),
                live.clone(),
            ))
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.expect("a client task panicked"));
    }
    let cpu = window.close();
    progress.abort();
    let last_answer = results.iter().filter_map(|result| result.last_answer).max().unwrap_or(started);
    let accept_s = last_answer.saturating_duration_since(started).as_secs_f64();
    let latency = merge_all(results.iter().map(|result| &result.latency));
    let shape = RunShape {
        devices: options.devices,
        clients: clients as u64,
        duration_s: accept_s,
        ops: results.iter().map(|result| result.accepted).sum(),
        errors: results.iter().map(|result| result.errors).sum(),
    };
    let mut accept = ResultLine::new(ACCEPT_SCENARIO, "ringiot", shape, latency.summary());
    accept.per_device = Some(options.per_device);
    accept.engine_rss_bytes = target.pid.and_then(observe::resident_bytes);
    accept.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    accept.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    eprintln!();
    eprintln!(
        "messages-accept: {} of {} messages accepted (201 PENDING) in {accept_s:.2} s = {} accepted/s; \
         p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs; {} errors",
        thousands(accept.ops),
        thousands(options.devices * options.per_device),
        thousands(accept.throughput_per_s.round() as u64),
        thousands(accept.p50_us),
        thousands(accept.p90_us),
        thousands(accept.p99_us),
        thousands(accept.p999_us),
        thousands(accept.max_us),
        accept.errors
    );
    cpu.print("engine");
    if let Some(error) = results.iter().find_map(|result| result.first_error.as_ref()) {
        eprintln!("[accept] first error: {error}");
    }

    // Deliver.
    let mut expected = vec![Vec::new(); options.devices as usize];
    for result in results {
        for (device, message_id) in result.created {
            expected[device as usize].push(message_id);
        }
    }
    let log = Arc::new(DownlinkLog::expecting(expected));
    let expected_total = accept.ops;
    let config = FleetConfig {
        downlink: Some(log.clone()),
        ..FleetConfig::for_engine(
            options.devices,
            target.mqtt.clone(),
            options.keep_alive_s,
            options.logins_in_flight_max,
        )
    };
    let window = CpuWindow::open(target.pid);
    let progress = spawn_delivery_progress(log.clone(), expected_total);
    let (fleet, logins) = Fleet::start(config).await?;
    wait_for_deliveries(&log, expected_total).await;
    let cpu = window.close();
    progress.abort();
    fleet.stop().await;
    let check = log.check();
    let deliver_s =
        check.last_at.map_or(0.0, |last| last.saturating_duration_since(logins.first_connect).as_secs_f64());
    let shape = RunShape {
        devices: options.devices,
        clients: 0,
        duration_s: deliver_s,
        ops: check.received,
        errors: check.errors,
    };
    let mut deliver = ResultLine::new(DELIVER_SCENARIO, "ringiot", shape, check.per_device.summary());
    deliver.per_device = Some(options.per_device);
    deliver.devices_wrong = Some(check.devices_wrong);
    deliver.logins_s = Some(round3(logins.elapsed().as_secs_f64()));
    deliver.engine_rss_bytes = target.pid.and_then(observe::resident_bytes);
    deliver.target_cpu_s = cpu.target.as_ref().map(|usage| round3(usage.total.as_secs_f64()));
    deliver.bench_cpu_s = Some(round3(cpu.bench.total.as_secs_f64()));
    eprintln!();
    eprintln!(
        "messages-deliver: {} of {} messages received {deliver_s:.2} s after the first CONNECT = {} \
         delivered/s ({} logins in {:.2} s); per device CONNECT → last message p50 {} µs, p99 {} µs, \
         max {} µs",
        thousands(check.received),
        thousands(expected_total),
        thousands(deliver.throughput_per_s.round() as u64),
        thousands(logins.accepted),
        logins.elapsed().as_secs_f64(),
        thousands(deliver.p50_us),
        thousands(deliver.p99_us),
        thousands(deliver.max_us)
    );
    eprintln!(
        "order check: {} of {} devices got exactly their messages in creation order; {} errors",
        thousands(options.devices - check.devices_wrong),
        thousands(options.devices),
        check.errors
    );
    if let Some((index, want, got)) = &check.first_wrong {
        eprintln!("first wrong device {}: expected {want:?}, received {got:?}", device_id(*index));
    }
    if check.foreign > 0 {
        eprintln!("{} messages from earlier runs were delivered too (not counted)", check.foreign);
    }
    if logins.failed > 0 {
        eprintln!("{} logins failed, first: {:?}", logins.failed, logins.first_failure);
    }
    cpu.print("engine");
    eprintln!();
    eprintln!(
        "messages: {} accepted/s (durable 201s), {} delivered/s (at login)",
        thousands(accept.throughput_per_s.round() as u64),
        thousands(deliver.throughput_per_s.round() as u64)
    );
    Ok(vec![accept, deliver])
}

/// Returns once every expected message is in, or none has come for [`DELIVERY_STALL`].
async fn wait_for_deliveries(log: &DownlinkLog, expected_total: u64) {
    let give_up = Instant::now() + DELIVERY_DEADLINE;
    let mut last_count = log.expected_received();
    let mut last_change = Instant::now();
    while log.expected_received() < expected_total {
        tokio::time::sleep(Duration::from_millis(2)).await;
        let count = log.expected_received();
        if count != last_count {
            (last_count, last_change) = (count, Instant::now());
        } else if last_change.elapsed() > DELIVERY_STALL || Instant::now() > give_up {
            eprintln!(
                "[deliver] gave up waiting: {} of {} messages arrived, none in the last {:.0} s",
                thousands(count),
                thousands(expected_total),
                last_change.elapsed().as_secs_f64()
            );
            return;
        }
    }
}

fn spawn_delivery_progress(log: Arc<DownlinkLog>, expected_total: u64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        ticker.tick().await;
        let mut previous = 0;
        loop {
            ticker.tick().await;
            let received = log.expected_received();
            eprintln!(
                "[deliver] {:>5.1} s: {received} of {expected_total} messages ({}/s)",
                started.elapsed().as_secs_f64(),
                received - previous
            );
            previous = received;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_201_gives_the_message_id() {
        let body = br#"{"message_id":"m1","result":{"status":"PENDING","created_time":"20261126T101010Z"}}"#;
        assert_eq!(accepted_message_id(201, body), Ok("m1".to_owned()));
    }

    #[test]
    fn other_answers_are_errors() {
        let delivered = br#"{"message_id":"m1","result":{"status":"DELIVERED","created_time":"x"}}"#;
        assert!(accepted_message_id(201, delivered).unwrap_err().contains("DELIVERED"));
        let refused = br#"{"error_code":"IOTDA.014016","error_msg":"offline"}"#;
        assert!(accepted_message_id(400, refused).unwrap_err().starts_with("400 "));
        assert!(accepted_message_id(201, b"{}").unwrap_err().contains("unexpected body"));
    }

    #[test]
    fn clients_own_disjoint_devices_that_cover_the_fleet() {
        let (clients, devices) = (4, 10);
        let mut seen: Vec<u64> =
            (0..clients).flat_map(|client| devices_of(client, clients, devices)).collect();
        assert_eq!(devices_of(1, clients, devices).collect::<Vec<_>>(), vec![1, 5, 9]);
        seen.sort_unstable();
        assert_eq!(seen, (0..devices).collect::<Vec<_>>());
    }
}
