//! Every REST error, and the one function that turns it into an HTTP status and an IoTDA
//! `{"error_code","error_msg"}` body (spec §2.2).
//!
//! Codes the spec marks unconfirmed, and the choices made here:
//! - unknown device: 404 `IOTDA.014000` (spec, unconfirmed status);
//! - unknown product: 404 `IOTDA.013000` (unconfirmed; mirrors the device code's shape);
//! - unknown path or method: 404 / 405 `IOTDA.000029` (reported by users for wrong paths);
//! - a credential of another project: 403 `IOTDA.000021` ("no permission");
//! - body over the limit: 413 `IOTDA.000006`; body not sent in time: 408 `IOTDA.000008`;
//! - a synchronous call to a device that already has `device_calls_in_flight_max` calls
//!   waiting: 429 `APIG.0308` (the API gateway's "too many requests", spec §3);
//! - a call that breaks the product model: 400 `IOTDA.000006` naming the field (spec §3);
//! - an unknown message, routing rule or rule action: 404 `IOTDA.000404` (ringiot's own);
//! - storage or a shard unavailable (shutdown, disk error): 503 `IOTDA.000503` (ringiot's own;
//!   the SDK treats every status ≥ 500 as a server error whatever the code).

use http::StatusCode;
use protocol::error::{JsonError, ValidationError};
use shards::messages::ShardError;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("Authentication failed: {0}")]
    Unauthorized(String),
    #[error("Operation not allowed: {0}")]
    Forbidden(String),
    #[error("Invalid input data. {0}")]
    Validation(#[from] ValidationError),
    #[error("Invalid input. Bad request: {0}")]
    BadRequest(String),
    #[error("Invalid input. The specified parameter 'limit' is out of range: {0}")]
    LimitOutOfRange(String),
    #[error("Invalid input. The specified parameter 'marker' is out of range: {0}")]
    MarkerOutOfRange(String),
    #[error("Invalid input. Invalid time format: {0}")]
    TimeFormat(String),
    #[error("Invalid input. The start time must be earlier than the end time.")]
    TimeRange,
    #[error("The device does not exist.")]
    DeviceNotFound,
    #[error("The device is offline.")]
    DeviceOffline,
    /// Same code as offline (a frozen device cannot be online; IoTDA's own code for this is
    /// unconfirmed), with a message that says why.
    #[error("The device is frozen; unfreeze it first.")]
    DeviceFrozen,
    #[error("The device is not frozen.")]
    NotFrozen,
    #[error("Not found: {0}")]
    NotFound(String),
    #[error("Too many requests: {0}")]
    TooManyRequests(String),
    #[error("Invalid input. The device already exists.")]
    DeviceExists,
    #[error("The product does not exist.")]
    ProductNotFound,
    #[error("Invalid input data. The product already exists.")]
    ProductExists,
    #[error("Invalid input data. {0}")]
    Conflict(String),
    #[error("No such API: {0}")]
    NoRoute(String),
    #[error("Method not allowed: {0}")]
    MethodNotAllowed(String),
    #[error("Request body is larger than {0} bytes.")]
    PayloadTooLarge(usize),
    #[error("The request body did not arrive within {0} ms.")]
    BodyTimeout(u64),
    #[error("Service temporarily unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The single mapping from error to HTTP status and IoTDA error code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "IOTDA.000002"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "IOTDA.000021"),
            ApiError::Validation(_) | ApiError::ProductExists | ApiError::Conflict(_) => {
                (StatusCode::BAD_REQUEST, "IOTDA.000006")
            }
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "IOTDA.000008"),
            ApiError::LimitOutOfRange(_) => (StatusCode::BAD_REQUEST, "IOTDA.000017"),
            ApiError::MarkerOutOfRange(_) => (StatusCode::BAD_REQUEST, "IOTDA.000018"),
            ApiError::TimeFormat(_) => (StatusCode::BAD_REQUEST, "IOTDA.000009"),
            ApiError::TimeRange => (StatusCode::BAD_REQUEST, "IOTDA.000010"),
            ApiError::DeviceNotFound => (StatusCode::NOT_FOUND, "IOTDA.014000"),
            ApiError::DeviceOffline | ApiError::DeviceFrozen => (StatusCode::FORBIDDEN, "IOTDA.014016"),
            ApiError::NotFrozen => (StatusCode::BAD_REQUEST, "IOTDA.014040"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "IOTDA.000404"),
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "APIG.0308"),
            ApiError::DeviceExists => (StatusCode::BAD_REQUEST, "IOTDA.014031"),
            ApiError::ProductNotFound => (StatusCode::NOT_FOUND, "IOTDA.013000"),
            ApiError::NoRoute(_) => (StatusCode::NOT_FOUND, "IOTDA.000029"),
            ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "IOTDA.000029"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "IOTDA.000006"),
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "IOTDA.000008"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "IOTDA.000503"),
        }
    }

    /// The JSON body of the error.
    pub fn body(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct ErrorBody<'a> {
            error_code: &'a str,
            error_msg: String,
        }
        let (_, error_code) = self.status_and_code();
        protocol::json::to_vec(&ErrorBody { error_code, error_msg: self.to_string() })
    }
}

impl From<JsonError> for ApiError {
    fn from(error: JsonError) -> Self {
        ApiError::BadRequest(error.to_string())
    }
}

impl From<ShardError> for ApiError {
    fn from(error: ShardError) -> Self {
        match error {
            ShardError::DeviceExists => ApiError::DeviceExists,
            ShardError::DeviceNotFound => ApiError::DeviceNotFound,
            ShardError::DeviceOffline => ApiError::DeviceOffline,
            ShardError::DeviceFrozen => ApiError::DeviceFrozen,
            ShardError::NotFrozen => ApiError::NotFrozen,
            ShardError::MessageNotFound => ApiError::NotFound("the message does not exist".into()),
            ShardError::BatchTaskNotFound => ApiError::NotFound("the batch task does not exist".into()),
            ShardError::BatchTaskRunning => ApiError::Conflict(error.to_string()),
            ShardError::Invalid(error) => ApiError::Validation(error),
            ShardError::TooManyCalls(_) | ShardError::GatewayTooManyCalls(_) | ShardError::DeviceBusy(_) => {
                ApiError::TooManyRequests(error.to_string())
            }
            ShardError::Unavailable(_) | ShardError::Unreachable(_) | ShardError::UnexpectedReply => {
                ApiError::Unavailable(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_the_code_and_a_message_naming_the_field() {
        let error = ApiError::from(ValidationError::new("node_id", "must not be empty"));
        assert_eq!(error.status_and_code(), (StatusCode::BAD_REQUEST, "IOTDA.000006"));
        let body = String::from_utf8(error.body()).unwrap();
        assert!(body.contains("\"error_code\":\"IOTDA.000006\""), "{body}");
        assert!(body.contains("node_id: must not be empty"), "{body}");
    }

    #[test]
    fn shard_errors_map_to_their_iotda_codes() {
        assert_eq!(ApiError::from(ShardError::DeviceNotFound).status_and_code().1, "IOTDA.014000");
        assert_eq!(ApiError::from(ShardError::DeviceExists).status_and_code().1, "IOTDA.014031");
        assert_eq!(
            ApiError::from(ShardError::Unreachable(1)).status_and_code().0,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
