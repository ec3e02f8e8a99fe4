//! The rule engine's REST API (spec §2.10): routing rules and rule actions. Shard 0 owns them
//! (validates, logs, replicates to every shard, like products); the shard that owns an event
//! pushes it (`shards::notify`).
//!
//! Decisions where the spec is silent: lists take `limit` (1–50, default 10), `offset` and a
//! `marker` that is the last id of the previous page, ordered by id; answer `{"rules"|"actions",
//! "count", "marker"}`. Deleting a rule deletes its actions. An unknown rule or action: 404
//! `IOTDA.000404` (ringiot's own).

use std::rc::Rc;

use http::StatusCode;
use protocol::rules::{
    self, Action, CreateActionRequest, CreateRuleRequest, Rule, UpdateActionRequest, UpdateRuleRequest,
};
use serde::Serialize;
use shards::registry::records::{RoutingKey, RoutingRecord};

use crate::app::{ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

fn record<T: Serialize>(project_id: &str, id: &str, is_action: bool, document: &T) -> RoutingRecord {
    RoutingRecord {
        project_id: project_id.to_owned(),
        id: id.to_owned(),
        is_action,
        json: String::from_utf8(protocol::json::to_vec(document)).expect("JSON is UTF-8"),
    }
}

fn new_id() -> String {
    let hex = crate::random::hex(32);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

fn rule_of(app: &App, project_id: &str, rule_id: &str) -> Result<Rule, ApiError> {
    app.shard
        .routing()
        .rule(project_id, rule_id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("rule '{rule_id}'")))
}

fn action_of(app: &App, project_id: &str, action_id: &str) -> Result<Action, ApiError> {
    app.shard
        .routing()
        .action(project_id, action_id)
        .cloned()
        .ok_or_else(|| ApiError::NotFound(format!("action '{action_id}'")))
}

/// The URL must also be one the push sender can use (the rule check is the first filter).
fn check_push_url(action: &Action) -> Result<(), ApiError> {
    let url = action.channel_detail.http_forwarding.as_ref().map(|h| h.url.as_str()).unwrap_or_default();
    shards::push::parse_url(url).map(|_| ()).map_err(|message| {
        ApiError::Validation(protocol::error::ValidationError::new(
            "channel_detail.http_forwarding.url",
            message,
        ))
    })
}

pub async fn create_rule(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let body: CreateRuleRequest = protocol::json::from_bytes(request.body)?;
    let rule = rules::validate_create_rule(body, new_id())?;
    app.shard.put_routing(record(request.project_id, &rule.rule_id, false, &rule)).await?;
    Ok(ApiResponse::json(StatusCode::CREATED, &rule))
}

pub fn show_rule(app: &Rc<App>, request: &ApiRequest<'_>, rule_id: &str) -> ApiResult {
    Ok(ApiResponse::json(StatusCode::OK, &rule_of(app, request.project_id, rule_id)?))
}

pub async fn update_rule(app: &Rc<App>, request: &ApiRequest<'_>, rule_id: &str) -> ApiResult {
    let body: UpdateRuleRequest = protocol::json::from_bytes(request.body)?;
    let rule = rules::apply_rule_update(rule_of(app, request.project_id, rule_id)?, body)?;
    app.shard.put_routing(record(request.project_id, rule_id, false, &rule)).await?;
    Ok(ApiResponse::json(StatusCode::OK, &rule))
}

pub async fn delete_rule(app: &Rc<App>, request: &ApiRequest<'_>, rule_id: &str) -> ApiResult {
    rule_of(app, request.project_id, rule_id)?;
    let actions: Vec<String> = app
        .shard
        .routing()
        .actions_of(request.project_id)
        .into_iter()
        .filter(|a| a.rule_id == rule_id)
        .map(|a| a.action_id.clone())
        .collect();
    for id in actions.into_iter().chain([rule_id.to_owned()]) {
        app.shard.delete_routing(RoutingKey { project_id: request.project_id.to_owned(), id }).await?;
    }
    Ok(ApiResponse::no_content())
}

/// One page of `items` (sorted by id), after `marker`, from `offset`.
fn page<T: Clone>(
    request: &ApiRequest<'_>,
    items: Vec<&T>,
    id: impl Fn(&T) -> &str,
) -> Result<(Vec<T>, usize), ApiError> {
    let query = &request.query;
    let (limit, offset) = super::query::limit_and_offset(query)?;
    let marker = query.non_empty("marker");
    let after: Vec<&T> =
        items.into_iter().filter(|item| marker.as_deref().is_none_or(|m| id(item) > m)).collect();
    let count = after.len();
    Ok((after.into_iter().skip(offset).take(limit).cloned().collect(), count))
}

pub fn list_rules(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let query = &request.query;
    let (resource, event) = (query.non_empty("resource"), query.non_empty("event"));
    let (app_type, app_id, rule_name) =
        (query.non_empty("app_type"), query.non_empty("app_id"), query.non_empty("rule_name"));
    let routing = app.shard.routing();
    let matching: Vec<&Rule> = routing
        .rules_of(request.project_id)
        .into_iter()
        .filter(|r| resource.as_deref().is_none_or(|v| r.subject.resource == v))
        .filter(|r| event.as_deref().is_none_or(|v| r.subject.event == v))
        .filter(|r| app_type.as_deref().is_none_or(|v| r.app_type == v))
        .filter(|r| app_id.as_deref().is_none_or(|v| r.app_id.as_deref() == Some(v)))
        .filter(|r| rule_name.as_deref().is_none_or(|v| r.rule_name.as_deref() == Some(v)))
        .collect();
    let (rules, count) = page(request, matching, |r| &r.rule_id)?;
    #[derive(Serialize)]
    struct List {
        rules: Vec<Rule>,
        count: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        marker: Option<String>,
    }
    let marker = rules.last().map(|r| r.rule_id.clone());
    Ok(ApiResponse::json(StatusCode::OK, &List { rules, count, marker }))
}

pub async fn create_action(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let body: CreateActionRequest = protocol::json::from_bytes(request.body)?;
    let action = rules::validate_create_action(body, new_id())?;
    check_push_url(&action)?;
    rule_of(app, request.project_id, &action.rule_id)?;
    app.shard.put_routing(record(request.project_id, &action.action_id, true, &action)).await?;
    Ok(ApiResponse::json(StatusCode::CREATED, &action))
}

pub fn show_action(app: &Rc<App>, request: &ApiRequest<'_>, action_id: &str) -> ApiResult {
    Ok(ApiResponse::json(StatusCode::OK, &action_of(app, request.project_id, action_id)?))
}

pub async fn update_action(app: &Rc<App>, request: &ApiRequest<'_>, action_id: &str) -> ApiResult {
    let body: UpdateActionRequest = protocol::json::from_bytes(request.body)?;
    let action = rules::apply_action_update(action_of(app, request.project_id, action_id)?, body)?;
    check_push_url(&action)?;
    app.shard.put_routing(record(request.project_id, action_id, true, &action)).await?;
    Ok(ApiResponse::json(StatusCode::OK, &action))
}

pub async fn delete_action(app: &Rc<App>, request: &ApiRequest<'_>, action_id: &str) -> ApiResult {
    action_of(app, request.project_id, action_id)?;
    app.shard
        .delete_routing(RoutingKey { project_id: request.project_id.to_owned(), id: action_id.to_owned() })
        .await?;
    Ok(ApiResponse::no_content())
}

pub fn list_actions(app: &Rc<App>, request: &ApiRequest<'_>) -> ApiResult {
    let (rule_id, channel) = (request.query.non_empty("rule_id"), request.query.non_empty("channel"));
    let routing = app.shard.routing();
    let matching: Vec<&Action> = routing
        .actions_of(request.project_id)
        .into_iter()
        .filter(|a| rule_id.as_deref().is_none_or(|v| a.rule_id == v))
        .filter(|a| channel.as_deref().is_none_or(|v| a.channel == v))
        .collect();
    let (actions, count) = page(request, matching, |a| &a.action_id)?;
    #[derive(Serialize)]
    struct List {
        actions: Vec<Action>,
        count: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        marker: Option<String>,
    }
    let marker = actions.last().map(|a| a.action_id.clone());
    Ok(ApiResponse::json(StatusCode::OK, &List { actions, count, marker }))
}
