//! Routing: one table ([`ROUTES`]) of method and path template under `/v5/iot/{project_id}/`,
//! resolved to an [`Operation`], and one `match` that runs it.

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
    let (operation, params) = resolve(method, &segments).map_err(|miss| match miss {
        Miss::NoRoute => ApiError::NoRoute(path.to_owned()),
        Miss::MethodNotAllowed => ApiError::MethodNotAllowed(format!("{method} {path}")),
    })?;
    // `resolve` gives exactly as many parameters as the template has `{…}` segments.
    let [id, second] = params;
    use Operation::*;
    match operation {
        CreateCommand => device_calls::create_command(app, &request, id).await,
        ListProperties => device_calls::list_properties(app, &request, id).await,
        UpdateProperties => device_calls::update_properties(app, &request, id).await,
        CreateMessage => messages::create(app, &request, id).await,
        ListDeviceMessages => messages::list(app, &request, id).await,
        ShowDeviceMessage => messages::show(app, &request, id, second).await,
        ListProducts => products::list(app, &request),
        CreateProduct => products::create(app, &request).await,
        ShowProduct => products::show(app, &request, id),
        UpdateProduct => products::update(app, &request, id).await,
        DeleteProduct => products::delete(app, &request, id).await,
        ListDevices => devices::list(app, &request).await,
        AddDevice => devices::add(app, &request).await,
        ShowDevice => devices::show(app, &request, id).await,
        UpdateDevice => devices::update(app, &request, id).await,
        DeleteDevice => devices::delete(app, &request, id).await,
        FreezeDevice => devices::freeze(app, &request, id, true).await,
        UnfreezeDevice => devices::freeze(app, &request, id, false).await,
        ResetDeviceSecret => devices::action(app, &request, id).await,
        ResetFingerprint => devices::reset_fingerprint(app, &request, id).await,
        ShowDeviceShadow => devices::show_shadow(app, &request, id).await,
        UpdateDeviceShadowDesiredData => devices::update_shadow(app, &request, id).await,
        CreateBatchTask => batch_tasks::create(app, &request).await,
        ListBatchTasks => batch_tasks::list(app, &request),
        ShowBatchTask => batch_tasks::show(app, &request, id),
        DeleteBatchTask => batch_tasks::delete(app, &request, id).await,
        StopBatchTask => batch_tasks::stop(app, &request, id).await,
        CreateRoutingRule => routing_rules::create_rule(app, &request).await,
        ListRoutingRules => routing_rules::list_rules(app, &request),
        ShowRoutingRule => routing_rules::show_rule(app, &request, id),
        UpdateRoutingRule => routing_rules::update_rule(app, &request, id).await,
        DeleteRoutingRule => routing_rules::delete_rule(app, &request, id).await,
        CreateRuleAction => routing_rules::create_action(app, &request).await,
        ListRuleActions => routing_rules::list_actions(app, &request),
        ShowRuleAction => routing_rules::show_action(app, &request, id),
        UpdateRuleAction => routing_rules::update_action(app, &request, id).await,
        DeleteRuleAction => routing_rules::delete_action(app, &request, id).await,
    }
}

/// The operations under `/v5/iot/{project_id}/`, named by IoTDA's operation ids (the
/// OpenAPI document's `operationId`s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    CreateCommand,
    ListProperties,
    UpdateProperties,
    CreateMessage,
    ListDeviceMessages,
    ShowDeviceMessage,
    ListProducts,
    CreateProduct,
    ShowProduct,
    UpdateProduct,
    DeleteProduct,
    ListDevices,
    AddDevice,
    ShowDevice,
    UpdateDevice,
    DeleteDevice,
    FreezeDevice,
    UnfreezeDevice,
    ResetDeviceSecret,
    ResetFingerprint,
    ShowDeviceShadow,
    UpdateDeviceShadowDesiredData,
    CreateBatchTask,
    ListBatchTasks,
    ShowBatchTask,
    DeleteBatchTask,
    StopBatchTask,
    CreateRoutingRule,
    ListRoutingRules,
    ShowRoutingRule,
    UpdateRoutingRule,
    DeleteRoutingRule,
    CreateRuleAction,
    ListRuleActions,
    ShowRuleAction,
    UpdateRuleAction,
    DeleteRuleAction,
}

/// One route: method, path template after `/v5/iot/{project_id}/` (`{name}` matches one
/// non-empty segment), operation.
#[derive(Debug)]
pub struct Route {
    pub method: &'static str,
    pub template: &'static str,
    pub operation: Operation,
}

const fn at(method: &'static str, template: &'static str, operation: Operation) -> Route {
    Route { method, template, operation }
}

/// Every route of the REST API under `/v5/iot/{project_id}/` — the router's only table: a
/// path and method not here is answered 404 / 405, and the OpenAPI document
/// (`GET /v5/openapi.json`) describes exactly these (a unit test holds the two together).
/// The device calls come first: they are the hot path.
pub const ROUTES: &[Route] = &[
    at("POST", "devices/{device_id}/commands", Operation::CreateCommand),
    at("GET", "devices/{device_id}/properties", Operation::ListProperties),
    at("PUT", "devices/{device_id}/properties", Operation::UpdateProperties),
    at("POST", "devices/{device_id}/messages", Operation::CreateMessage),
    at("GET", "devices/{device_id}/messages", Operation::ListDeviceMessages),
    at("GET", "devices/{device_id}/messages/{message_id}", Operation::ShowDeviceMessage),
    at("GET", "products", Operation::ListProducts),
    at("POST", "products", Operation::CreateProduct),
    at("GET", "products/{product_id}", Operation::ShowProduct),
    at("PUT", "products/{product_id}", Operation::UpdateProduct),
    at("DELETE", "products/{product_id}", Operation::DeleteProduct),
    at("GET", "devices", Operation::ListDevices),
    at("POST", "devices", Operation::AddDevice),
    at("GET", "devices/{device_id}", Operation::ShowDevice),
    at("PUT", "devices/{device_id}", Operation::UpdateDevice),
    at("DELETE", "devices/{device_id}", Operation::DeleteDevice),
    at("POST", "devices/{device_id}/freeze", Operation::FreezeDevice),
    at("POST", "devices/{device_id}/unfreeze", Operation::UnfreezeDevice),
    at("POST", "devices/{device_id}/action", Operation::ResetDeviceSecret),
    at("POST", "devices/{device_id}/reset-fingerprint", Operation::ResetFingerprint),
    at("GET", "devices/{device_id}/shadow", Operation::ShowDeviceShadow),
    at("PUT", "devices/{device_id}/shadow", Operation::UpdateDeviceShadowDesiredData),
    at("POST", "batchtasks", Operation::CreateBatchTask),
    at("GET", "batchtasks", Operation::ListBatchTasks),
    at("GET", "batchtasks/{task_id}", Operation::ShowBatchTask),
    at("DELETE", "batchtasks/{task_id}", Operation::DeleteBatchTask),
    at("POST", "batchtasks/{task_id}/stop", Operation::StopBatchTask),
    at("POST", "routing-rule/rules", Operation::CreateRoutingRule),
    at("GET", "routing-rule/rules", Operation::ListRoutingRules),
    at("GET", "routing-rule/rules/{rule_id}", Operation::ShowRoutingRule),
    at("PUT", "routing-rule/rules/{rule_id}", Operation::UpdateRoutingRule),
    at("DELETE", "routing-rule/rules/{rule_id}", Operation::DeleteRoutingRule),
    at("POST", "routing-rule/actions", Operation::CreateRuleAction),
    at("GET", "routing-rule/actions", Operation::ListRuleActions),
    at("GET", "routing-rule/actions/{action_id}", Operation::ShowRuleAction),
    at("PUT", "routing-rule/actions/{action_id}", Operation::UpdateRuleAction),
    at("DELETE", "routing-rule/actions/{action_id}", Operation::DeleteRuleAction),
];

/// Why no route was found.
#[derive(Debug, PartialEq, Eq)]
enum Miss {
    NoRoute,
    /// The path has routes, none with this method.
    MethodNotAllowed,
}

/// The operation for `method` and the segments after `/v5/iot/{project_id}/`, with the
/// path's parameters in template order.
fn resolve<'p>(method: &Method, segments: &[&'p str]) -> Result<(Operation, Params<'p>), Miss> {
    let mut path_known = false;
    for route in ROUTES {
        let Some(params) = matches(route.template, segments) else { continue };
        if route.method == method.as_str() {
            return Ok((route.operation, params));
        }
        path_known = true;
    }
    Err(if path_known { Miss::MethodNotAllowed } else { Miss::NoRoute })
}

/// Parameters a template may have; those it does not have are "".
const PARAMS_MAX: usize = 2;
/// A path's parameters in template order, without an allocation (the hot path).
type Params<'p> = [&'p str; PARAMS_MAX];

/// The parameters of `segments` when they fit `template`.
fn matches<'p>(template: &str, segments: &[&'p str]) -> Option<Params<'p>> {
    let mut params = [""; PARAMS_MAX];
    let mut count = 0;
    let mut pieces = template.split('/');
    for segment in segments {
        let piece = pieces.next()?;
        if piece.starts_with('{') {
            if segment.is_empty() {
                return None;
            }
            // No template has more than PARAMS_MAX parameters (a unit test holds it).
            *params.get_mut(count)? = segment;
            count += 1;
        } else if piece != *segment {
            return None;
        }
    }
    pieces.next().is_none().then_some(params)
}

/// The routes served before authentication (method, path), described in the OpenAPI document
/// too.
pub const UNAUTHENTICATED: &[(&str, &str)] =
    &[("GET", HEALTH_PATH), ("GET", METRICS_PATH), ("GET", OPENAPI_PATH)];
pub const HEALTH_PATH: &str = "/health";
pub const METRICS_PATH: &str = "/metrics";
pub const OPENAPI_PATH: &str = "/v5/openapi.json";

/// The OpenAPI 3.1 description of the REST API (`engine/src/api/openapi.json`).
pub const OPENAPI_JSON: &str = include_str!("../api/openapi.json");

/// `GET /v5/openapi.json`: no auth.
pub fn openapi(method: &Method) -> ApiResult {
    if method != Method::GET {
        return Err(ApiError::MethodNotAllowed(format!("{method} {OPENAPI_PATH}")));
    }
    Ok(ApiResponse::raw_json(StatusCode::OK, OPENAPI_JSON.as_bytes().to_vec()))
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

    #[test]
    fn templates_have_at_most_params_max_parameters() {
        for route in ROUTES {
            let params = route.template.split('/').filter(|piece| piece.starts_with('{')).count();
            assert!(params <= PARAMS_MAX, "{}", route.template);
        }
    }

    #[test]
    fn paths_resolve_to_their_operation_with_parameters() {
        let resolved = |method: Method, path: &str| {
            let segments: Vec<&str> = path.split('/').collect();
            resolve(&method, &segments).map(|(operation, params)| {
                (operation, params.iter().filter(|p| !p.is_empty()).copied().collect::<Vec<_>>().join(","))
            })
        };
        assert_eq!(
            resolved(Method::POST, "devices/d1/commands"),
            Ok((Operation::CreateCommand, "d1".into()))
        );
        assert_eq!(
            resolved(Method::GET, "devices/d1/messages/m1"),
            Ok((Operation::ShowDeviceMessage, "d1,m1".into()))
        );
        assert_eq!(resolved(Method::GET, "products"), Ok((Operation::ListProducts, String::new())));
        assert_eq!(resolved(Method::PATCH, "products"), Err(Miss::MethodNotAllowed));
        assert_eq!(resolved(Method::DELETE, "devices/d1/commands"), Err(Miss::MethodNotAllowed));
        assert_eq!(resolved(Method::GET, "devices//shadow"), Err(Miss::NoRoute));
        assert_eq!(resolved(Method::GET, "devices/d1/shadow/extra"), Err(Miss::NoRoute));
        assert_eq!(resolved(Method::GET, "nothing"), Err(Miss::NoRoute));
    }

    /// Every route is described in the OpenAPI document, under IoTDA's operation id, and the
    /// document describes no route the engine lacks.
    #[test]
    fn the_openapi_document_describes_exactly_the_routes() {
        let mut text = OPENAPI_JSON.as_bytes().to_vec();
        let document = simd_json::to_owned_value(&mut text).expect("openapi.json is JSON");
        use simd_json::prelude::*;
        let mut described = std::collections::BTreeSet::new();
        let paths = document.get("paths").and_then(|p| p.as_object()).expect("paths");
        for (path, item) in paths.iter() {
            for (method, operation) in item.as_object().expect("a path item").iter() {
                if !["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                    continue; // parameters, summary …
                }
                let id = operation.get("operationId").and_then(|id| id.as_str()).unwrap_or_default();
                described.insert((method.to_uppercase(), path.to_string(), id.to_owned()));
            }
        }
        let mut served = std::collections::BTreeSet::new();
        for route in ROUTES {
            let path = format!("/v5/iot/{{project_id}}/{}", route.template);
            served.insert((route.method.to_owned(), path, format!("{:?}", route.operation)));
        }
        let extra = [
            ("GET", HEALTH_PATH, "ShowHealth"),
            ("GET", METRICS_PATH, "ShowMetrics"),
            ("GET", OPENAPI_PATH, "ShowOpenApi"),
        ];
        assert_eq!(extra.len(), UNAUTHENTICATED.len());
        for (method, path, id) in extra {
            served.insert((method.to_owned(), path.to_owned(), id.to_owned()));
        }
        let undescribed: Vec<_> = served.difference(&described).collect();
        let unserved: Vec<_> = described.difference(&served).collect();
        assert!(undescribed.is_empty(), "routes without a description: {undescribed:?}");
        assert!(unserved.is_empty(), "descriptions without a route: {unserved:?}");
    }
}
