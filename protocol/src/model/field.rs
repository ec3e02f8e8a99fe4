//! Small field checks shared by the product and device validators.
//!
//! Lengths are counted in characters (Unicode scalar values), not bytes: IoTDA's limits are
//! written for people typing names, and a Chinese product name of 64 characters is valid there.
//! Byte limits (the 500 KB model, the 1 KB `extension_info`) are checked on serialized JSON
//! by the callers.

use serde::{Deserialize, Deserializer};

use crate::error::ValidationError;

/// True when `s` is non-empty and every character is one of `[A-Za-z0-9_-]`, the alphabet of
/// IoTDA ids (`product_id`, `device_id`, `node_id`) and of device secrets. Length limits are
/// checked separately.
pub fn is_valid_id_chars(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Reads a field that may be absent or `null` as its type's default. Required strings and
/// lists use it so that "missing", `null` and `""` all reach the validator, which names the
/// field, instead of failing in the JSON parser with a less precise message.
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// The last segment of a field path, for messages: `service_capabilities[0].service_id` →
/// `service_id`. The full path is in [`ValidationError::field`] already.
pub(crate) fn leaf(field: &str) -> &str {
    field.rsplit('.').next().unwrap_or(field)
}

/// A required string: non-empty and at most `max_chars` characters.
pub(crate) fn check_required(field: &str, value: &str, max_chars: usize) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, format!("{} is required", leaf(field))));
    }
    check_max_chars(field, value, max_chars)
}

/// At most `max_chars` characters.
pub(crate) fn check_max_chars(field: &str, value: &str, max_chars: usize) -> Result<(), ValidationError> {
    let chars = value.chars().count();
    if chars > max_chars {
        return Err(ValidationError::new(
            field,
            format!("{} is {chars} characters long; the limit is {max_chars}", leaf(field)),
        ));
    }
    Ok(())
}

/// An optional string: when present, at most `max_chars` characters.
pub(crate) fn check_optional(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> Result<(), ValidationError> {
    value.map_or(Ok(()), |value| check_max_chars(field, value, max_chars))
}

/// An id: 1..=`max_chars` characters of `[A-Za-z0-9_-]`.
pub(crate) fn check_id(field: &str, value: &str, max_chars: usize) -> Result<(), ValidationError> {
    check_required(field, value, max_chars)?;
    if !is_valid_id_chars(value) {
        return Err(ValidationError::new(
            field,
            format!("{} '{value}' may contain only letters, digits, '_' and '-'", leaf(field)),
        ));
    }
    Ok(())
}

/// `value` must be one of `allowed` (exact, case-sensitive: the wire values are fixed strings).
pub(crate) fn check_one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ValidationError> {
    if value.is_empty() {
        return Err(ValidationError::new(field, format!("{} is required", leaf(field))));
    }
    if !allowed.contains(&value) {
        return Err(ValidationError::new(
            field,
            format!("{} '{value}' is not one of: {}", leaf(field), allowed.join(", ")),
        ));
    }
    Ok(())
}

/// At most `max_items` entries in a list.
pub(crate) fn check_max_items(field: &str, len: usize, max_items: usize) -> Result<(), ValidationError> {
    if len > max_items {
        return Err(ValidationError::new(
            field,
            format!("{} has {len} entries; the limit is {max_items}", leaf(field)),
        ));
    }
    Ok(())
}
