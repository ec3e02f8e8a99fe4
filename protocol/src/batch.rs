//! Batch tasks (spec §2.8): the CreateBatchTask body and its checks, and the spellings of task
//! and target statuses (`Waitting` with two t's is the wire format). Pure: no I/O.
//!
//! Decisions where the spec is silent or ringiot is narrower than IoTDA:
//! - Task types `createCommands` and `createMessages` only; others are refused as not
//!   supported, as are `targets_filter`, `document_source` and `task_policy` (scheduling and
//!   retries are not built: refusing beats silently running at once or never retrying).
//! - `targets` is required, 1 to `targets_max` (30,000 by default) device ids; duplicates
//!   count once, in first-seen order.
//! - `task_name` ≤ 128 characters of letters (any script), digits, `_`, `-` and spaces.

use serde::Deserialize;
use simd_json::OwnedValue;

use crate::error::ValidationError;

pub const TASK_TYPES: [&str; 2] = ["createCommands", "createMessages"];
pub const TARGETS_MAX_DEFAULT: usize = 30_000;
const TASK_NAME_CHARS_MAX: usize = 128;
const DEVICE_ID_CHARS_MAX: usize = 128;

/// A target's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetStatus {
    Waitting,
    Processing,
    Success,
    Fail,
    Stopped,
}

impl TargetStatus {
    pub const ALL: [TargetStatus; 5] = [
        TargetStatus::Waitting,
        TargetStatus::Processing,
        TargetStatus::Success,
        TargetStatus::Fail,
        TargetStatus::Stopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TargetStatus::Waitting => "Waitting",
            TargetStatus::Processing => "Processing",
            TargetStatus::Success => "Success",
            TargetStatus::Fail => "Fail",
            TargetStatus::Stopped => "Stopped",
        }
    }

    pub fn parse(text: &str) -> Option<TargetStatus> {
        TargetStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    pub fn is_final(self) -> bool {
        matches!(self, TargetStatus::Success | TargetStatus::Fail | TargetStatus::Stopped)
    }
}

/// `task_progress` (spec §2.8; `waitting` is the wire spelling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TaskProgress {
    pub total: u64,
    pub processing: u64,
    pub success: u64,
    pub fail: u64,
    pub waitting: u64,
    pub fail_wait_retry: u64,
    pub stopped: u64,
    pub removed: u64,
}

impl TaskProgress {
    pub fn of(statuses: impl Iterator<Item = TargetStatus>) -> TaskProgress {
        let mut progress = TaskProgress::default();
        for status in statuses {
            progress.total += 1;
            match status {
                TargetStatus::Waitting => progress.waitting += 1,
                TargetStatus::Processing => progress.processing += 1,
                TargetStatus::Success => progress.success += 1,
                TargetStatus::Fail => progress.fail += 1,
                TargetStatus::Stopped => progress.stopped += 1,
            }
        }
        progress
    }

    /// The task's status from its targets' (spec §2.8 spellings).
    pub fn task_status(&self, stop_requested: bool) -> &'static str {
        let unfinished = self.waitting + self.processing;
        if unfinished > 0 {
            return if stop_requested { "Stopping" } else { "Processing" };
        }
        if self.stopped > 0 {
            "Stopped"
        } else if self.fail == 0 {
            "Success"
        } else if self.success == 0 {
            "Fail"
        } else {
            "PartialSuccess"
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CreateBatchTaskRequest {
    pub app_id: Option<String>,
    pub task_name: Option<String>,
    pub task_type: Option<String>,
    pub targets: Option<Vec<String>>,
    pub targets_filter: Option<OwnedValue>,
    pub document: Option<OwnedValue>,
    pub document_source: Option<String>,
    pub task_policy: Option<OwnedValue>,
    pub task_mode: Option<String>,
}

/// A checked CreateBatchTask (the document is checked by the caller, per task type).
#[derive(Debug, Clone, PartialEq)]
pub struct NewBatchTask {
    pub app_id: Option<String>,
    pub task_name: String,
    pub task_type: String,
    pub targets: Vec<String>,
    pub document: OwnedValue,
}

fn present(value: &Option<OwnedValue>) -> bool {
    !matches!(value, None | Some(OwnedValue::Static(simd_json::StaticNode::Null)))
}

/// Checks everything but the document's content.
pub fn validate_create(
    request: CreateBatchTaskRequest,
    targets_max: usize,
) -> Result<NewBatchTask, ValidationError> {
    let task_name =
        request.task_name.ok_or_else(|| ValidationError::new("task_name", "task_name is required"))?;
    if task_name.is_empty() || task_name.chars().count() > TASK_NAME_CHARS_MAX {
        return Err(ValidationError::new(
            "task_name",
            format!("must be 1 to {TASK_NAME_CHARS_MAX} characters"),
        ));
    }
    if !task_name.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == ' ') {
        return Err(ValidationError::new(
            "task_name",
            "may contain only letters, digits, '_', '-' and spaces",
        ));
    }
    let task_type =
        request.task_type.ok_or_else(|| ValidationError::new("task_type", "task_type is required"))?;
    if !TASK_TYPES.contains(&task_type.as_str()) {
        return Err(ValidationError::new(
            "task_type",
            format!(
                "task type '{task_type}' is not supported; ringiot runs createCommands and createMessages"
            ),
        ));
    }
    if present(&request.targets_filter) {
        return Err(ValidationError::new(
            "targets_filter",
            "targets_filter (device groups) is not supported; list the targets",
        ));
    }
    if request.document_source.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(ValidationError::new(
            "document_source",
            "document_source (uploaded files) is not supported",
        ));
    }
    if present(&request.task_policy) {
        return Err(ValidationError::new(
            "task_policy",
            "task_policy (schedule_time, retry_count, retry_interval) is not supported: tasks run at once, without retries",
        ));
    }
    if request.task_mode.is_some() {
        return Err(ValidationError::new("task_mode", "task_mode is for OTA tasks, which are not supported"));
    }
    let targets =
        request.targets.ok_or_else(|| ValidationError::new("targets", "targets (device ids) is required"))?;
    let mut seen = std::collections::HashSet::with_capacity(targets.len());
    let mut unique = Vec::with_capacity(targets.len());
    for (index, target) in targets.into_iter().enumerate() {
        if target.is_empty() || target.chars().count() > DEVICE_ID_CHARS_MAX {
            return Err(ValidationError::new(format!("targets[{index}]"), "is not a device id"));
        }
        if seen.insert(target.clone()) {
            unique.push(target);
        }
    }
    if unique.is_empty() || unique.len() > targets_max {
        return Err(ValidationError::new("targets", format!("must list 1 to {targets_max} device ids")));
    }
    let document = request.document.filter(|d| present(&Some(d.clone()))).ok_or_else(|| {
        ValidationError::new("document", "document is required for createCommands and createMessages")
    })?;
    if !matches!(document, OwnedValue::Object(_)) {
        return Err(ValidationError::new("document", "document must be a JSON object"));
    }
    Ok(NewBatchTask { app_id: request.app_id, task_name, task_type, targets: unique, document })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(json: &str) -> CreateBatchTaskRequest {
        crate::json::from_bytes(json.as_bytes()).unwrap()
    }

    #[test]
    fn targets_are_deduplicated_in_order_and_bounded() {
        let task = validate_create(
            request(r#"{"task_name":"t 1","task_type":"createCommands","targets":["b","a","b"],"document":{"paras":{}}}"#),
            10,
        )
        .unwrap();
        assert_eq!(task.targets, ["b", "a"]);
        let too_many =
            r#"{"task_name":"t","task_type":"createCommands","targets":["a","b","c"],"document":{}}"#;
        assert_eq!(validate_create(request(too_many), 2).unwrap_err().field, "targets");
    }

    #[test]
    fn every_missing_or_unsupported_field_is_named() {
        let field = |json: &str| validate_create(request(json), 100).unwrap_err().field;
        assert_eq!(field(r#"{"task_type":"createCommands","targets":["a"],"document":{}}"#), "task_name");
        assert_eq!(field(r#"{"task_name":"t","targets":["a"],"document":{}}"#), "task_type");
        assert_eq!(
            field(r#"{"task_name":"t","task_type":"firmwareUpgrade","targets":["a"],"document":{}}"#),
            "task_type"
        );
        assert_eq!(field(r#"{"task_name":"t","task_type":"createCommands","document":{}}"#), "targets");
        assert_eq!(
            field(r#"{"task_name":"t","task_type":"createCommands","targets":[],"document":{}}"#),
            "targets"
        );
        assert_eq!(field(r#"{"task_name":"t","task_type":"createCommands","targets":["a"]}"#), "document");
        assert_eq!(
            field(
                r#"{"task_name":"t","task_type":"createCommands","targets":["a"],"document":{},"targets_filter":{"group_ids":["g"]}}"#
            ),
            "targets_filter"
        );
        assert_eq!(
            field(
                r#"{"task_name":"t","task_type":"createCommands","targets":["a"],"document":{},"task_policy":{"retry_count":1}}"#
            ),
            "task_policy"
        );
        assert_eq!(
            field(r#"{"task_name":"t!","task_type":"createCommands","targets":["a"],"document":{}}"#),
            "task_name"
        );
    }

    #[test]
    fn task_status_follows_the_targets() {
        use TargetStatus::*;
        let status = |s: &[TargetStatus], stop| TaskProgress::of(s.iter().copied()).task_status(stop);
        assert_eq!(status(&[Success, Success], false), "Success");
        assert_eq!(status(&[Fail, Fail], false), "Fail");
        assert_eq!(status(&[Success, Fail], false), "PartialSuccess");
        assert_eq!(status(&[Success, Waitting], false), "Processing");
        assert_eq!(status(&[Success, Processing], true), "Stopping");
        assert_eq!(status(&[Success, Stopped], true), "Stopped");
        let progress = TaskProgress::of([Success, Fail, Stopped, Waitting].into_iter());
        assert_eq!(
            (progress.total, progress.success, progress.fail, progress.stopped, progress.waitting),
            (4, 1, 1, 1, 1)
        );
    }
}
