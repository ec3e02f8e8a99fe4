//! The REST load of one cycle, each kind on its own threads with its own keep-alive connection,
//! paced by the seeded RNG, running until the kill (or its bound):
//! - registration workers: AddDevice of fresh devices;
//! - one message sender per target device: CreateMessage one after another (so a device's
//!   creation order is the sender's order), each with its own `message_id`;
//! - one batch worker: createCommands tasks over the cycle's devices (half of the online ones
//!   never answer, so a task runs until the command timeout), each polled a few times,
//!   remembering every target result it saw final.
//!
//! Every call ends as acknowledged (the success status), refused (another status) or unknown
//! (the connection broke: the engine may or may not have done it). A thread stops at its first
//! unknown outcome, so each has at most one, and a sender's unknown message is its last.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use serde_json::{json, Value};
use tests::batch::{set_level, task_body, FINAL_STATUSES};
use tests::keep_alive::KeepAliveClient;
use tests::{Auth, Client, HttpResponse, PROJECT_A};

use crate::device::SECRET;
use crate::rng::Rng;

/// Bounds per cycle: a device keeps its 20 newest messages, so a sender stays below that.
pub const MESSAGES_PER_DEVICE_MAX: usize = 15;
pub const REGISTRATIONS_PER_WORKER_MAX: usize = 500;
pub const BATCH_TASKS_MAX: usize = 30;
/// Polls of one batch task before the worker creates the next one (tasks whose mute targets
/// wait for the command timeout are still running at the kill).
const BATCH_POLLS_MAX: usize = 8;

pub fn keep_alive_client(http: SocketAddr) -> KeepAliveClient {
    KeepAliveClient::new(Client::new(http, PROJECT_A.project_id, Auth::Token(PROJECT_A.token.into())))
}

/// A call that was neither acknowledged nor refused.
#[derive(Debug, Clone)]
pub struct Unknown {
    pub at: Instant,
    pub error: String,
}

/// A call answered with an unexpected status.
#[derive(Debug, Clone)]
pub struct Refused {
    pub what: String,
    pub status: u16,
    pub body: String,
}

impl Refused {
    fn of(what: String, response: &HttpResponse) -> Refused {
        Refused { what, status: response.status, body: response.text() }
    }
}

#[derive(Debug, Default)]
pub struct RegistrationLog {
    /// Device ids whose AddDevice was answered 201.
    pub acked: Vec<String>,
    pub refused: Vec<Refused>,
    pub unknown: Option<Unknown>,
}

pub fn spawn_registrations(
    http: SocketAddr,
    node_prefix: String,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> JoinHandle<RegistrationLog> {
    thread::spawn(move || {
        let mut client = keep_alive_client(http);
        let mut log = RegistrationLog::default();
        for n in 0..REGISTRATIONS_PER_WORKER_MAX {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let node_id = format!("{node_prefix}n{n}");
            let body = json!({"node_id": node_id, "product_id": "meter", "auth_info": {"secret": SECRET}});
            match client.post("devices", &body) {
                Ok(response) if response.status == 201 => {
                    log.acked.push(response.json()["device_id"].as_str().unwrap_or_default().to_owned())
                }
                Ok(response) => log.refused.push(Refused::of(format!("AddDevice {node_id}"), &response)),
                Err(error) => {
                    log.unknown = Some(Unknown { at: Instant::now(), error: error.to_string() });
                    break;
                }
            }
            thread::sleep(rng.duration_ms(0, 10));
        }
        log
    })
}

/// One CreateMessage and what became of it.
#[derive(Debug, Clone)]
pub struct SentMessage {
    pub message_id: String,
    /// The status in the 201, if it came.
    pub acked_status: Option<String>,
}

#[derive(Debug, Default)]
pub struct MessageLog {
    pub device_id: String,
    /// Every message tried, in creation order (acknowledged, refused or unknown).
    pub sent: Vec<SentMessage>,
    pub refused: Vec<Refused>,
    pub unknown: Option<Unknown>,
}

impl MessageLog {
    pub fn acked(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sent.iter().filter_map(|m| Some((m.message_id.as_str(), m.acked_status.as_deref()?)))
    }

    /// The creation index of every message id tried.
    pub fn creation_index(&self) -> HashMap<&str, usize> {
        self.sent.iter().enumerate().map(|(index, m)| (m.message_id.as_str(), index)).collect()
    }
}

pub fn spawn_message_sender(
    http: SocketAddr,
    device_id: String,
    cycle: usize,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> JoinHandle<MessageLog> {
    thread::spawn(move || {
        let mut client = keep_alive_client(http);
        let mut log = MessageLog { device_id: device_id.clone(), ..Default::default() };
        for index in 0..MESSAGES_PER_DEVICE_MAX {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let message_id = format!("c{cycle}m{index}");
            let body = json!({"message_id": message_id, "message": {"cycle": cycle, "n": index}});
            let answer = client.post(&format!("devices/{device_id}/messages"), &body);
            let mut sent = SentMessage { message_id: message_id.clone(), acked_status: None };
            match answer {
                Ok(response) if response.status == 201 => {
                    let status = response.json()["result"]["status"].as_str().unwrap_or_default().to_owned();
                    sent.acked_status = Some(status);
                    log.sent.push(sent);
                }
                Ok(response) => {
                    log.refused
                        .push(Refused::of(format!("CreateMessage {device_id}/{message_id}"), &response));
                    log.sent.push(sent);
                }
                Err(error) => {
                    log.sent.push(sent);
                    log.unknown = Some(Unknown { at: Instant::now(), error: error.to_string() });
                    break;
                }
            }
            thread::sleep(rng.duration_ms(50, 350));
        }
        log
    })
}

/// One acknowledged batch task.
#[derive(Debug, Clone)]
pub struct TaskLog {
    pub task_id: String,
    pub targets: Vec<String>,
    /// Target → (status, error code) of every detail seen final before the kill.
    pub seen_final: HashMap<String, (String, String)>,
}

#[derive(Debug, Default)]
pub struct BatchLog {
    pub tasks: Vec<TaskLog>,
    pub refused: Vec<Refused>,
    pub unknown: Option<Unknown>,
}

pub fn spawn_batch_tasks(
    http: SocketAddr,
    targets: Vec<String>,
    stop: Arc<AtomicBool>,
    mut rng: Rng,
) -> JoinHandle<BatchLog> {
    thread::spawn(move || {
        let mut client = keep_alive_client(http);
        let mut log = BatchLog::default();
        for level in 0..BATCH_TASKS_MAX {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let body = task_body("createCommands", &targets, set_level(level as u64));
            let task_id = match client.post("batchtasks", &body) {
                Ok(response) if response.status == 201 => {
                    response.json()["task_id"].as_str().unwrap_or_default().to_owned()
                }
                Ok(response) => {
                    log.refused.push(Refused::of("CreateBatchTask".into(), &response));
                    continue;
                }
                Err(error) => {
                    log.unknown = Some(Unknown { at: Instant::now(), error: error.to_string() });
                    break;
                }
            };
            log.tasks.push(TaskLog { task_id, targets: targets.clone(), seen_final: HashMap::new() });
            let task = log.tasks.last_mut().expect("just pushed");
            if let Err(error) = follow_task(&mut client, task, &stop, &mut rng) {
                log.unknown = Some(error);
                break;
            }
        }
        log
    })
}

/// Polls the task until it ends (or the kill), keeping the final details it sees.
fn follow_task(
    client: &mut KeepAliveClient,
    task: &mut TaskLog,
    stop: &AtomicBool,
    rng: &mut Rng,
) -> Result<(), Unknown> {
    for _ in 0..BATCH_POLLS_MAX {
        let response = client
            .get(&format!("batchtasks/{}?limit=50", task.task_id))
            .map_err(|error| Unknown { at: Instant::now(), error: error.to_string() })?;
        if response.status != 200 {
            return Ok(());
        }
        let shown = response.json();
        for detail in shown["task_details"].as_array().into_iter().flatten() {
            let status = detail["status"].as_str().unwrap_or_default();
            if FINAL_STATUSES.contains(&status) {
                let target = detail["target"].as_str().unwrap_or_default().to_owned();
                task.seen_final.insert(target, (status.to_owned(), error_code(detail)));
            }
        }
        if FINAL_STATUSES.contains(&shown["batchtask"]["status"].as_str().unwrap_or_default())
            || stop.load(Ordering::SeqCst)
        {
            return Ok(());
        }
        thread::sleep(rng.duration_ms(10, 60));
    }
    Ok(())
}

pub fn error_code(detail: &Value) -> String {
    detail["error"]["error_code"].as_str().unwrap_or_default().to_owned()
}
