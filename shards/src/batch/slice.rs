//! A shard's part of a batch task: runs its targets with bounded concurrency, each exactly
//! like a single call, and reports the outcomes to shard 0 in batches (see the parent module).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use super::{BatchSlice, SliceWork, TargetOutcome, PROGRESS_BATCH_MAX, PROGRESS_INTERVAL, RESTART_CODE};
use crate::calls::DeviceCall;
use crate::mailbox::NewMessage;
use crate::messages::{Reply, Request, ShardError};
use crate::registry::records::{BatchResult, BatchResultsRecord, BatchTaskKey, MessageStatus};
use crate::registry::Shard;

impl Shard {
    /// Any shard: runs its slice of a task (see the module doc).
    pub(crate) async fn run_batch_slice(self: &Rc<Self>, slice: BatchSlice) -> Reply {
        let control = self.batch.running.borrow_mut().entry(slice.task_id.clone()).or_default().clone();
        if slice.stop_all {
            control.stop_all.set(true);
        }
        let key = BatchTaskKey { project_id: slice.project_id.clone(), task_id: slice.task_id.clone() };
        let reporter = Rc::new(Reporter {
            shard: self.clone(),
            key,
            pending: RefCell::new(Vec::new()),
            flushing: Cell::new(false),
        });
        let permits = Rc::new(glommio::sync::Semaphore::new(slice.concurrency.max(1) as u64));
        let slice = Rc::new(slice);
        let mut running = Vec::new();
        for position in 0..slice.targets.len() {
            let (index, device_id) = slice.targets[position].clone();
            if control.stop_all.get() || control.stop_targets.borrow().contains(&device_id) {
                reporter.push(TargetOutcome::stopped().to_result(index));
                continue;
            }
            let Ok(permit) = permits.acquire_static_permit(1).await else { break };
            // A stop may have come while this target waited for a permit.
            if control.stop_all.get() || control.stop_targets.borrow().contains(&device_id) {
                drop(permit);
                reporter.push(TargetOutcome::stopped().to_result(index));
                continue;
            }
            let (shard, slice, reporter) = (self.clone(), slice.clone(), reporter.clone());
            running.push(glommio::spawn_local(async move {
                let outcome = shard.run_target(&slice, &device_id).await;
                reporter.push(outcome.to_result(index));
                drop(permit);
            }));
        }
        for task in running {
            task.await;
        }
        reporter.finish().await;
        self.batch.running.borrow_mut().remove(&slice.task_id);
        Reply::Done
    }

    async fn run_target(self: &Rc<Self>, slice: &BatchSlice, device_id: &str) -> TargetOutcome {
        match &slice.work {
            SliceWork::Command(body) => {
                let call = DeviceCall {
                    project_id: slice.project_id.clone(),
                    device_id: device_id.to_owned(),
                    body: body.clone(),
                    timeout_ms: slice.timeout_ms,
                };
                match self.device_call(call).await {
                    Reply::Answered { response, .. } => {
                        TargetOutcome::success(String::from_utf8_lossy(&response).into_owned())
                    }
                    Reply::TimedOut { .. } => TargetOutcome::fail(
                        "IOTDA.014111",
                        format!("the device did not answer within {} ms", slice.timeout_ms),
                    ),
                    Reply::Failed(error) => failure(&error),
                    other => TargetOutcome::fail(RESTART_CODE, format!("unexpected reply {other:?}")),
                }
            }
            SliceWork::Message(template) => {
                let message = NewMessage {
                    project_id: slice.project_id.clone(),
                    device_id: device_id.to_owned(),
                    ..template.clone()
                };
                match self.create_message(message).await {
                    Reply::Message(message) if message.status == MessageStatus::Failed => {
                        TargetOutcome::fail(
                            message.error_code.as_deref().unwrap_or("IOTDA.014016"),
                            message.error_msg.clone().unwrap_or_default(),
                        )
                    }
                    Reply::Message(message) => TargetOutcome::success(message.status.as_str().to_owned()),
                    Reply::Failed(error) => failure(&error),
                    other => TargetOutcome::fail(RESTART_CODE, format!("unexpected reply {other:?}")),
                }
            }
        }
    }

    /// Any shard: a stop for a slice running here — or about to: a stop that arrives before
    /// the slice leaves its mark, which the slice picks up when it starts.
    pub(crate) fn stop_batch_slice(&self, task_id: &str, targets: Option<Vec<String>>) -> Reply {
        let control = self.batch.running.borrow_mut().entry(task_id.to_owned()).or_default().clone();
        match targets {
            None => control.stop_all.set(true),
            Some(targets) => control.stop_targets.borrow_mut().extend(targets),
        }
        Reply::Done
    }
}

/// The per-target error for a call or message the home shard refused.
fn failure(error: &ShardError) -> TargetOutcome {
    match error {
        ShardError::DeviceNotFound => TargetOutcome::fail("IOTDA.014000", "the device does not exist"),
        ShardError::DeviceOffline => TargetOutcome::fail("IOTDA.014016", "the device is offline"),
        ShardError::DeviceFrozen => TargetOutcome::fail("IOTDA.014016", "the device is frozen"),
        ShardError::Invalid(error) => TargetOutcome::fail("IOTDA.000006", error.to_string()),
        ShardError::TooManyCalls(_) | ShardError::GatewayTooManyCalls(_) | ShardError::DeviceBusy(_) => {
            TargetOutcome::fail("APIG.0308", error.to_string())
        }
        other => TargetOutcome::fail(RESTART_CODE, other.to_string()),
    }
}

/// Gathers a slice's results and reports them to shard 0 in batches of at most
/// [`PROGRESS_BATCH_MAX`], one report at a time and in order. Adding a result never waits; a
/// slice's pending results are bounded by its targets.
struct Reporter {
    shard: Rc<Shard>,
    key: BatchTaskKey,
    pending: RefCell<Vec<BatchResult>>,
    flushing: Cell<bool>,
}

impl Reporter {
    fn push(self: &Rc<Self>, result: BatchResult) {
        let count = {
            let mut pending = self.pending.borrow_mut();
            pending.push(result);
            pending.len()
        };
        if self.flushing.get() {
            return; // the running flush takes it
        }
        if count >= PROGRESS_BATCH_MAX {
            let reporter = self.clone();
            glommio::spawn_local(async move { reporter.flush().await }).detach();
        } else if count == 1 {
            // The first result of a batch sets the deadline of its report.
            let reporter = self.clone();
            glommio::spawn_local(async move {
                glommio::timer::sleep(PROGRESS_INTERVAL).await;
                reporter.flush().await;
            })
            .detach();
        }
    }

    /// Reports everything pending, in batches, unless a flush is already under way (it will).
    async fn flush(&self) {
        if self.flushing.replace(true) {
            return;
        }
        loop {
            let batch: Vec<BatchResult> = {
                let mut pending = self.pending.borrow_mut();
                let take = pending.len().min(PROGRESS_BATCH_MAX);
                pending.drain(..take).collect()
            };
            if batch.is_empty() {
                break;
            }
            let request = Request::BatchProgress(Box::new(BatchResultsRecord {
                project_id: self.key.project_id.clone(),
                task_id: self.key.task_id.clone(),
                results: batch,
            }));
            if let Reply::Failed(error) = self.shard.call(0, request).await {
                tracing::warn!(task_id = self.key.task_id, %error, "batch results not reported to shard 0");
            }
        }
        self.flushing.set(false);
    }

    /// At the end of the slice: waits for a flush under way, then reports the rest.
    async fn finish(&self) {
        while self.flushing.get() {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        self.flush().await;
    }
}
