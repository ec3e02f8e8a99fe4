//! AddDevice and UpdateDevice validation (spec §2.4). Fields are checked in the order the spec
//! lists them, except that a defaulted `device_id` is built after `node_id` and `product_id`.

use std::collections::HashSet;

use simd_json::prelude::*;
use simd_json::OwnedValue;

use crate::device::{
    is_valid_secret, AddDeviceRequest, AuthInfo, AuthType, InitialShadow, UpdateAuthInfo,
    UpdateDeviceRequest, ValidatedDevice, ValidatedUpdate,
};
use crate::error::ValidationError;
use crate::model::field::{check_id, check_max_chars, check_max_items, check_optional, check_required};
use crate::model::validate::{APP_ID_MAX_CHARS, PRODUCT_ID_MAX_CHARS};

pub const DEVICE_ID_MAX_CHARS: usize = 128;
pub const NODE_ID_MAX_CHARS: usize = 64;
const DEVICE_NAME_MAX_CHARS: usize = 256;
const DESCRIPTION_MAX_CHARS: usize = 2048;
/// `extension_info` as compact JSON ("≤ 1 KB", read as KiB).
pub const EXTENSION_INFO_MAX_BYTES: usize = 1024;
/// IoTDA's `timeout` is a Java `Integer`.
const TIMEOUT_MAX_S: i64 = i32::MAX as i64;
/// Initial shadow entries: at most one per service, and a product has ≤ 500 services.
const SHADOW_ENTRIES_MAX: usize = 500;
const SERVICE_ID_MAX_CHARS: usize = 64;
const PROPERTY_NAME_MAX_CHARS: usize = 64;

/// Validates an AddDevice body and applies its defaults.
pub fn validate_add(request: AddDeviceRequest) -> Result<ValidatedDevice, ValidationError> {
    if let Some(device_id) = &request.device_id {
        check_id("device_id", device_id, DEVICE_ID_MAX_CHARS)?;
    }
    check_id("node_id", &request.node_id, NODE_ID_MAX_CHARS)?;
    check_id("product_id", &request.product_id, PRODUCT_ID_MAX_CHARS)?;
    let device_id =
        request.device_id.unwrap_or_else(|| format!("{}_{}", request.product_id, request.node_id));
    check_id("device_id", &device_id, DEVICE_ID_MAX_CHARS)?;
    check_optional("device_name", request.device_name.as_deref(), DEVICE_NAME_MAX_CHARS)?;
    let auth = validate_auth(request.auth_info.unwrap_or_default())?;
    check_optional("description", request.description.as_deref(), DESCRIPTION_MAX_CHARS)?;
    if let Some(gateway_id) = &request.gateway_id {
        check_id("gateway_id", gateway_id, DEVICE_ID_MAX_CHARS)?;
    }
    if let Some(app_id) = &request.app_id {
        check_id("app_id", app_id, APP_ID_MAX_CHARS)?;
    }
    let extension_info = request.extension_info.as_ref().map(extension_info_json).transpose()?;
    let initial_shadow_json = match request.shadow {
        Some(shadow) if !shadow.is_empty() => Some(initial_shadow_json(&shadow)?),
        _ => None,
    };
    Ok(ValidatedDevice {
        gateway_id: request.gateway_id.unwrap_or_else(|| device_id.clone()),
        device_id,
        device_name: request.device_name.unwrap_or_else(|| request.node_id.clone()),
        node_id: request.node_id,
        product_id: request.product_id,
        description: request.description,
        app_id: request.app_id,
        extension_info,
        auth_type: auth.auth_type,
        secret: auth.secret,
        secondary_secret: auth.secondary_secret,
        fingerprint: auth.fingerprint,
        secondary_fingerprint: auth.secondary_fingerprint,
        secure_access: auth.secure_access,
        timeout_s: auth.timeout_s,
        initial_shadow_json,
    })
}

/// Validates an UpdateDevice body. A body carrying `auth_info.secret` or
/// `auth_info.fingerprint` is rejected: those change only through their reset actions.
pub fn validate_update(request: UpdateDeviceRequest) -> Result<ValidatedUpdate, ValidationError> {
    check_optional("device_name", request.device_name.as_deref(), DEVICE_NAME_MAX_CHARS)?;
    check_optional("description", request.description.as_deref(), DESCRIPTION_MAX_CHARS)?;
    let extension_info = request.extension_info.as_ref().map(extension_info_json).transpose()?;
    let UpdateAuthInfo { secure_access, timeout, secret, fingerprint } =
        request.auth_info.unwrap_or_default();
    if secret.is_some() {
        return Err(ValidationError::new(
            "auth_info.secret",
            "secret cannot be changed by UpdateDevice; use ResetDeviceSecret (action_id=resetSecret)",
        ));
    }
    if fingerprint.is_some() {
        return Err(ValidationError::new(
            "auth_info.fingerprint",
            "fingerprint cannot be changed by UpdateDevice; use ResetFingerprint",
        ));
    }
    Ok(ValidatedUpdate {
        device_name: request.device_name,
        description: request.description,
        extension_info,
        secure_access,
        timeout_s: timeout.map(check_timeout).transpose()?,
    })
}

/// `auth_info` with its defaults applied.
struct ValidatedAuth {
    auth_type: AuthType,
    secret: Option<String>,
    secondary_secret: Option<String>,
    fingerprint: Option<String>,
    secondary_fingerprint: Option<String>,
    secure_access: bool,
    timeout_s: u32,
}

fn validate_auth(auth_info: AuthInfo) -> Result<ValidatedAuth, ValidationError> {
    let auth_type = match auth_info.auth_type.as_deref() {
        None | Some("SECRET") => AuthType::Secret,
        Some("CERTIFICATES") => AuthType::Certificates,
        Some(other) => {
            return Err(ValidationError::new(
                "auth_info.auth_type",
                format!("auth_type '{other}' is not one of: SECRET, CERTIFICATES"),
            ))
        }
    };
    let (secret, secondary_secret, fingerprint, secondary_fingerprint) = match auth_type {
        // A SECRET device ignores fingerprints (as IoTDA does): they are never checked.
        AuthType::Secret => (auth_info.secret, auth_info.secondary_secret, None, None),
        AuthType::Certificates => {
            if auth_info.secondary_secret.is_some() {
                return Err(ValidationError::new(
                    "auth_info.secondary_secret",
                    "secondary_secret must not be given when auth_type is CERTIFICATES",
                ));
            }
            let fingerprint = certificate_fingerprint(auth_info.secret, auth_info.fingerprint)?;
            let secondary = auth_info
                .secondary_fingerprint
                .map(|f| check_fingerprint("auth_info.secondary_fingerprint", f))
                .transpose()?;
            (None, None, Some(fingerprint), secondary)
        }
    };
    for (field, secret) in [("auth_info.secret", &secret), ("auth_info.secondary_secret", &secondary_secret)]
    {
        // The secret itself never goes into the message: error bodies end up in logs.
        if secret.as_deref().is_some_and(|secret| !is_valid_secret(secret)) {
            return Err(ValidationError::new(
                field,
                format!("{field} must be 8 to 32 characters, each a letter, digit, '_' or '-'"),
            ));
        }
    }
    Ok(ValidatedAuth {
        auth_type,
        secret,
        secondary_secret,
        fingerprint,
        secondary_fingerprint,
        secure_access: auth_info.secure_access.unwrap_or(false),
        timeout_s: auth_info.timeout.map(check_timeout).transpose()?.unwrap_or(0),
    })
}

/// The fingerprint of a CERTIFICATES device: required, 40 or 64 hex digits, and no secret.
fn certificate_fingerprint(
    secret: Option<String>,
    fingerprint: Option<String>,
) -> Result<String, ValidationError> {
    if secret.is_some() {
        return Err(ValidationError::new(
            "auth_info.secret",
            "secret must not be given when auth_type is CERTIFICATES",
        ));
    }
    let fingerprint = fingerprint.unwrap_or_default();
    if fingerprint.is_empty() {
        return Err(ValidationError::new(
            "auth_info.fingerprint",
            "fingerprint is required when auth_type is CERTIFICATES",
        ));
    }
    check_fingerprint("auth_info.fingerprint", fingerprint)
}

/// 40 (SHA-1) or 64 (SHA-256) hex digits, either case; kept as given (login compares without
/// regard to case).
fn check_fingerprint(field: &str, fingerprint: String) -> Result<String, ValidationError> {
    let is_hex = fingerprint.bytes().all(|byte| byte.is_ascii_hexdigit());
    if !(is_hex && matches!(fingerprint.len(), 40 | 64)) {
        let shown: String = fingerprint.chars().take(80).collect();
        return Err(ValidationError::new(
            field,
            format!("{field} '{shown}' must be 40 (SHA-1) or 64 (SHA-256) hexadecimal digits"),
        ));
    }
    Ok(fingerprint)
}

fn check_timeout(timeout: i64) -> Result<u32, ValidationError> {
    if !(0..=TIMEOUT_MAX_S).contains(&timeout) {
        return Err(ValidationError::new(
            "auth_info.timeout",
            format!("timeout ({timeout}) must be between 0 and {TIMEOUT_MAX_S} seconds"),
        ));
    }
    Ok(u32::try_from(timeout).expect("0..=i32::MAX fits u32"))
}

/// `extension_info` as compact JSON text, at most 1 KiB.
fn extension_info_json(value: &OwnedValue) -> Result<String, ValidationError> {
    let json = json_text(value);
    if json.len() > EXTENSION_INFO_MAX_BYTES {
        return Err(ValidationError::new(
            "extension_info",
            format!(
                "extension_info is {} bytes of JSON; the limit is {EXTENSION_INFO_MAX_BYTES}",
                json.len()
            ),
        ));
    }
    Ok(json)
}

/// Checks the initial shadow entries and returns them as one compact JSON array.
fn initial_shadow_json(shadow: &[InitialShadow]) -> Result<String, ValidationError> {
    check_max_items("shadow", shadow.len(), SHADOW_ENTRIES_MAX)?;
    let mut service_ids = HashSet::with_capacity(shadow.len());
    for (index, entry) in shadow.iter().enumerate() {
        let path = format!("shadow[{index}]");
        check_required(&format!("{path}.service_id"), &entry.service_id, SERVICE_ID_MAX_CHARS)?;
        if !service_ids.insert(entry.service_id.as_str()) {
            return Err(ValidationError::new(
                format!("{path}.service_id"),
                format!("duplicate service_id '{}'", entry.service_id),
            ));
        }
        check_desired(&format!("{path}.desired"), &entry.desired)?;
    }
    Ok(json_text(&shadow))
}

/// `desired` must be a JSON object keyed by property names.
fn check_desired(field: &str, desired: &OwnedValue) -> Result<(), ValidationError> {
    let Some(properties) = desired.as_object() else {
        return Err(ValidationError::new(field, "desired is required and must be a JSON object"));
    };
    for property_name in properties.keys() {
        let key_field = format!("{field}.{property_name}");
        check_max_chars(&key_field, property_name, PROPERTY_NAME_MAX_CHARS)?;
        if property_name.is_empty() || property_name.contains(['.', '$', '\0']) {
            return Err(ValidationError::new(
                key_field,
                format!(
                    "'{}' is not a valid property name: it must be non-empty and contain no '.', '$' or NUL",
                    property_name.escape_default()
                ),
            ));
        }
    }
    Ok(())
}

fn json_text<T: serde::Serialize>(value: &T) -> String {
    String::from_utf8(crate::json::to_vec(value)).expect("JSON output is UTF-8")
}

/// The body of ResetFingerprint (`POST .../devices/{device_id}/reset-fingerprint`):
/// `fingerprint`, `fingerprint_type` (`PRIMARY`, the default, or `SECONDARY`) and
/// `force_disconnect`. An empty `fingerprint` removes the secondary fingerprint. Divergence,
/// decided here: IoTDA also accepts no primary `fingerprint` and then adopts the certificate
/// of the device's next first login; ringiot has no adopt-on-first-login and requires one
/// (400), so a device is never left without a fingerprint that would refuse every login.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetFingerprintRequest {
    #[serde(default)]
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub fingerprint_type: Option<String>,
    #[serde(default)]
    pub force_disconnect: Option<bool>,
}

/// A validated ResetFingerprint: `(secondary, fingerprint, force_disconnect)`.
pub fn validate_reset_fingerprint(
    request: ResetFingerprintRequest,
) -> Result<(bool, String, bool), ValidationError> {
    let secondary = match request.fingerprint_type.as_deref() {
        None | Some("PRIMARY") => false,
        Some("SECONDARY") => true,
        Some(other) => {
            return Err(ValidationError::new(
                "fingerprint_type",
                format!("fingerprint_type '{other}' is not one of: PRIMARY, SECONDARY"),
            ))
        }
    };
    let fingerprint = request.fingerprint.unwrap_or_default();
    let fingerprint = match (secondary, fingerprint.is_empty()) {
        (false, true) => {
            return Err(ValidationError::new(
                "fingerprint",
                "fingerprint is required for the PRIMARY fingerprint",
            ))
        }
        (true, true) => fingerprint,
        (_, false) => check_fingerprint("fingerprint", fingerprint)?,
    };
    Ok((secondary, fingerprint, request.force_disconnect.unwrap_or(false)))
}

/// The body of ResetDeviceSecret (`POST .../devices/{device_id}/action?action_id=resetSecret`,
/// spec §7.3). `Debug` leaves the secret out.
#[derive(Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetSecretRequest {
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub force_disconnect: Option<bool>,
    #[serde(default)]
    pub secret_type: Option<String>,
}

impl std::fmt::Debug for ResetSecretRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetSecretRequest")
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("force_disconnect", &self.force_disconnect)
            .field("secret_type", &self.secret_type)
            .finish()
    }
}

/// A validated resetSecret: `(secondary, secret if given, force_disconnect)`.
pub fn validate_reset_secret(
    request: ResetSecretRequest,
) -> Result<(bool, Option<String>, bool), ValidationError> {
    let secondary = match request.secret_type.as_deref() {
        None | Some("PRIMARY") => false,
        Some("SECONDARY") => true,
        Some(other) => {
            return Err(ValidationError::new(
                "secret_type",
                format!("secret_type '{other}' is not one of: PRIMARY, SECONDARY"),
            ))
        }
    };
    if request.secret.as_deref().is_some_and(|secret| !is_valid_secret(secret)) {
        // The secret itself never goes into the message: error bodies end up in logs.
        return Err(ValidationError::new(
            "secret",
            "secret must be 8 to 32 characters, each a letter, digit, '_' or '-'",
        ));
    }
    Ok((secondary, request.secret, request.force_disconnect.unwrap_or(false)))
}
