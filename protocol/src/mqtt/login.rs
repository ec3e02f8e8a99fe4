//! The IoTDA device login in secret mode (spec §1.2): the clientId grammar, the device
//! password, and the checks that decide the CONNACK code.
//!
//! ClientId: `{device_id}_0_{sig}_{YYYYMMDDHH}`, parsed from the right because auto-generated
//! device ids (`{product_id}_{node_id}`) contain `_`. Password: lower-hex
//! `HMAC-SHA256(key = timestamp, msg = secret)`, the timestamp being the one in the clientId.
//!
//! ## Decisions where the spec is silent
//! - The device id in a clientId must be a valid IoTDA device id (1..=128 of `[A-Za-z0-9_-]`,
//!   spec §2.1): no other id can be registered, and it keeps `/`, `+` and `#` out of topics.
//! - "Each ≤ 256 chars" is checked on the clientId; the username and the password are bounded
//!   by what they must equal (the device id, 64 hex digits).
//! - Signature type 1: the clientId hour must be the server's current UTC hour or one of its
//!   neighbours ([`TIMESTAMP_SKEW_HOURS_MAX`] = 1), the spec's own suggestion. The timestamp is
//!   checked before the password, as the spec orders it, and a stale one is refused like a
//!   wrong password (0x04 / 0x86): it is a credential, and telling the two apart would only
//!   help a guesser. Type 0 timestamps are checked for shape only (the Go SDK sends local time).
//! - Keep-alive 0 ("no keep-alive") is outside 30..=1200 and refused like any other.
//! - Only one secret is tried; accepting the `secondary_secret` too is the caller's to add
//!   (call [`check_login`] again with it).

#[cfg(test)]
mod tests;

use thiserror::Error;

use super::codec::{Connect, ConnectCode};
use crate::auth::{constant_time_eq, hex_lower, hmac_sha256};
use crate::device::DEVICE_ID_MAX_CHARS;
use crate::model::field::is_valid_id_chars;
use crate::time::format_t1;

pub const KEEP_ALIVE_MIN_S: u16 = 30;
pub const KEEP_ALIVE_MAX_S: u16 = 1200;
/// For signature type 1: how many hours the clientId hour may be from the server's UTC hour.
pub const TIMESTAMP_SKEW_HOURS_MAX: i64 = 1;
/// A clientId is at most this long (spec §1.2, which says the same of username and password).
pub const CREDENTIAL_MAX_CHARS: usize = 256;

const TIMESTAMP_DIGITS: usize = 10;
const SECONDS_PER_HOUR: i64 = 3600;

/// Signature type, the third clientId field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureType {
    /// `0`: the timestamp must be present but is not compared with the clock.
    TimestampUnchecked,
    /// `1`: the timestamp must be within [`TIMESTAMP_SKEW_HOURS_MAX`] of the server's hour.
    TimestampChecked,
}

/// A parsed clientId, borrowing from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientId<'a> {
    pub device_id: &'a str,
    pub signature_type: SignatureType,
    /// `YYYYMMDDHH`, a real calendar hour.
    pub timestamp: &'a str,
}

/// Why a clientId does not parse. Messages name the field; the device id is echoed only when
/// it is the part at fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LoginError {
    #[error("clientId is {chars} characters, more than {CREDENTIAL_MAX_CHARS}")]
    TooLong { chars: usize },
    #[error("clientId must be {{device_id}}_0_{{0|1}}_{{YYYYMMDDHH}}: {0}")]
    Format(&'static str),
    #[error("clientId device id must be 1..={DEVICE_ID_MAX_CHARS} of letters, digits, '_' and '-'")]
    DeviceId,
    #[error("clientId identity type must be 0 (device id)")]
    IdentityType,
    #[error("clientId signature type must be 0 or 1")]
    SignatureType,
    #[error("clientId timestamp must be a UTC hour YYYYMMDDHH: {0}")]
    Timestamp(&'static str),
}

/// A refused login: the CONNACK code to answer, and a reason for the log. The reason never
/// contains the secret or the expected password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginRefusal {
    pub code: ConnectCode,
    pub reason: String,
}

impl LoginRefusal {
    fn new(code: ConnectCode, reason: impl Into<String>) -> Self {
        LoginRefusal { code, reason: reason.into() }
    }
}

/// Parses `{device_id}_0_{0|1}_{YYYYMMDDHH}` from the right.
pub fn parse_client_id(client_id: &str) -> Result<ClientId<'_>, LoginError> {
    let chars = client_id.chars().count();
    if chars > CREDENTIAL_MAX_CHARS {
        return Err(LoginError::TooLong { chars });
    }
    let mut fields = client_id.rsplitn(4, '_');
    let timestamp = fields.next().unwrap_or_default();
    let (Some(signature), Some(identity), Some(device_id)) = (fields.next(), fields.next(), fields.next())
    else {
        return Err(LoginError::Format("fewer than 4 fields"));
    };
    if device_id.chars().count() > DEVICE_ID_MAX_CHARS || !is_valid_id_chars(device_id) {
        return Err(LoginError::DeviceId);
    }
    if identity != "0" {
        return Err(LoginError::IdentityType);
    }
    let signature_type = match signature {
        "0" => SignatureType::TimestampUnchecked,
        "1" => SignatureType::TimestampChecked,
        _ => return Err(LoginError::SignatureType),
    };
    check_timestamp(timestamp)?;
    Ok(ClientId { device_id, signature_type, timestamp })
}

/// `YYYYMMDDHH`: ten digits naming a real calendar hour.
fn check_timestamp(timestamp: &str) -> Result<(), LoginError> {
    if timestamp.len() != TIMESTAMP_DIGITS || !timestamp.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(LoginError::Timestamp("not 10 digits"));
    }
    let number = |range: std::ops::Range<usize>| timestamp[range].parse::<u32>().unwrap_or_default();
    let (year, month, day, hour) = (number(0..4), number(4..6), number(6..8), number(8..10));
    if !(1..=12).contains(&month) {
        return Err(LoginError::Timestamp("month out of range"));
    }
    if day == 0 || day > days_in_month(year, month) {
        return Err(LoginError::Timestamp("day out of range"));
    }
    if hour > 23 {
        return Err(LoginError::Timestamp("hour out of range"));
    }
    Ok(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap_year = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap_year => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The device id of a clientId that parses, for routing before authentication.
pub fn device_id_of(client_id: &str) -> Option<&str> {
    parse_client_id(client_id).ok().map(|parsed| parsed.device_id)
}

/// The password a device with `secret` sends for `timestamp`:
/// lower-hex `HMAC-SHA256(key = timestamp, msg = secret)`.
pub fn device_password(secret: &str, timestamp: &str) -> String {
    hex_lower(&hmac_sha256(timestamp.as_bytes(), secret.as_bytes()))
}

/// Everything the home shard checks, in order: the clientId and keep-alive
/// (`IdentifierRejected`), then the username, the device's existence (`secret` is `None` for
/// an unknown device), the type-1 timestamp window and the password (all
/// `BadUsernameOrPassword`).
pub fn check_login(connect: &Connect, secret: Option<&str>, now_unix_s: i64) -> Result<(), LoginRefusal> {
    let client_id = check_identity(connect)?;
    let secret =
        secret.ok_or_else(|| LoginRefusal::new(ConnectCode::BadUsernameOrPassword, "unknown device"))?;
    if client_id.signature_type == SignatureType::TimestampChecked {
        check_timestamp_window(client_id.timestamp, now_unix_s)?;
    }
    check_password(connect.password.as_deref(), secret, client_id.timestamp)
}

/// What every login checks before its credential: the clientId grammar, the keep-alive and
/// the username (the clientId's device id). A certificate login (spec §7.2: username = device
/// id, no password) checks only this, and then the certificate.
pub fn check_identity(connect: &Connect) -> Result<ClientId<'_>, LoginRefusal> {
    let client_id = parse_client_id(&connect.client_id)
        .map_err(|error| LoginRefusal::new(ConnectCode::IdentifierRejected, error.to_string()))?;
    check_keep_alive(connect.keep_alive_s)?;
    check_username(connect.username.as_deref(), client_id.device_id)?;
    Ok(client_id)
}

fn check_keep_alive(keep_alive_s: u16) -> Result<(), LoginRefusal> {
    if (KEEP_ALIVE_MIN_S..=KEEP_ALIVE_MAX_S).contains(&keep_alive_s) {
        return Ok(());
    }
    Err(LoginRefusal::new(
        ConnectCode::IdentifierRejected,
        format!("keep-alive {keep_alive_s} s is outside {KEEP_ALIVE_MIN_S}..={KEEP_ALIVE_MAX_S} s"),
    ))
}

fn check_username(username: Option<&str>, device_id: &str) -> Result<(), LoginRefusal> {
    match username {
        Some(username) if username == device_id => Ok(()),
        Some(_) => Err(LoginRefusal::new(
            ConnectCode::BadUsernameOrPassword,
            "username is not the clientId's device id",
        )),
        None => Err(LoginRefusal::new(ConnectCode::BadUsernameOrPassword, "no username")),
    }
}

/// The clientId hour must be one of the UTC hours within the skew of `now_unix_s`. Comparing
/// formatted hours avoids any date arithmetic on the clientId.
fn check_timestamp_window(timestamp: &str, now_unix_s: i64) -> Result<(), LoginRefusal> {
    let in_window = (-TIMESTAMP_SKEW_HOURS_MAX..=TIMESTAMP_SKEW_HOURS_MAX).any(|offset_hours| {
        let unix_s = now_unix_s.saturating_add(offset_hours * SECONDS_PER_HOUR);
        utc_hour_stamp(unix_s) == timestamp
    });
    if in_window {
        return Ok(());
    }
    Err(LoginRefusal::new(
        ConnectCode::BadUsernameOrPassword,
        format!(
            "clientId timestamp {timestamp} is more than {TIMESTAMP_SKEW_HOURS_MAX} h from the server's UTC hour {}",
            utc_hour_stamp(now_unix_s)
        ),
    ))
}

/// `YYYYMMDDHH` of a UTC instant.
fn utc_hour_stamp(unix_s: i64) -> String {
    let t1 = format_t1(unix_s.saturating_mul(1000)); // yyyyMMddTHHmmssZ
    format!("{}{}", &t1[..8], &t1[9..11])
}

fn check_password(password: Option<&[u8]>, secret: &str, timestamp: &str) -> Result<(), LoginRefusal> {
    let Some(password) = password else {
        return Err(LoginRefusal::new(ConnectCode::BadUsernameOrPassword, "no password"));
    };
    let expected = device_password(secret, timestamp);
    if constant_time_eq(password, expected.as_bytes()) {
        return Ok(());
    }
    Err(LoginRefusal::new(ConnectCode::BadUsernameOrPassword, "wrong password"))
}
