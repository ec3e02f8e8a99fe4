//! The checks after each restart, against what the load recorded before the kill.
//!
//! A **loss** is an acknowledged write the restarted engine no longer has: a 201'd device
//! missing, a 201'd message missing from its device's list or never delivered, a PUBACKed
//! property report older than the shadow's value, a 201'd batch task missing or a target result
//! seen final that changed. Anything else odd (an order violation, a DELIVERED that went back
//! to PENDING, a refused call, a connection broken before the kill) is an **anomaly**. Both are
//! kept with enough detail to investigate; the campaign fails on either.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mqttbytes::QoS;
use serde_json::Value;
use tests::batch::FINAL_STATUSES;
use tests::messages::down_topic;
use tests::mqtt::MqttDevice;
use tests::{Client, Engine};

use crate::device::{Control, SimulatedDevice, SECRET};
use crate::load::{error_code, BatchLog, MessageLog, RegistrationLog, Unknown};

/// How long the deliveries, the tasks' ends and the status changes of a cycle may take after
/// the restart, all together (one deadline, so a failing cycle reports in bounded time).
const SETTLE: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(25);
/// How long a device's downlink is read for after the deadline, once nothing more comes.
const DRAIN_IDLE: Duration = Duration::from_millis(500);

/// Checked and lost writes of one kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindTally {
    pub checked: u64,
    pub lost: u64,
}

/// What the checks counted and found, over the whole campaign.
#[derive(Debug, Default)]
pub struct Tally {
    pub kinds: BTreeMap<&'static str, KindTally>,
    pub unknown_outcomes: u64,
    pub duplicate_deliveries: u64,
    /// Batch targets the restart ended with `IOTDA.000503` (unfinished at the kill).
    pub restart_failed_targets: u64,
    pub losses: Vec<String>,
    pub anomalies: Vec<String>,
}

impl Tally {
    fn checked(&mut self, kind: &'static str, ok: bool, loss: impl FnOnce() -> String) {
        let entry = self.kinds.entry(kind).or_default();
        entry.checked += 1;
        if !ok {
            entry.lost += 1;
            self.losses.push(loss());
        }
    }

    pub fn lost_total(&self) -> u64 {
        self.kinds.values().map(|kind| kind.lost).sum()
    }
}

/// Everything one cycle's load recorded.
#[derive(Debug)]
pub struct CycleLoad {
    pub cycle: usize,
    pub killed_at: Instant,
    pub registrations: Vec<RegistrationLog>,
    /// Messages to the online devices, with the device each went to.
    pub online: Vec<(MessageLog, SimulatedDevice)>,
    /// Messages to devices that stay offline until the checks log them in.
    pub offline: Vec<MessageLog>,
    pub batch: BatchLog,
    /// Stops the online devices once the checks are done.
    pub control: Arc<Control>,
}

impl CycleLoad {
    fn unknowns(&self) -> impl Iterator<Item = &Unknown> {
        let registrations = self.registrations.iter().filter_map(|log| log.unknown.as_ref());
        let online = self.online.iter().filter_map(|(log, _)| log.unknown.as_ref());
        let offline = self.offline.iter().filter_map(|log| log.unknown.as_ref());
        registrations.chain(online).chain(offline).chain(self.batch.unknown.as_ref())
    }
}

/// Runs every check of one cycle on the restarted engine (its devices keep running).
pub fn verify_cycle(engine: &Engine, load: &CycleLoad, tally: &mut Tally) {
    let client = engine.client_a();
    let cycle = load.cycle;
    for unknown in load.unknowns() {
        tally.unknown_outcomes += 1;
        if unknown.at < load.killed_at {
            tally
                .anomalies
                .push(format!("cycle {cycle}: a connection broke before the kill: {}", unknown.error));
        }
    }
    let refused = load.registrations.iter().flat_map(|log| &log.refused);
    let refused = refused.chain(load.online.iter().flat_map(|(log, _)| &log.refused));
    let refused = refused.chain(load.offline.iter().flat_map(|log| &log.refused)).chain(&load.batch.refused);
    for refusal in refused {
        tally
            .anomalies
            .push(format!("cycle {cycle}: {} refused: {} {}", refusal.what, refusal.status, refusal.body));
    }
    let deadline = Instant::now() + SETTLE;
    check_registrations(&client, load, tally);
    check_batch_tasks(&client, load, deadline, tally);
    check_shadows(&client, load, tally);
    for (log, _) in &load.online {
        check_listed(&client, cycle, log, tally);
    }
    for log in &load.offline {
        check_listed(&client, cycle, log, tally);
    }
    // Every offline target logs in at once and gets its cached messages meanwhile.
    let logged_in: Vec<MqttDevice> =
        load.offline.iter().map(|log| MqttDevice::login(engine.mqtt, &log.device_id, SECRET)).collect();
    for (log, mut device) in load.offline.iter().zip(logged_in) {
        let received = receive_until_complete(&mut device, log, deadline);
        device.disconnect();
        check_received(cycle, log, &received, tally);
    }
    for (log, device) in &load.online {
        let received = wait_received(log, device, deadline);
        check_received(cycle, log, &received, tally);
    }
    for log in load.online.iter().map(|(log, _)| log).chain(&load.offline) {
        check_delivered(&client, cycle, log, deadline, tally);
    }
}

fn check_registrations(client: &Client, load: &CycleLoad, tally: &mut Tally) {
    for device_id in load.registrations.iter().flat_map(|log| &log.acked) {
        let shown = client.get(&format!("devices/{device_id}"));
        tally.checked("registrations", shown.status == 200, || {
            format!(
                "cycle {}: device {device_id} got a 201 and is gone: {} {}",
                load.cycle,
                shown.status,
                shown.text()
            )
        });
    }
}

fn check_batch_tasks(client: &Client, load: &CycleLoad, deadline: Instant, tally: &mut Tally) {
    for task in &load.batch.tasks {
        let Some(shown) = wait_task_final(client, &task.task_id, deadline) else {
            tally.checked("batch tasks", false, || {
                format!("cycle {}: batch task {} got a 201 and is gone", load.cycle, task.task_id)
            });
            continue;
        };
        tally.checked("batch tasks", true, String::new);
        let status = shown["batchtask"]["status"].as_str().unwrap_or_default().to_owned();
        if !FINAL_STATUSES.contains(&status.as_str()) {
            tally.anomalies.push(format!("cycle {}: task {} never ended: {shown}", load.cycle, task.task_id));
        }
        let details: BTreeMap<String, (String, String)> = shown["task_details"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                let target = d["target"].as_str().unwrap_or_default().to_owned();
                (target, (d["status"].as_str().unwrap_or_default().to_owned(), error_code(d)))
            })
            .collect();
        let targets: HashSet<&String> = task.targets.iter().collect();
        if details.keys().collect::<HashSet<_>>() != targets {
            tally
                .anomalies
                .push(format!("cycle {}: task {} lists other targets: {shown}", load.cycle, task.task_id));
        }
        tally.restart_failed_targets +=
            details.values().filter(|(_, code)| code == "IOTDA.000503").count() as u64;
        for (target, seen) in &task.seen_final {
            let now = details.get(target);
            tally.checked("batch results", now == Some(seen), || {
                format!(
                    "cycle {}: task {} target {target} was {seen:?} before the kill, {now:?} after",
                    load.cycle, task.task_id
                )
            });
        }
    }
}

/// ShowBatchTask until the task has a final status (or the deadline); `None` if it is not found.
fn wait_task_final(client: &Client, task_id: &str, deadline: Instant) -> Option<Value> {
    loop {
        let response = client.get(&format!("batchtasks/{task_id}?limit=50"));
        if response.status == 404 {
            return None;
        }
        let shown = response.json();
        if FINAL_STATUSES.contains(&shown["batchtask"]["status"].as_str().unwrap_or_default())
            || Instant::now() >= deadline
        {
            return Some(shown);
        }
        thread::sleep(POLL);
    }
}

fn check_shadows(client: &Client, load: &CycleLoad, tally: &mut Tally) {
    for (_, device) in &load.online {
        let (acked, sent) = {
            let record = device.record.lock().unwrap();
            (record.report_acked, record.report_sent)
        };
        let Some(acked) = acked else { continue };
        let shadow = client.get(&format!("devices/{}/shadow", device.device_id)).json();
        let level = shadow["shadow"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|service| service["service_id"] == "water")
            .and_then(|service| service["reported"]["properties"]["level"].as_u64());
        let sent = sent.expect("a report was acknowledged, so one was sent");
        tally.checked("property reports", level.is_some_and(|level| level >= acked && level <= sent), || {
            format!(
                "cycle {}: {} had report {acked} PUBACKed (sent up to {sent}); the shadow says {level:?}: {shadow}",
                load.cycle, device.device_id
            )
        });
    }
}

/// Every acknowledged message is in its device's list, with a sane status.
fn check_listed(client: &Client, cycle: usize, log: &MessageLog, tally: &mut Tally) {
    let listed = list_statuses(client, &log.device_id);
    for (message_id, acked_status) in log.acked() {
        let status = listed.get(message_id);
        tally.checked("messages listed", status.is_some(), || {
            format!("cycle {cycle}: message {message_id} to {} got a 201 ({acked_status}) and is not listed: {listed:?}", log.device_id)
        });
        match (acked_status, status.map(String::as_str)) {
            (_, None) | ("PENDING", Some("PENDING" | "DELIVERED")) | ("DELIVERED", Some("DELIVERED")) => {}
            (before, Some(after)) => tally.anomalies.push(format!(
                "cycle {cycle}: message {message_id} to {} was {before} in its 201, {after} after the restart",
                log.device_id
            )),
        }
    }
}

fn list_statuses(client: &Client, device_id: &str) -> BTreeMap<String, String> {
    let response = client.get(&format!("devices/{device_id}/messages"));
    assert_eq!(response.status, 200, "ListDeviceMessages of {device_id}: {}", response.text());
    response.json()["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let id = m["message_id"].as_str().unwrap_or_default().to_owned();
            (id, m["status"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Reads a logged-in offline target's downlink until every acknowledged message came, or
/// nothing came for a while — at least [`DRAIN_IDLE`], longer until the shared deadline — so a
/// device read after the deadline still shows what reached it. The ids in arrival order.
fn receive_until_complete(device: &mut MqttDevice, log: &MessageLog, deadline: Instant) -> Vec<String> {
    let expected: HashSet<&str> = log.acked().map(|(id, _)| id).collect();
    let mut received = Vec::new();
    while !expected.iter().all(|id| received.iter().any(|r: &String| r == id)) {
        let wait = deadline.saturating_duration_since(Instant::now()).max(DRAIN_IDLE);
        let Some(publish) = device.next_publish(wait) else { break };
        assert_eq!(publish.topic, down_topic(&log.device_id), "only messages come down");
        if publish.qos == QoS::AtLeastOnce {
            device.puback(publish.pkid);
        }
        let payload: Value = serde_json::from_slice(&publish.payload).unwrap_or(Value::Null);
        received.push(payload["id"].as_str().map_or_else(|| format!("<no id: {payload}>"), str::to_owned));
    }
    received
}

/// Waits until the online device received every acknowledged message; its arrivals so far.
fn wait_received(log: &MessageLog, device: &SimulatedDevice, deadline: Instant) -> Vec<String> {
    loop {
        let received = device.record.lock().unwrap().received.clone();
        let complete = log.acked().all(|(id, _)| received.iter().any(|r| r == id));
        if complete || Instant::now() >= deadline {
            return received;
        }
        thread::sleep(POLL);
    }
}

/// At least once, in creation order: every acknowledged message arrived, and the first
/// arrivals of the device's messages follow their creation order.
fn check_received(cycle: usize, log: &MessageLog, received: &[String], tally: &mut Tally) {
    let creation_index = log.creation_index();
    for (message_id, _) in log.acked() {
        tally.checked("messages delivered", received.iter().any(|r| r == message_id), || {
            format!("cycle {cycle}: message {message_id} to {} got a 201 and never arrived; arrivals: {received:?}", log.device_id)
        });
    }
    let mut seen = HashSet::new();
    let mut last_index = None;
    for id in received {
        if !seen.insert(id.as_str()) {
            tally.duplicate_deliveries += 1;
            continue;
        }
        let Some(&index) = creation_index.get(id.as_str()) else {
            tally
                .anomalies
                .push(format!("cycle {cycle}: {} received a message never created: {id}", log.device_id));
            continue;
        };
        if last_index.is_some_and(|last| index < last) {
            tally.anomalies.push(format!(
                "cycle {cycle}: {} received {id} after a later message (out of creation order): {received:?}",
                log.device_id
            ));
        }
        last_index = Some(index);
    }
}

/// Every acknowledged message ends DELIVERED once its device received it.
fn check_delivered(client: &Client, cycle: usize, log: &MessageLog, deadline: Instant, tally: &mut Tally) {
    loop {
        let listed = list_statuses(client, &log.device_id);
        let undelivered: Vec<(&str, Option<&String>)> = log
            .acked()
            .map(|(id, _)| (id, listed.get(id)))
            .filter(|(_, status)| status.is_some_and(|s| s != "DELIVERED"))
            .collect();
        if undelivered.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            tally.anomalies.push(format!(
                "cycle {cycle}: {} received its messages but these are not DELIVERED: {undelivered:?}",
                log.device_id
            ));
            return;
        }
        thread::sleep(POLL);
    }
}
