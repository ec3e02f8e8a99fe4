//! Routing: a plain `match` on method and path segments under `/v5/iot/{project_id}/`.

use std::rc::Rc;

use http::{Method, StatusCode};

use super::error::ApiError;
use crate::api::query::Query;
use crate::api::{batch_tasks, device_calls, devices, messages, products, routing_rules};
use crate::app::{ApiRequest, ApiResponse, ApiResult, App};
use shards::messages::{ForwardedAnswer, ForwardedCall, Reply, Request};

/// `GET /health`: no auth, `{"status":"ok","shards":N}`.
pub fn health(app: &App, method: &Method) -> ApiResult {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!("{method} /health")));
    }
    #[derive(serde::Serialize)]
    struct Health {
        status: &'static str,
        shards: usize,
    }
    Ok(ApiResponse::json(StatusCode::OK, &Health { status: "ok", shards: app.shard.shard_count() }))
}

/// The `{project_id}` of a `/v5/iot/{project_id}/...` path.
pub fn project_of_path(path: &str) -> Result<&str, ApiError> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("v5"), Some("iot"), Some(project_id)) if !project_id.is_empty() => Ok(project_id),
        _ => Err(ApiError::NoRoute(path.to_owned())),
    }
}

/// Whether shard 0 must serve this call: it is the only writer of products and routing rules,
/// and owns the batch tasks. Reads of products and rules are served from every shard's copy.
fn owned_by_shard_0(method: &Method, segments: &[&str]) -> bool {
    match segments.first() {
        Some(&"products") | Some(&"routing-rule") => method != Method::GET,
        Some(&"batchtasks") => true,
        _ => false,
    }
}

/// Serves a call another shard forwarded to shard 0 (see [`owned_by_shard_0`]).
pub async fn forwarded(app: &Rc<App>, call: ForwardedCall) -> ForwardedAnswer {
    let answer = async {
        let method = Method::from_bytes(call.method.as_bytes())
            .map_err(|_| ApiError::MethodNotAllowed(call.method.clone()))?;
        let request = ApiRequest {
            project_id: &call.project_id,
            query: Query::parse(call.query.as_deref())?,
            raw_query: call.query.as_deref(),
            body: &call.body,
        };
        route(app, &method, &call.path, request).await
    };
    match answer.await {
        Ok(response) => ForwardedAnswer { status: response.status.as_u16(), body: response.body },
        Err(error) => ForwardedAnswer { status: error.status_and_code().0.as_u16(), body: error.body() },
    }
}

/// Dispatches an authenticated call on the path after `/v5/iot/{project_id}/`.
pub async fn route(app: &Rc<App>, method: &Method, path: &str, request: ApiRequest<'_>) -> ApiResult {
    let segments: Vec<&str> = path.trim_matches('/').split('/').skip(3).collect();
    if app.shard.id() != 0 && owned_by_shard_0(method, &segments) {
        let call = ForwardedCall {
            method: method.to_string(),
            path: path.to_owned(),
            query: request.raw_query.map(str::to_owned),
            project_id: request.project_id.to_owned(),
            body: request.body.to_vec(),
        };
        return match app.shard.call(0, Request::FrontDesk(Box::new(call))).await {
            Reply::FrontDesk(answer) => Ok(ApiResponse::raw_json(
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                answer.body,
            )),
            Reply::Failed(error) => Err(error.into()),
            _ => Err(ApiError::Unavailable("unexpected reply to a forwarded call".into())),
        };
    }
    let not_allowed = || Err(ApiError::MethodNotAllowed(format!("{method} {path}")));
    match segments.as_slice() {
        ["products"] => match *method {
            Method::GET => products::list(app, &request),
            Method::POST => products::create(app, &request).await,
            _ => not_allowed(),
        },
        ["products", product_id] => match *method {
            Method::GET => products::show(app, &request, product_id),
            Method::PUT => products::update(app, &request, product_id).await,
            Method::DELETE => products::delete(app, &request, product_id).await,
            _ => not_allowed(),
        },
        ["devices"] => match *method {
            Method::GET => devices::list(app, &request).await,
            Method::POST => devices::add(app, &request).await,
            _ => not_allowed(),
        },
        ["devices", device_id] => match *method {
            Method::GET => devices::show(app, &request, device_id).await,
            Method::PUT => devices::update(app, &request, device_id).await,
            Method::DELETE => devices::delete(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "freeze"] => match *method {
            Method::POST => devices::freeze(app, &request, device_id, true).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "unfreeze"] => match *method {
            Method::POST => devices::freeze(app, &request, device_id, false).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "action"] => match *method {
            Method::POST => devices::action(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "reset-fingerprint"] => match *method {
            Method::POST => devices::reset_fingerprint(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "commands"] => match *method {
            Method::POST => device_calls::create_command(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "properties"] => match *method {
            Method::GET => device_calls::list_properties(app, &request, device_id).await,
            Method::PUT => device_calls::update_properties(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "messages"] => match *method {
            Method::POST => messages::create(app, &request, device_id).await,
            Method::GET => messages::list(app, &request, device_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "messages", message_id] => match *method {
            Method::GET => messages::show(app, &request, device_id, message_id).await,
            _ => not_allowed(),
        },
        ["batchtasks"] => match *method {
            Method::POST => batch_tasks::create(app, &request).await,
            Method::GET => batch_tasks::list(app, &request),
            _ => not_allowed(),
        },
        ["batchtasks", task_id] => match *method {
            Method::GET => batch_tasks::show(app, &request, task_id),
            Method::DELETE => batch_tasks::delete(app, &request, task_id).await,
            _ => not_allowed(),
        },
        ["batchtasks", task_id, "stop"] => match *method {
            Method::POST => batch_tasks::stop(app, &request, task_id).await,
            _ => not_allowed(),
        },
        ["routing-rule", "rules"] => match *method {
            Method::POST => routing_rules::create_rule(app, &request).await,
            Method::GET => routing_rules::list_rules(app, &request),
            _ => not_allowed(),
        },
        ["routing-rule", "rules", rule_id] => match *method {
            Method::GET => routing_rules::show_rule(app, &request, rule_id),
            Method::PUT => routing_rules::update_rule(app, &request, rule_id).await,
            Method::DELETE => routing_rules::delete_rule(app, &request, rule_id).await,
            _ => not_allowed(),
        },
        ["routing-rule", "actions"] => match *method {
            Method::POST => routing_rules::create_action(app, &request).await,
            Method::GET => routing_rules::list_actions(app, &request),
            _ => not_allowed(),
        },
        ["routing-rule", "actions", action_id] => match *method {
            Method::GET => routing_rules::show_action(app, &request, action_id),
            Method::PUT => routing_rules::update_action(app, &request, action_id).await,
            Method::DELETE => routing_rules::delete_action(app, &request, action_id).await,
            _ => not_allowed(),
        },
        ["devices", device_id, "shadow"] => match *method {
            Method::GET => devices::show_shadow(app, &request, device_id).await,
            Method::PUT => devices::update_shadow(app, &request, device_id).await,
            _ => not_allowed(),
        },
        _ => Err(ApiError::NoRoute(path.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_ids_come_from_the_path() {
        assert_eq!(project_of_path("/v5/iot/p1/devices").unwrap(), "p1");
        assert_eq!(project_of_path("/v5/iot/p1").unwrap(), "p1");
        assert!(project_of_path("/v5/iot//devices").is_err());
        assert!(project_of_path("/v4/iot/p1/devices").is_err());
        assert!(project_of_path("/").is_err());
    }
}
