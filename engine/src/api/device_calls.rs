//! Synchronous calls to a device (spec §2.5–§2.6): CreateCommand, UpdateProperties and
//! ListProperties. The front desk parses the body and checks its shape; the device's home shard
//! checks the product model, publishes and waits (`shards::calls`).
//!
//! Answers: 200 `{"command_id"|"request_id", "response": <the device's JSON, verbatim>}`, or on
//! the deadline 200 `{"command_id"|"request_id", "error_code": "IOTDA.014111", "error_msg"}`
//! (spec §2.5; the id is included so the caller can still match a late answer in its logs).
//!
//! Decisions where the spec is silent:
//! - `service_id` / `command_name`, when given, must not be empty; a body over 256 KB is
//!   refused (spec §5: command content and `services` ≤ 256 KB) with 400 `IOTDA.000006`.
//! - ListProperties checks that `service_id` is a service of the product model.

use std::rc::Rc;

use http::StatusCode;
use protocol::error::ValidationError;
use protocol::routing::home_shard;
use shards::calls::metrics::Outcome;
use shards::calls::{CallBody, CallKind, DeviceCall};
use shards::messages::{Reply, Request, ShardError};
use simd_json::OwnedValue;

use crate::app::{ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

/// Largest command or property-set body (spec §5).
pub const CALL_BODY_BYTES_MAX: usize = 256 * 1024;
const SERVICE_ID_CHARS_MAX: usize = 64;
const COMMAND_NAME_CHARS_MAX: usize = 128;
const TIMEOUT_CODE: &str = "IOTDA.014111";

/// `POST /v5/iot/{project_id}/devices/{device_id}/commands`.
pub async fn create_command(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let body = counted(app, CallKind::Command, command_body(request.body))?;
    call(app, request, device_id, body).await
}

/// `PUT /v5/iot/{project_id}/devices/{device_id}/properties`.
pub async fn update_properties(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let body = counted(app, CallKind::PropertiesSet, properties_set_body(request.body))?;
    call(app, request, device_id, body).await
}

/// `GET /v5/iot/{project_id}/devices/{device_id}/properties?service_id=`.
pub async fn list_properties(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let service_id = request.query.non_empty("service_id").ok_or_else(|| {
        ApiError::Validation(ValidationError::new("service_id", "the query parameter service_id is required"))
    });
    let body = counted(
        app,
        CallKind::PropertiesGet,
        service_id.map(|service_id| CallBody::PropertiesGet { service_id }),
    )?;
    call(app, request, device_id, body).await
}

/// Counts a request refused here as invalid, so `/metrics` sees every refusal.
fn counted(app: &App, kind: CallKind, body: Result<CallBody, ApiError>) -> Result<CallBody, ApiError> {
    if body.is_err() {
        app.shard.count_call(kind, Outcome::Invalid);
    }
    body
}

async fn call(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str, body: CallBody) -> ApiResult {
    let kind = body.kind();
    let id_field = match kind {
        CallKind::Command => "command_id",
        CallKind::PropertiesSet | CallKind::PropertiesGet => "request_id",
    };
    let call = DeviceCall {
        project_id: request.project_id.to_owned(),
        device_id: device_id.to_owned(),
        body,
        timeout_ms: app.config.command_timeout_ms,
    };
    let home = home_shard(device_id, app.shard.shard_count());
    match app.shard.call(home, Request::DeviceCall(Box::new(call))).await {
        Reply::Answered { request_id, response } => {
            // `{"<id_field>":"<id>","response":<verbatim>}`: the device's bytes are embedded as
            // they came (the home shard checked they are JSON), so key order and number
            // spelling survive.
            let id = protocol::json::to_vec(&request_id);
            let mut out = Vec::with_capacity(id_field.len() + id.len() + response.len() + 20);
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(id_field.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(&id);
            out.extend_from_slice(b",\"response\":");
            out.extend_from_slice(&response);
            out.push(b'}');
            Ok(ApiResponse::raw_json(StatusCode::OK, out))
        }
        Reply::TimedOut { request_id } => {
            let error_msg = format!(
                "The device did not answer within {} ms (request_id {request_id}).",
                app.config.command_timeout_ms
            );
            let mut out = Vec::new();
            out.extend_from_slice(b"{\"");
            out.extend_from_slice(id_field.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(&protocol::json::to_vec(&request_id));
            out.extend_from_slice(b",\"error_code\":");
            out.extend_from_slice(&protocol::json::to_vec(&TIMEOUT_CODE));
            out.extend_from_slice(b",\"error_msg\":");
            out.extend_from_slice(&protocol::json::to_vec(&error_msg));
            out.push(b'}');
            Ok(ApiResponse::raw_json(StatusCode::OK, out))
        }
        Reply::Failed(error) => {
            if matches!(error, ShardError::Unavailable(_) | ShardError::Unreachable(_)) {
                // Everything else was counted where it was decided, on the home shard.
                app.shard.count_call(kind, Outcome::Unavailable);
            }
            Err(error.into())
        }
        _ => Err(ApiError::Unavailable("unexpected reply to a device call".into())),
    }
}

fn too_large(field: &str, body: &[u8]) -> Result<(), ApiError> {
    if body.len() > CALL_BODY_BYTES_MAX {
        return Err(ValidationError::new(
            field,
            format!("the body is larger than {CALL_BODY_BYTES_MAX} bytes"),
        )
        .into());
    }
    Ok(())
}

/// A non-empty name of at most `max` characters, when present.
fn name(field: &str, value: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    match value {
        Some(text) if text.is_empty() => {
            Err(ValidationError::new(field, "must not be empty when given").into())
        }
        Some(text) if text.chars().count() > max => {
            Err(ValidationError::new(field, format!("is longer than {max} characters")).into())
        }
        other => Ok(other),
    }
}

/// Parses and shape-checks a CreateCommand body (also a `createCommands` batch document).
pub fn command_body(bytes: &[u8]) -> Result<CallBody, ApiError> {
    #[derive(serde::Deserialize)]
    struct CommandRequest {
        service_id: Option<String>,
        command_name: Option<String>,
        paras: Option<OwnedValue>,
    }
    too_large("paras", bytes)?;
    let body: CommandRequest = protocol::json::from_bytes(bytes)?;
    let service_id = name("service_id", body.service_id, SERVICE_ID_CHARS_MAX)?;
    let command_name = name("command_name", body.command_name, COMMAND_NAME_CHARS_MAX)?;
    let paras = match body.paras {
        None => return Err(ValidationError::new("paras", "paras is required (a JSON object)").into()),
        Some(paras @ OwnedValue::Object(_)) => paras,
        Some(_) => return Err(ValidationError::new("paras", "paras must be a JSON object").into()),
    };
    Ok(CallBody::Command { service_id, command_name, paras })
}

pub fn properties_set_body(bytes: &[u8]) -> Result<CallBody, ApiError> {
    #[derive(serde::Deserialize)]
    struct Service {
        service_id: Option<String>,
        properties: Option<OwnedValue>,
    }
    #[derive(serde::Deserialize)]
    struct PropertiesRequest {
        services: Option<Vec<Service>>,
    }
    too_large("services", bytes)?;
    let body: PropertiesRequest = protocol::json::from_bytes(bytes)?;
    let services = body.services.unwrap_or_default();
    if services.is_empty() {
        return Err(ValidationError::new("services", "services must list at least one service").into());
    }
    let mut checked = Vec::with_capacity(services.len());
    for (index, service) in services.into_iter().enumerate() {
        let field = format!("services[{index}].service_id");
        let service_id = name(&field, service.service_id, SERVICE_ID_CHARS_MAX)?
            .ok_or_else(|| ValidationError::new(&field, "service_id is required"))?;
        let properties = service.properties.ok_or_else(|| {
            ValidationError::new(
                format!("services[{index}].properties"),
                "properties is required (a JSON object)",
            )
        })?;
        checked.push((service_id, properties));
    }
    Ok(CallBody::PropertiesSet { services: checked })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(result: Result<CallBody, ApiError>) -> String {
        match result {
            Err(ApiError::Validation(error)) => error.field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn command_bodies_need_an_object_paras_and_bounded_names() {
        let ok = command_body(br#"{"service_id":"s","command_name":"c","paras":{"a":1}}"#).unwrap();
        assert_eq!(ok.kind(), CallKind::Command);
        assert!(command_body(br#"{"paras":{}}"#).is_ok(), "free format");
        assert_eq!(field_of(command_body(br#"{"service_id":"s"}"#)), "paras");
        assert_eq!(field_of(command_body(br#"{"paras":"on"}"#)), "paras");
        assert_eq!(field_of(command_body(br#"{"paras":null}"#)), "paras");
        let long = format!(r#"{{"service_id":"{}","paras":{{}}}}"#, "s".repeat(65));
        assert_eq!(field_of(command_body(long.as_bytes())), "service_id");
        assert_eq!(field_of(command_body(br#"{"command_name":"","paras":{}}"#)), "command_name");
        assert!(matches!(command_body(b"{oops"), Err(ApiError::BadRequest(_))));
        let big = format!(r#"{{"paras":{{"a":"{}"}}}}"#, "x".repeat(CALL_BODY_BYTES_MAX));
        assert_eq!(field_of(command_body(big.as_bytes())), "paras");
    }

    #[test]
    fn property_set_bodies_name_the_broken_service() {
        let ok = properties_set_body(br#"{"services":[{"service_id":"s","properties":{"a":1}}]}"#).unwrap();
        assert_eq!(ok.kind(), CallKind::PropertiesSet);
        assert_eq!(field_of(properties_set_body(br#"{"services":[]}"#)), "services");
        assert_eq!(field_of(properties_set_body(b"{}")), "services");
        assert_eq!(
            field_of(properties_set_body(
                br#"{"services":[{"service_id":"s","properties":{}},{"properties":{}}]}"#
            )),
            "services[1].service_id"
        );
        assert_eq!(
            field_of(properties_set_body(br#"{"services":[{"service_id":"s"}]}"#)),
            "services[0].properties"
        );
    }
}
