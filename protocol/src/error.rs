//! Errors that pure protocol code can produce. The engine maps each to an HTTP status and an
//! IoTDA `error_code` in exactly one place (`engine::http::error`).

use thiserror::Error;

/// A request body or parameter broke a rule of the spec. The message names the offending
/// field so a caller can fix the request without guessing (→ 400 `IOTDA.000006`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The JSON path of the field, e.g. `service_capabilities[0].commands[1].command_name`.
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// A body that is not JSON, or not the JSON shape expected (→ 400 `IOTDA.000008`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid JSON body: {0}")]
pub struct JsonError(pub String);
