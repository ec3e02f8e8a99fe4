//! Batch tasks (spec §2.8): CreateBatchTask, ListBatchTasks, ShowBatchTask, DeleteBatchTask,
//! StopBatchTask. Shard 0 owns the tasks (`shards::batch`).
//!
//! Decisions where the spec is silent:
//! - The 201 shows the task as `Initializing`; it runs at once (`task_policy` is refused, see
//!   `protocol::batch`), so the next Show says `Processing` or a final status.
//! - A `createMessages` document is checked exactly like a CreateMessage body, so the spec's
//!   example with both `topic` and `topic_full_name` is refused (CreateMessage forbids it).
//! - `task_details` pages: `limit` 1–50 (default 10), `offset` ≤ 500, and `marker` = the
//!   position (decimal) of the last detail of the previous page. ListBatchTasks: `marker` =
//!   the last `task_id` of the previous page, newest first.
//! - StopBatchTask without `targets` stops every target not started (an empty list is refused);
//!   with `targets` (≤ 100),
//!   those: each is answered `success` when the stop was sent, or `failure` when it is not a
//!   target of the task or has already finished.
//! - Delete refuses a task that has not finished (400 `IOTDA.000006`); an unknown task is 404
//!   `IOTDA.000404` (ringiot's own).

use std::rc::Rc;

use http::StatusCode;
use protocol::batch::{self, CreateBatchTaskRequest, TargetStatus, TaskProgress};
use protocol::error::ValidationError;
use serde::{Deserialize, Serialize};
use shards::batch::{BatchTask, SliceWork};
use shards::messages::ShardError;
use shards::registry::records::{BatchTaskKey, BatchTaskRecord};
use simd_json::OwnedValue;

use crate::app::{now_ms, ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

const STOP_TARGETS_MAX: usize = 100;

/// The task object of spec §2.8.
#[derive(Serialize)]
struct TaskView<'a> {
    task_id: &'a str,
    task_name: &'a str,
    task_type: &'a str,
    app_id: Option<&'a str>,
    targets: &'a [String],
    targets_filter: Option<()>,
    document: OwnedValue,
    task_policy: Option<()>,
    status: &'a str,
    status_desc: String,
    task_progress: TaskProgress,
    create_time: String,
}

fn view<'a>(task: &'a BatchTask, status: Option<&'static str>) -> TaskView<'a> {
    let progress = task.progress();
    let record = &task.record;
    TaskView {
        task_id: &record.task_id,
        task_name: &record.task_name,
        task_type: &record.task_type,
        app_id: record.app_id.as_deref(),
        targets: &record.targets,
        targets_filter: None,
        document: protocol::json::from_bytes(record.document_json.as_bytes())
            .unwrap_or_else(|_| OwnedValue::from(())),
        task_policy: None,
        status: status.unwrap_or_else(|| task.status()),
        status_desc: format!(
            "{} of {} targets succeeded, {} failed, {} stopped, {} not finished",
            progress.success,
            progress.total,
            progress.fail,
            progress.stopped,
            progress.processing + progress.waitting
        ),
        task_progress: progress,
        create_time: protocol::time::format_t1(record.created_ms),
    }
}

fn key(request: &ApiRequest<'_>, task_id: &str) -> BatchTaskKey {
    BatchTaskKey { project_id: request.project_id.to_owned(), task_id: task_id.to_owned() }
}

fn task_of(app: &App, request: &ApiRequest<'_>, task_id: &str) -> Result<BatchTask, ApiError> {
    app.shard
        .batch_task(&key(request, task_id))
        .ok_or_else(|| ApiError::NotFound(format!("batch task '{task_id}'")))
}

/// `POST /v5/iot/{project_id}/batchtasks`.
pub async fn create(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let body: CreateBatchTaskRequest = protocol::json::from_bytes(request.body)?;
    let task = batch::validate_create(body, app.config.batch_targets_max)?;
    let document = protocol::json::to_vec(&task.document);
    let in_document = |error: ApiError| match error {
        ApiError::Validation(e) => {
            ApiError::Validation(ValidationError::new(format!("document.{}", e.field), e.message))
        }
        other => other,
    };
    let work = match task.task_type.as_str() {
        "createCommands" => {
            SliceWork::Command(super::device_calls::command_body(&document).map_err(in_document)?)
        }
        _ => SliceWork::Message(
            super::messages::message_body(&document, request.project_id, "").map_err(in_document)?,
        ),
    };
    let record = BatchTaskRecord {
        project_id: request.project_id.to_owned(),
        task_id: crate::random::hex(24),
        task_name: task.task_name,
        task_type: task.task_type,
        app_id: task.app_id,
        document_json: String::from_utf8(document).expect("JSON is UTF-8"),
        targets: task.targets,
        created_ms: now_ms(),
        stop_requested: false,
    };
    let concurrency = app.config.batch_concurrency_per_shard;
    let created =
        app.shard.create_batch_task(record, work, app.config.command_timeout_ms, concurrency).await?;
    Ok(ApiResponse::json(StatusCode::CREATED, &view(&created, Some("Initializing"))))
}

fn paging(request: &ApiRequest<'_>) -> Result<(usize, usize), ApiError> {
    super::query::limit_and_offset(&request.query)
}

#[derive(Serialize)]
struct Page {
    count: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    marker: Option<String>,
}

/// `GET /v5/iot/{project_id}/batchtasks?task_type=` (required).
pub fn list(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let task_type = request.query.non_empty("task_type").ok_or_else(|| {
        ApiError::Validation(ValidationError::new("task_type", "the query parameter task_type is required"))
    })?;
    let (limit, offset) = paging(request)?;
    let (app_id, status, marker) = (
        request.query.non_empty("app_id"),
        request.query.non_empty("status"),
        request.query.non_empty("marker"),
    );
    let mut tasks = app.shard.batch_tasks_of(request.project_id, &task_type);
    tasks.retain(|t| app_id.as_deref().is_none_or(|a| t.record.app_id.as_deref() == Some(a)));
    tasks.retain(|t| status.as_deref().is_none_or(|s| t.status() == s));
    if let Some(marker) = marker {
        if let Some(position) = tasks.iter().position(|t| t.record.task_id == marker) {
            tasks.drain(..=position);
        }
    }
    let count = tasks.len();
    let page: Vec<&BatchTask> = tasks.iter().skip(offset).take(limit).collect();
    #[derive(Serialize)]
    struct List<'a> {
        batchtasks: Vec<TaskView<'a>>,
        page: Page,
    }
    let marker = page.last().map(|t| t.record.task_id.clone());
    let batchtasks = page.into_iter().map(|t| view(t, None)).collect();
    Ok(ApiResponse::json(StatusCode::OK, &List { batchtasks, page: Page { count, marker } }))
}

/// `GET /v5/iot/{project_id}/batchtasks/{task_id}`.
pub fn show(app: &Rc<App>, request: &ApiRequest<'_>, task_id: &str) -> ApiResult {
    let task = task_of(app, request, task_id)?;
    let (limit, offset) = paging(request)?;
    let wanted = match request.query.non_empty("task_detail_status") {
        None => None,
        Some(text) if text == "FailWaitRetry" || text == "Removed" => Some(None),
        Some(text) => Some(Some(TargetStatus::parse(&text).ok_or_else(|| {
            ApiError::Validation(ValidationError::new(
                "task_detail_status",
                format!(
                    "'{text}' is not Waitting, Processing, Success, Fail, FailWaitRetry, Stopped or Removed"
                ),
            ))
        })?)),
    };
    let target = request.query.non_empty("target");
    let after = match request.query.non_empty("marker") {
        None => None,
        Some(text) => Some(text.parse::<usize>().map_err(|_| {
            ApiError::MarkerOutOfRange(format!("'{text}' is not the position of a task detail"))
        })?),
    };
    #[derive(Serialize)]
    struct ErrorInfo<'a> {
        error_code: &'a str,
        error_msg: &'a str,
    }
    #[derive(Serialize)]
    struct Detail<'a> {
        target: &'a str,
        status: &'static str,
        output: Option<&'a str>,
        error: Option<ErrorInfo<'a>>,
    }
    let matching: Vec<(usize, Detail<'_>)> = task
        .record
        .targets
        .iter()
        .zip(&task.outcomes)
        .enumerate()
        .filter(|(position, _)| after.is_none_or(|after| *position > after))
        .filter(|(_, (t, _))| target.as_deref().is_none_or(|wanted| wanted == t.as_str()))
        .filter(|(_, (_, o))| wanted.is_none_or(|wanted| wanted == Some(o.status)))
        .map(|(position, (target, outcome))| {
            let detail = Detail {
                target,
                status: outcome.status.as_str(),
                output: outcome.output.as_deref(),
                error: outcome.error_code.as_deref().map(|code| ErrorInfo {
                    error_code: code,
                    error_msg: outcome.error_msg.as_deref().unwrap_or(""),
                }),
            };
            (position, detail)
        })
        .collect();
    let count = matching.len();
    let page: Vec<(usize, Detail<'_>)> = matching.into_iter().skip(offset).take(limit).collect();
    let marker = page.last().map(|(position, _)| position.to_string());
    #[derive(Serialize)]
    struct Show<'a> {
        batchtask: TaskView<'a>,
        task_details: Vec<Detail<'a>>,
        page: Page,
    }
    let show = Show {
        batchtask: view(&task, None),
        task_details: page.into_iter().map(|(_, detail)| detail).collect(),
        page: Page { count, marker },
    };
    Ok(ApiResponse::json(StatusCode::OK, &show))
}

/// `DELETE /v5/iot/{project_id}/batchtasks/{task_id}`.
pub async fn delete(app: &Rc<App>, request: &ApiRequest<'_>, task_id: &str) -> ApiResult {
    match app.shard.delete_batch_task(&key(request, task_id)).await {
        Ok(()) => Ok(ApiResponse::no_content()),
        Err(ShardError::BatchTaskNotFound) => Err(ApiError::NotFound(format!("batch task '{task_id}'"))),
        Err(error @ ShardError::BatchTaskRunning) => Err(ApiError::Conflict(error.to_string())),
        Err(error) => Err(error.into()),
    }
}

/// `POST /v5/iot/{project_id}/batchtasks/{task_id}/stop`.
pub async fn stop(app: &Rc<App>, request: &ApiRequest<'_>, task_id: &str) -> ApiResult {
    #[derive(Deserialize, Default)]
    struct StopRequest {
        targets: Option<Vec<String>>,
    }
    let body: StopRequest = if request.body.iter().all(u8::is_ascii_whitespace) {
        StopRequest::default()
    } else {
        protocol::json::from_bytes(request.body)?
    };
    let task = task_of(app, request, task_id)?;
    #[derive(Serialize)]
    struct Stopped {
        target: String,
        status: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_code: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error_msg: Option<&'static str>,
    }
    let mut answers = Vec::new();
    let targets = match body.targets {
        None => None,
        Some(targets) if targets.is_empty() => {
            return Err(ApiError::Validation(ValidationError::new(
                "targets",
                "list 1 to 100 targets, or leave targets out to stop every target not started",
            )))
        }
        Some(targets) if targets.len() > STOP_TARGETS_MAX => {
            return Err(ApiError::Validation(ValidationError::new(
                "targets",
                format!("at most {STOP_TARGETS_MAX} targets"),
            )))
        }
        Some(targets) => {
            let mut sent = Vec::new();
            for target in targets {
                let outcome =
                    task.record.targets.iter().position(|t| *t == target).map(|i| task.outcomes[i].status);
                let refusal = match outcome {
                    None => Some("not a target of this task"),
                    Some(status) if status.is_final() => Some("already finished"),
                    Some(_) => None,
                };
                answers.push(Stopped {
                    target: target.clone(),
                    status: if refusal.is_none() { "success" } else { "failure" },
                    error_code: refusal.map(|_| "IOTDA.000006"),
                    error_msg: refusal,
                });
                if refusal.is_none() {
                    sent.push(target);
                }
            }
            Some(sent)
        }
    };
    if targets.as_ref().is_none_or(|t| !t.is_empty()) {
        app.shard.stop_batch_task(&key(request, task_id), targets).await?;
    }
    #[derive(Serialize)]
    struct StopResponse {
        targets: Vec<Stopped>,
    }
    Ok(ApiResponse::json(StatusCode::OK, &StopResponse { targets: answers }))
}
