//! Batch tasks (spec §2.8, DESIGN.md §3): `createCommands` and `createMessages` over up to
//! 30,000 devices, fanned out across shards.
//!
//! - **Shard 0 owns the task**: it logs the definition before the 201, groups the targets by
//!   home shard and sends each shard one slice ([`Request::RunBatchSlice`]); it applies and logs
//!   the results as they stream back, and answers the task's queries.
//! - **Each shard runs its slice** with at most `concurrency` targets in flight, each exactly
//!   like a single CreateCommand / CreateMessage, and streams final results back in batches of
//!   up to [`PROGRESS_BATCH_MAX`] (or every [`PROGRESS_INTERVAL`]), not one mesh message per
//!   device.
//! - **Stop**: targets not started yet end `Stopped`; targets in flight finish normally.
//!
//! Decisions where the spec is silent:
//! - Per target: offline → `Fail` `IOTDA.014016`; unknown device → `Fail` `IOTDA.014000`; no
//!   answer → `Fail` `IOTDA.014111`; a command the device's model refuses → `Fail`
//!   `IOTDA.000006`; answered → `Success` with `output` = the device's JSON answer as a string.
//!   A message → `Success` with `output` = its status (`DELIVERED` or `PENDING`), or `Fail`
//!   with the message's error (`FAILED`: offline with ttl 0, not subscribed).
//! - **A restart during a task**: results already logged are kept; targets without one are
//!   failed with [`RESTART_CODE`] ("the engine restarted before this target finished") and
//!   the task ends — re-running them could repeat a command a device already executed.
//! - Targets not yet reported show as `Processing` while the task runs (they are all
//!   dispatched at once; each shard bounds how many run).
//! - Only a finished task can be deleted.

mod slice;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::rc::Rc;
use std::time::Duration;

use protocol::batch::{TargetStatus, TaskProgress};
use serde::Serialize;

use crate::calls::CallBody;
use crate::mailbox::NewMessage;
use crate::messages::{Reply, Request, ShardError};
use crate::registry::records::{
    BatchResult, BatchResultsRecord, BatchTaskKey, BatchTaskRecord, RegistryRecord,
};
use crate::registry::Shard;

/// Results a shard gathers before reporting them to shard 0.
pub const PROGRESS_BATCH_MAX: usize = 512;
/// Longest a finished result waits before it is reported.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);
/// The error of a target that had not finished when the engine restarted (ringiot's own).
pub const RESTART_CODE: &str = "IOTDA.000503";
/// Longest `output` kept per target: a task's results stay bounded (30,000 × 4 KiB) and every
/// results record stays far below the log's record limit. Longer answers are cut at a
/// character boundary and end with "…".
pub const OUTPUT_BYTES_MAX: usize = 4096;

fn capped(mut text: String) -> String {
    if text.len() > OUTPUT_BYTES_MAX {
        let mut end = OUTPUT_BYTES_MAX - '…'.len_utf8();
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// What every target of a slice gets.
#[derive(Debug, Clone, PartialEq)]
pub enum SliceWork {
    Command(CallBody),
    /// A message template: `project_id` and `device_id` are filled in per target.
    Message(NewMessage),
}

/// One shard's part of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchSlice {
    /// The task was stopped before this slice was sent: every target ends `Stopped`.
    pub stop_all: bool,
    pub project_id: String,
    pub task_id: String,
    pub work: SliceWork,
    /// `(index in the task's targets, device id)`.
    pub targets: Vec<(u32, String)>,
    pub timeout_ms: u64,
    pub concurrency: usize,
}

/// One target's outcome as the task shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetOutcome {
    pub status: TargetStatus,
    pub output: Option<String>,
    pub error_code: Option<String>,
    pub error_msg: Option<String>,
}

impl TargetOutcome {
    fn waiting() -> Self {
        TargetOutcome { status: TargetStatus::Processing, output: None, error_code: None, error_msg: None }
    }

    fn fail(code: &str, message: impl Into<String>) -> Self {
        TargetOutcome {
            status: TargetStatus::Fail,
            output: None,
            error_code: Some(code.to_owned()),
            error_msg: Some(capped(message.into())),
        }
    }

    fn success(output: String) -> Self {
        TargetOutcome {
            status: TargetStatus::Success,
            output: Some(capped(output)),
            error_code: None,
            error_msg: None,
        }
    }

    fn stopped() -> Self {
        TargetOutcome { status: TargetStatus::Stopped, output: None, error_code: None, error_msg: None }
    }

    fn to_result(&self, index: u32) -> BatchResult {
        BatchResult {
            index,
            status: TargetStatus::ALL.iter().position(|s| *s == self.status).unwrap_or(3) as u8,
            output: self.output.clone(),
            error_code: self.error_code.clone(),
            error_msg: self.error_msg.clone(),
        }
    }

    fn of_result(result: &BatchResult) -> Self {
        TargetOutcome {
            status: TargetStatus::ALL.get(result.status as usize).copied().unwrap_or(TargetStatus::Fail),
            output: result.output.clone(),
            error_code: result.error_code.clone(),
            error_msg: result.error_msg.clone(),
        }
    }
}

/// A task on shard 0: its definition and every target's outcome.
#[derive(Debug, Clone)]
pub struct BatchTask {
    pub record: BatchTaskRecord,
    pub outcomes: Vec<TargetOutcome>,
}

impl BatchTask {
    pub fn progress(&self) -> TaskProgress {
        TaskProgress::of(self.outcomes.iter().map(|o| o.status))
    }

    pub fn status(&self) -> &'static str {
        self.progress().task_status(self.record.stop_requested)
    }

    pub fn is_finished(&self) -> bool {
        self.outcomes.iter().all(|o| o.status.is_final())
    }

    fn apply(&mut self, results: &[BatchResult]) {
        for result in results {
            if let Some(outcome) = self.outcomes.get_mut(result.index as usize) {
                *outcome = TargetOutcome::of_result(result);
            }
        }
    }
}

/// Stop requests of a running slice.
#[derive(Debug, Default)]
struct SliceControl {
    stop_all: Cell<bool>,
    stop_targets: RefCell<HashSet<String>>,
}

/// Per-shard batch state, kept in [`Shard`].
#[derive(Debug, Default)]
pub struct BatchState {
    /// Shard 0: every task.
    tasks: RefCell<BTreeMap<BatchTaskKey, BatchTask>>,
    /// Every shard: the slices running here, by task id.
    running: RefCell<HashMap<String, Rc<SliceControl>>>,
    /// Shard 0: task results recovered without an outcome, to log as failed at start.
    recovered_unfinished: RefCell<Vec<BatchTaskKey>>,
}

impl BatchState {
    /// The tasks as recovered from the log; unfinished targets are failed (see module doc).
    pub(crate) fn recovered(tasks: Vec<(BatchTaskRecord, Vec<BatchResultsRecord>)>) -> BatchState {
        let state = BatchState::default();
        for (record, results) in tasks {
            let key = BatchTaskKey { project_id: record.project_id.clone(), task_id: record.task_id.clone() };
            let mut task =
                BatchTask { outcomes: vec![TargetOutcome::waiting(); record.targets.len()], record };
            for batch in &results {
                task.apply(&batch.results);
            }
            if !task.is_finished() {
                state.recovered_unfinished.borrow_mut().push(key.clone());
            }
            state.tasks.borrow_mut().insert(key, task);
        }
        state
    }
}

impl Shard {
    /// Shard 0: makes a new task durable and starts it. `concurrency` is per shard.
    pub async fn create_batch_task(
        self: &Rc<Self>,
        record: BatchTaskRecord,
        work: SliceWork,
        timeout_ms: u64,
        concurrency: usize,
    ) -> Result<BatchTask, ShardError> {
        assert_eq!(self.id(), 0, "shard 0 owns batch tasks");
        // In its own task: a caller that goes away (an HTTP client disconnecting) must not leave
        // a logged task that never runs.
        let shard = self.clone();
        glommio::spawn_local(async move {
            let key = BatchTaskKey { project_id: record.project_id.clone(), task_id: record.task_id.clone() };
            let task = BatchTask {
                outcomes: vec![TargetOutcome::waiting(); record.targets.len()],
                record: record.clone(),
            };
            shard.batch.tasks.borrow_mut().insert(key.clone(), task.clone());
            if let Err(error) = shard.persist(RegistryRecord::BatchTaskPut(Box::new(record))).await {
                shard.batch.tasks.borrow_mut().remove(&key);
                return Err(error);
            }
            let runner = shard.clone();
            glommio::spawn_local(async move { runner.run_task(key, work, timeout_ms, concurrency).await })
                .detach();
            Ok(task)
        })
        .await
    }

    async fn run_task(
        self: Rc<Self>,
        key: BatchTaskKey,
        work: SliceWork,
        timeout_ms: u64,
        concurrency: usize,
    ) {
        let Some(targets) = self.batch.tasks.borrow().get(&key).map(|t| t.record.targets.clone()) else {
            return;
        };
        let stopped_already = self.batch.tasks.borrow().get(&key).is_some_and(|t| t.record.stop_requested);
        let mut slices: Vec<Vec<(u32, String)>> = vec![Vec::new(); self.shard_count()];
        for (index, target) in targets.into_iter().enumerate() {
            slices[protocol::routing::home_shard(&target, self.shard_count())].push((index as u32, target));
        }
        let calls: Vec<_> = slices
            .into_iter()
            .enumerate()
            .filter(|(_, targets)| !targets.is_empty())
            .map(|(target_shard, targets)| {
                let slice = BatchSlice {
                    stop_all: stopped_already,
                    project_id: key.project_id.clone(),
                    task_id: key.task_id.clone(),
                    work: work.clone(),
                    targets,
                    timeout_ms,
                    concurrency,
                };
                let shard = self.clone();
                glommio::spawn_local(async move {
                    (target_shard, shard.call(target_shard, Request::RunBatchSlice(Box::new(slice))).await)
                })
            })
            .collect();
        for call in calls {
            let (target_shard, reply) = call.await;
            if let Reply::Failed(error) = reply {
                tracing::warn!(task_id = key.task_id, target_shard, %error, "a batch slice did not run");
            }
        }
        // Whatever is still open (a shard that went away) ends failed, so the task finishes.
        let open = self.open_targets_failed(&key, "the shard of this device did not run it");
        if !open.is_empty() {
            self.apply_batch_results(&key, open).await;
        }
        self.notify_batch_task(&key);
    }

    /// Shard 0: results streamed back by a slice.
    pub(crate) async fn apply_batch_results(
        self: &Rc<Self>,
        key: &BatchTaskKey,
        results: Vec<BatchResult>,
    ) -> Reply {
        if !self.batch.tasks.borrow().contains_key(key) {
            return Reply::Done;
        }
        // Logged first, shown after: ShowBatchTask never shows a result a crash could lose.
        let record = BatchResultsRecord {
            project_id: key.project_id.clone(),
            task_id: key.task_id.clone(),
            results: results.clone(),
        };
        if let Err(error) = self.persist(RegistryRecord::BatchResults(Box::new(record))).await {
            return Reply::Failed(error);
        }
        if let Some(task) = self.batch.tasks.borrow_mut().get_mut(key) {
            task.apply(&results);
        }
        Reply::Done
    }

    /// A failed result (with [`RESTART_CODE`] and `message`) for every target of the task that
    /// has no final one.
    fn open_targets_failed(&self, key: &BatchTaskKey, message: &str) -> Vec<BatchResult> {
        let tasks = self.batch.tasks.borrow();
        let Some(task) = tasks.get(key) else { return Vec::new() };
        task.outcomes
            .iter()
            .enumerate()
            .filter(|(_, o)| !o.status.is_final())
            .map(|(i, _)| TargetOutcome::fail(RESTART_CODE, message).to_result(i as u32))
            .collect()
    }

    /// Shard 0 at start: logs the targets a restart left without a result as failed.
    pub(crate) async fn fail_unfinished_batch_targets(self: &Rc<Self>) {
        let keys = std::mem::take(&mut *self.batch.recovered_unfinished.borrow_mut());
        for key in keys {
            let open = self.open_targets_failed(
                &key,
                "the engine restarted before this target finished; run it again in a new task",
            );
            tracing::info!(
                task_id = key.task_id,
                targets = open.len(),
                "batch task interrupted by a restart"
            );
            if let Reply::Failed(error) = self.apply_batch_results(&key, open).await {
                tracing::warn!(task_id = key.task_id, %error, "could not log the interrupted targets");
            }
            self.notify_batch_task(&key);
        }
    }

    /// Shard 0: StopBatchTask. `targets` `None` stops every target not started yet.
    pub async fn stop_batch_task(
        self: &Rc<Self>,
        key: &BatchTaskKey,
        targets: Option<Vec<String>>,
    ) -> Result<(), ShardError> {
        // In its own task, like create: a logged stop is always sent to the shards.
        let (shard, key) = (self.clone(), key.clone());
        glommio::spawn_local(async move { shard.stop_batch_task_now(&key, targets).await }).await
    }

    async fn stop_batch_task_now(
        self: &Rc<Self>,
        key: &BatchTaskKey,
        targets: Option<Vec<String>>,
    ) -> Result<(), ShardError> {
        let (record, shards) = {
            let mut tasks = self.batch.tasks.borrow_mut();
            let task = tasks.get_mut(key).ok_or(ShardError::BatchTaskNotFound)?;
            if targets.is_none() {
                task.record.stop_requested = true;
            }
            // Only the shards that still have unfinished targets of the task.
            let mut shards: Vec<usize> = task
                .record
                .targets
                .iter()
                .zip(&task.outcomes)
                .filter(|(_, outcome)| !outcome.status.is_final())
                .map(|(target, _)| protocol::routing::home_shard(target, self.shard_count()))
                .collect();
            shards.sort_unstable();
            shards.dedup();
            (task.record.clone(), shards)
        };
        if targets.is_none() {
            self.persist(RegistryRecord::BatchTaskPut(Box::new(record))).await?;
        }
        for target_shard in shards {
            let stop = Request::StopBatch { task_id: key.task_id.clone(), targets: targets.clone() };
            if let Reply::Failed(error) = self.call(target_shard, stop).await {
                return Err(error);
            }
        }
        Ok(())
    }

    /// Shard 0: a task and its outcomes.
    pub fn batch_task(&self, key: &BatchTaskKey) -> Option<BatchTask> {
        self.batch.tasks.borrow().get(key).cloned()
    }

    /// Shard 0: the project's tasks of `task_type`, newest first.
    pub fn batch_tasks_of(&self, project_id: &str, task_type: &str) -> Vec<BatchTask> {
        let mut tasks: Vec<BatchTask> = self
            .batch
            .tasks
            .borrow()
            .values()
            .filter(|t| t.record.project_id == project_id && t.record.task_type == task_type)
            .cloned()
            .collect();
        tasks.sort_by(|a, b| {
            (b.record.created_ms, &b.record.task_id).cmp(&(a.record.created_ms, &a.record.task_id))
        });
        tasks
    }

    /// Shard 0: DeleteBatchTask (finished tasks only).
    pub async fn delete_batch_task(self: &Rc<Self>, key: &BatchTaskKey) -> Result<(), ShardError> {
        let removed = {
            let mut tasks = self.batch.tasks.borrow_mut();
            match tasks.get(key) {
                None => return Err(ShardError::BatchTaskNotFound),
                Some(task) if !task.is_finished() => return Err(ShardError::BatchTaskRunning),
                Some(_) => tasks.remove(key),
            }
        };
        if let Err(error) = self.persist(RegistryRecord::BatchTaskDelete(key.clone())).await {
            if let Some(task) = removed {
                self.batch.tasks.borrow_mut().insert(key.clone(), task);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Shard 0: the snapshot records of every task.
    pub(crate) fn batch_snapshot(&self, revision: u64) -> Vec<crate::log::LogRecord> {
        let tasks = self.batch.tasks.borrow();
        let mut records = Vec::new();
        for task in tasks.values() {
            records.push(RegistryRecord::BatchTaskPut(Box::new(task.record.clone())).encode(revision));
            let results: Vec<BatchResult> = task
                .outcomes
                .iter()
                .enumerate()
                .filter(|(_, o)| o.status.is_final())
                .map(|(i, o)| o.to_result(i as u32))
                .collect();
            // Records of at most PROGRESS_BATCH_MAX results (≤ 2 MiB with capped outputs).
            for chunk in results.chunks(PROGRESS_BATCH_MAX) {
                let record = BatchResultsRecord {
                    project_id: task.record.project_id.clone(),
                    task_id: task.record.task_id.clone(),
                    results: chunk.to_vec(),
                };
                records.push(RegistryRecord::BatchResults(Box::new(record)).encode(revision));
            }
        }
        records
    }

    /// `batchtask:update` through the rule engine once a task finished.
    fn notify_batch_task(self: &Rc<Self>, key: &BatchTaskKey) {
        let Some(task) = self.batch_task(key) else { return };
        let app_id = task.record.app_id.clone().unwrap_or_default();
        let targets = self.routing().targets(&key.project_id, &app_id, "batchtask", "update");
        if targets.is_empty() {
            return;
        }
        #[derive(Serialize)]
        struct Body<'a> {
            task_id: &'a str,
            task_name: &'a str,
            task_type: &'a str,
            status: &'a str,
            task_progress: TaskProgress,
        }
        #[derive(Serialize)]
        struct NotifyData<'a> {
            body: Body<'a>,
        }
        #[derive(Serialize)]
        struct Envelope<'a> {
            resource: &'static str,
            event: &'static str,
            event_time: String,
            event_time_ms: String,
            request_id: String,
            notify_data: NotifyData<'a>,
        }
        let now = crate::now_unix_ms();
        let envelope = Envelope {
            resource: "batchtask",
            event: "update",
            event_time: protocol::time::format_t1(now),
            event_time_ms: protocol::time::format_t2(now),
            request_id: self.calls.next_request_id(),
            notify_data: NotifyData {
                body: Body {
                    task_id: &task.record.task_id,
                    task_name: &task.record.task_name,
                    task_type: &task.record.task_type,
                    status: task.status(),
                    task_progress: task.progress(),
                },
            },
        };
        let bytes = protocol::json::to_vec(&envelope);
        for target in &targets {
            self.pusher.enqueue(target, bytes.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_are_capped_at_a_character_boundary() {
        assert_eq!(capped("short".into()), "short");
        let long = "温".repeat(OUTPUT_BYTES_MAX); // 3 bytes each
        let cut = capped(long);
        assert!(cut.len() <= OUTPUT_BYTES_MAX, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == '温'));
        let success = TargetOutcome::success("x".repeat(OUTPUT_BYTES_MAX + 1));
        assert!(success.output.unwrap().len() <= OUTPUT_BYTES_MAX);
    }

    #[test]
    fn results_round_trip_through_their_record_form() {
        let outcome = TargetOutcome::fail("IOTDA.014016", "offline");
        assert_eq!(TargetOutcome::of_result(&outcome.to_result(7)), outcome);
        assert_eq!(outcome.to_result(7).index, 7);
        assert_eq!(
            TargetOutcome::of_result(&TargetOutcome::stopped().to_result(0)).status,
            TargetStatus::Stopped
        );
    }
}
