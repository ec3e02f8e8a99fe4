//! Device messages (spec §2.7): CreateMessage, ListDeviceMessages, ShowDeviceMessage. The
//! front desk checks every field; the device's home shard keeps, delivers and logs the message
//! (`shards::mailbox`).
//!
//! Decisions where the spec is silent:
//! - `message_id` up to 128 characters of `[A-Za-z0-9_-]` (the API page; the SDK says 100).
//! - `message` may be any JSON value but `null`; its JSON text is at most 256 KB. With
//!   `encoding: base64` it must be a string of standard, padded base64.
//! - `topic` (a suffix under `$oc/devices/{id}/user/`) and `topic_full_name` must not contain
//!   the wildcards `+` / `#` (a PUBLISH topic cannot). Whether `topic` is declared in the
//!   product is not checked (the product model here has no custom topics yet).
//! - `properties` (MQTT 5 publish properties) are checked and kept, and shown back; they are
//!   not yet put on the PUBLISH.
//! - An unknown message id: 404 `IOTDA.000404` (ringiot's own).

use std::rc::Rc;

use http::StatusCode;
use protocol::error::ValidationError;
use protocol::routing::home_shard;
use serde::{Deserialize, Serialize};
use shards::mailbox::NewMessage;
use shards::messages::{Reply, Request};
use shards::registry::records::MessageRecord;
use simd_json::OwnedValue;

use crate::app::{ApiRequest, ApiResponse, ApiResult, App};
use crate::http::error::ApiError;

/// Largest `message` (spec §2.7).
pub const MESSAGE_BYTES_MAX: usize = 256 * 1024;
const MESSAGE_ID_CHARS_MAX: usize = 128;
const NAME_CHARS_MAX: usize = 128;
const TOPIC_CHARS_MAX: usize = 128;
const TTL_MINUTES_MAX: i64 = 1440;
const TTL_MINUTES_DEFAULT: u32 = 1440;

#[derive(Debug, Deserialize)]
struct CreateMessageRequest {
    message_id: Option<String>,
    name: Option<String>,
    message: Option<OwnedValue>,
    properties: Option<OwnedValue>,
    encoding: Option<String>,
    payload_format: Option<String>,
    topic: Option<String>,
    topic_full_name: Option<String>,
    ttl: Option<OwnedValue>,
}

/// `POST /v5/iot/{project_id}/devices/{device_id}/messages`.
pub async fn create(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let body: CreateMessageRequest = protocol::json::from_bytes(request.body)?;
    let new = validate(body, request.project_id, device_id)?;
    let home = home_shard(device_id, app.shard.shard_count());
    let message = expect_message(app.shard.call(home, Request::CreateMessage(Box::new(new))).await)?;
    #[derive(Serialize)]
    struct Result {
        status: &'static str,
        created_time: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        finished_time: Option<String>,
    }
    #[derive(Serialize)]
    struct Created<'a> {
        message_id: &'a str,
        result: Result,
    }
    let created = Created {
        message_id: &message.message_id,
        result: Result {
            status: message.status.as_str(),
            created_time: protocol::time::format_t1(message.created_ms),
            finished_time: message.finished_ms.map(protocol::time::format_t1),
        },
    };
    Ok(ApiResponse::json(StatusCode::CREATED, &created))
}

/// `GET /v5/iot/{project_id}/devices/{device_id}/messages`: `{"device_id","messages":[...]}`,
/// oldest first.
pub async fn list(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str) -> ApiResult {
    let home = home_shard(device_id, app.shard.shard_count());
    let call =
        Request::ListMessages { project_id: request.project_id.to_owned(), device_id: device_id.to_owned() };
    match app.shard.call(home, call).await {
        Reply::Messages(messages) => {
            #[derive(Serialize)]
            struct List<'a> {
                device_id: &'a str,
                messages: Vec<MessageView<'a>>,
            }
            let messages = messages.iter().map(MessageView::of).collect();
            Ok(ApiResponse::json(StatusCode::OK, &List { device_id, messages }))
        }
        Reply::Failed(error) => Err(error.into()),
        _ => Err(ApiError::Unavailable("unexpected reply to a message list".into())),
    }
}

/// `GET /v5/iot/{project_id}/devices/{device_id}/messages/{message_id}`.
pub async fn show(app: &Rc<App>, request: &ApiRequest<'_>, device_id: &str, message_id: &str) -> ApiResult {
    let home = home_shard(device_id, app.shard.shard_count());
    let call = Request::ShowMessage {
        project_id: request.project_id.to_owned(),
        device_id: device_id.to_owned(),
        message_id: message_id.to_owned(),
    };
    let message = expect_message(app.shard.call(home, call).await)?;
    Ok(ApiResponse::json(StatusCode::OK, &MessageView::of(&message)))
}

fn expect_message(reply: Reply) -> Result<MessageRecord, ApiError> {
    match reply {
        Reply::Message(message) => Ok(*message),
        Reply::Failed(error) => Err(error.into()),
        _ => Err(ApiError::Unavailable("unexpected reply to a message request".into())),
    }
}

/// The message object of spec §2.7.
#[derive(Serialize)]
struct MessageView<'a> {
    message_id: &'a str,
    name: Option<&'a str>,
    message: OwnedValue,
    encoding: &'a str,
    payload_format: &'a str,
    topic: Option<&'a str>,
    topic_full_name: Option<&'a str>,
    properties: Option<OwnedValue>,
    status: &'static str,
    error_info: Option<ErrorInfo<'a>>,
    created_time: String,
    finished_time: Option<String>,
    ttl: u32,
}

#[derive(Serialize)]
struct ErrorInfo<'a> {
    error_code: &'a str,
    error_msg: &'a str,
}

fn parse_kept(json: &str) -> OwnedValue {
    // Kept JSON was produced by this engine; an unreadable one (impossible) shows as null.
    protocol::json::from_bytes(json.as_bytes()).unwrap_or_else(|_| OwnedValue::from(()))
}

impl<'a> MessageView<'a> {
    fn of(message: &'a MessageRecord) -> Self {
        MessageView {
            message_id: &message.message_id,
            name: message.name.as_deref(),
            message: parse_kept(&message.message_json),
            encoding: &message.encoding,
            payload_format: &message.payload_format,
            topic: message.topic.as_deref(),
            topic_full_name: message.topic_full_name.as_deref(),
            properties: message.properties_json.as_deref().map(parse_kept),
            status: message.status.as_str(),
            error_info: message.error_code.as_deref().map(|code| ErrorInfo {
                error_code: code,
                error_msg: message.error_msg.as_deref().unwrap_or(""),
            }),
            created_time: protocol::time::format_t1(message.created_ms),
            finished_time: message.finished_ms.map(protocol::time::format_t1),
            ttl: message.ttl_minutes,
        }
    }
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(ValidationError::new(field, message))
}

fn bounded(field: &str, value: &Option<String>, max: usize) -> Result<(), ApiError> {
    match value {
        Some(text) if text.is_empty() => Err(invalid(field, "must not be empty when given")),
        Some(text) if text.chars().count() > max => {
            Err(invalid(field, format!("is longer than {max} characters")))
        }
        _ => Ok(()),
    }
}

fn id_like(field: &str, value: &str) -> Result<(), ApiError> {
    if value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(())
    } else {
        Err(invalid(field, "may contain only letters, digits, '_' and '-'"))
    }
}

fn publishable(field: &str, topic: &str) -> Result<(), ApiError> {
    if topic.contains(['+', '#', '\0']) {
        return Err(invalid(field, "must not contain the wildcards '+' or '#'"));
    }
    Ok(())
}

/// Parses and checks a CreateMessage body (also a `createMessages` batch document, whose
/// device id is filled in per target).
pub fn message_body(bytes: &[u8], project_id: &str, device_id: &str) -> Result<NewMessage, ApiError> {
    let body: CreateMessageRequest = protocol::json::from_bytes(bytes)?;
    validate(body, project_id, device_id)
}

fn validate(body: CreateMessageRequest, project_id: &str, device_id: &str) -> Result<NewMessage, ApiError> {
    bounded("message_id", &body.message_id, MESSAGE_ID_CHARS_MAX)?;
    if let Some(message_id) = &body.message_id {
        id_like("message_id", message_id)?;
    }
    bounded("name", &body.name, NAME_CHARS_MAX)?;
    let message = match body.message {
        None | Some(OwnedValue::Static(simd_json::StaticNode::Null)) => {
            return Err(invalid("message", "message is required"))
        }
        Some(message) => message,
    };
    let message_json = String::from_utf8(protocol::json::to_vec(&message)).expect("JSON is UTF-8");
    if message_json.len() > MESSAGE_BYTES_MAX {
        return Err(invalid("message", format!("is larger than {MESSAGE_BYTES_MAX} bytes")));
    }
    let encoding = body.encoding.unwrap_or_else(|| "none".into());
    match (encoding.as_str(), &message) {
        ("none", _) => {}
        ("base64", OwnedValue::String(text)) => {
            protocol::base64::decode(text).map_err(|error| invalid("message", error.to_string()))?;
        }
        ("base64", _) => return Err(invalid("message", "must be a base64 string when encoding is base64")),
        (other, _) => return Err(invalid("encoding", format!("'{other}' is not none or base64"))),
    }
    let payload_format = body.payload_format.unwrap_or_else(|| "standard".into());
    if payload_format != "standard" && payload_format != "raw" {
        return Err(invalid("payload_format", format!("'{payload_format}' is not standard or raw")));
    }
    if body.topic.is_some() && body.topic_full_name.is_some() {
        return Err(invalid("topic", "topic and topic_full_name are mutually exclusive"));
    }
    bounded("topic", &body.topic, TOPIC_CHARS_MAX)?;
    bounded("topic_full_name", &body.topic_full_name, TOPIC_CHARS_MAX)?;
    if let Some(topic) = &body.topic {
        publishable("topic", topic)?;
    }
    if let Some(topic) = &body.topic_full_name {
        publishable("topic_full_name", topic)?;
    }
    let ttl_minutes = match body.ttl {
        None => TTL_MINUTES_DEFAULT,
        Some(value) => {
            let minutes = match value {
                OwnedValue::Static(simd_json::StaticNode::I64(n)) => n,
                OwnedValue::Static(simd_json::StaticNode::U64(n)) => i64::try_from(n).unwrap_or(i64::MAX),
                _ => return Err(invalid("ttl", "must be an integer number of minutes")),
            };
            if !(0..=TTL_MINUTES_MAX).contains(&minutes) || !(minutes as u64).is_multiple_of(5) {
                return Err(invalid(
                    "ttl",
                    format!("{minutes} is not a multiple of 5 in 0..={TTL_MINUTES_MAX}"),
                ));
            }
            minutes as u32
        }
    };
    let properties_json = body.properties.map(|p| check_properties(&p).map(|()| p)).transpose()?;
    Ok(NewMessage {
        project_id: project_id.to_owned(),
        device_id: device_id.to_owned(),
        message_id: body.message_id,
        name: body.name,
        message_json,
        encoding,
        payload_format,
        topic: body.topic,
        topic_full_name: body.topic_full_name,
        properties_json: properties_json
            .map(|p| String::from_utf8(protocol::json::to_vec(&p)).expect("JSON is UTF-8")),
        ttl_minutes,
    })
}

/// `properties` (spec §2.7): `correlation_data` ≤ 128 of `[A-Za-z0-9_-]`, `response_topic`
/// ≤ 128, `user_properties` ≤ 20 of `{prop_key ≤ 128, prop_value ≤ 128}`.
fn check_properties(properties: &OwnedValue) -> Result<(), ApiError> {
    #[derive(Deserialize)]
    struct UserProperty {
        prop_key: Option<String>,
        prop_value: Option<String>,
    }
    #[derive(Deserialize)]
    struct Properties {
        correlation_data: Option<String>,
        response_topic: Option<String>,
        user_properties: Option<Vec<UserProperty>>,
    }
    let bytes = protocol::json::to_vec(properties);
    let properties: Properties =
        protocol::json::from_bytes(&bytes).map_err(|error| invalid("properties", error.to_string()))?;
    bounded("properties.correlation_data", &properties.correlation_data, 128)?;
    if let Some(data) = &properties.correlation_data {
        id_like("properties.correlation_data", data)?;
    }
    bounded("properties.response_topic", &properties.response_topic, 128)?;
    let user_properties = properties.user_properties.unwrap_or_default();
    if user_properties.len() > 20 {
        return Err(invalid("properties.user_properties", "at most 20 user properties"));
    }
    for (index, property) in user_properties.iter().enumerate() {
        bounded(&format!("properties.user_properties[{index}].prop_key"), &property.prop_key, 128)?;
        bounded(&format!("properties.user_properties[{index}].prop_value"), &property.prop_value, 128)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<NewMessage, ApiError> {
        validate(protocol::json::from_bytes(body.as_bytes()).unwrap(), "p", "d")
    }

    fn field(body: &str) -> String {
        match check(body) {
            Err(ApiError::Validation(error)) => error.field,
            other => panic!("expected a validation error for {body}, got {other:?}"),
        }
    }

    #[test]
    fn defaults_and_accepted_shapes() {
        let message = check(r#"{"message":"hello"}"#).unwrap();
        assert_eq!((message.ttl_minutes, message.encoding.as_str()), (1440, "none"));
        assert_eq!(message.payload_format, "standard");
        assert_eq!(message.message_json, "\"hello\"");
        let message =
            check(r#"{"message":{"a":[1,2]},"ttl":0,"topic":"t/1","payload_format":"raw"}"#).unwrap();
        assert_eq!(message.ttl_minutes, 0);
        assert!(check(r#"{"message":"aGk=","encoding":"base64","message_id":"a-b_C9"}"#).is_ok());
    }

    #[test]
    fn every_rule_names_its_field() {
        assert_eq!(field(r#"{"name":"x"}"#), "message");
        assert_eq!(field(r#"{"message":null}"#), "message");
        assert_eq!(field(r#"{"message":"x","ttl":7}"#), "ttl");
        assert_eq!(field(r#"{"message":"x","ttl":1445}"#), "ttl");
        assert_eq!(field(r#"{"message":"x","ttl":-5}"#), "ttl");
        assert_eq!(field(r#"{"message":"x","ttl":5.0}"#), "ttl");
        assert_eq!(field(r#"{"message":"x","ttl":"5"}"#), "ttl");
        assert_eq!(field(r#"{"message":"x","topic":"a","topic_full_name":"b"}"#), "topic");
        assert_eq!(field(r#"{"message":"x","topic":"a/#"}"#), "topic");
        assert_eq!(field(r#"{"message":"x","encoding":"gzip"}"#), "encoding");
        assert_eq!(field(r#"{"message":"%%%","encoding":"base64"}"#), "message");
        assert_eq!(field(r#"{"message":{"a":1},"encoding":"base64"}"#), "message");
        assert_eq!(field(r#"{"message":"x","payload_format":"binary"}"#), "payload_format");
        assert_eq!(field(r#"{"message":"x","message_id":"a b"}"#), "message_id");
        let long_id = format!(r#"{{"message":"x","message_id":"{}"}}"#, "a".repeat(129));
        assert_eq!(field(&long_id), "message_id");
        let big = format!(r#"{{"message":"{}"}}"#, "x".repeat(MESSAGE_BYTES_MAX));
        assert_eq!(field(&big), "message");
        assert_eq!(
            field(r#"{"message":"x","properties":{"correlation_data":"a b"}}"#),
            "properties.correlation_data"
        );
    }
}
