//! REST authentication by AK/SK signature, byte-exact with what `huaweicloudsdkcore` sends
//! (spec §4.2 `SDK-HMAC-SHA256`, §4.3 `V11-HMAC-SHA256`).
//!
//! A signature is only as good as the server's ability to rebuild the exact bytes the client
//! hashed, so this module works from the request *as received* — raw path, raw query, header
//! bytes, body bytes — and never from a parsed, re-serialised form.
//!
//! ## Layout
//! - this file: the [`Authorization`] header ([`parse_authorization`]), [`verify`] (server
//!   side) and [`sign_sdk_hmac_sha256`] / [`sign_v11_hmac_sha256`] (client side, for tests
//!   and the bench);
//! - [`canonical`](canonical_request): the canonical request, mirroring the SDK's Python;
//! - `digest`: SHA-256, HMAC, hex, the V11 key derivation, [`constant_time_eq`].
//!
//! ## Flow (server)
//! `parse_authorization(header)` → look the access key up (engine) → `verify(request, auth,
//! secret_key, now_unix_s)`: check `X-Sdk-Date` against `now`, rebuild the canonical request
//! from the headers the client listed in `SignedHeaders=`, derive the string to sign, and
//! compare signatures in constant time.
//!
//! ## Invariants
//! - No error message contains the secret key or the expected signature.
//! - Signatures are compared only through [`constant_time_eq`].
//! - The headers to verify come from `SignedHeaders=`, never from a fixed list (the SDK signs
//!   `User-Agent`, which carries a per-process UUID — spec §6 item 11).
//! - `X-Sdk-Date` must be within [`MAX_CLOCK_SKEW_S`] of `now` (API gateway rule).
//! - A header the signature depends on must appear once; a repeat is rejected, not guessed.

mod canonical;
mod digest;
#[cfg(test)]
mod tests;

use thiserror::Error;

use crate::time::{parse_sdk_date, TimeError};
pub use canonical::canonical_request;
use canonical::{canonical_request_without_payload, header_text, PayloadHashLines};
pub use digest::{constant_time_eq, hex_lower, hmac_sha256, sha256_hex};

/// How far `X-Sdk-Date` may be from the server clock, either way (spec §4.2 step 5).
pub const MAX_CLOCK_SKEW_S: i64 = 15 * 60;
/// Longest `Authorization` value we parse; the SDK's is well under 1 KiB.
pub const MAX_AUTHORIZATION_LEN_BYTES: usize = 4096;
/// Most names accepted in `SignedHeaders=`.
pub const MAX_SIGNED_HEADERS: usize = 64;
/// The service name in a V11 credential scope for IoTDA (`YYYYMMDD/region/iotdm`).
pub const V11_SERVICE_NAME: &str = "iotdm";

const SDK_DATE_HEADER: &str = "X-Sdk-Date";
const SDK_ALGORITHM: &str = "SDK-HMAC-SHA256";
const V11_ALGORITHM: &str = "V11-HMAC-SHA256";

/// A request as received, borrowed.
///
/// - `path`: the raw request path as on the wire (may be percent-encoded), without query.
/// - `query`: the raw query string without `?`, if any.
/// - `headers`: every header as received, names in any case, values as raw bytes. Pass each
///   occurrence of a repeated header as its own entry (they are rejected if signed). `Host`
///   must be the raw value including the port.
/// - `body`: the exact body bytes.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

/// A parsed `Authorization` header value. `signature` is the client's claim, not a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`
    SdkHmacSha256 { access_key: String, signed_headers: Vec<String>, signature: String },
    /// `V11-HMAC-SHA256 Credential=AK/YYYYMMDD/region/iotdm, SignedHeaders=a;b, Signature=hex`;
    /// `info` is the credential scope `YYYYMMDD/region/iotdm`.
    V11HmacSha256 { access_key: String, info: String, signed_headers: Vec<String>, signature: String },
}

impl Authorization {
    /// The access key (AK) the client claims, to look its secret key up by.
    pub fn access_key(&self) -> &str {
        match self {
            Authorization::SdkHmacSha256 { access_key, .. }
            | Authorization::V11HmacSha256 { access_key, .. } => access_key,
        }
    }

    /// The header names the client signed, in its order.
    pub fn signed_headers(&self) -> &[String] {
        match self {
            Authorization::SdkHmacSha256 { signed_headers, .. }
            | Authorization::V11HmacSha256 { signed_headers, .. } => signed_headers,
        }
    }

    /// The region of a V11 credential scope; `None` for `SDK-HMAC-SHA256`.
    pub fn region_id(&self) -> Option<&str> {
        match self {
            Authorization::SdkHmacSha256 { .. } => None,
            Authorization::V11HmacSha256 { info, .. } => info.split('/').nth(1),
        }
    }
}

/// Why a request failed authentication. Every variant maps to 401 `IOTDA.000002`; the
/// distinction is for logs and tests. No message carries the secret key or the signature
/// the server expected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),
    #[error("unsupported signing algorithm {0:?} (expected SDK-HMAC-SHA256 or V11-HMAC-SHA256)")]
    UnsupportedAlgorithm(String),
    #[error("signed header {0:?} is not in the request")]
    MissingSignedHeader(String),
    #[error("header {0:?} appears more than once")]
    DuplicateHeader(String),
    #[error("header {0:?} is not valid UTF-8")]
    NonUtf8Header(String),
    #[error("X-Sdk-Date header is missing")]
    MissingDate,
    #[error("X-Sdk-Date is not yyyyMMddTHHmmssZ: {0}")]
    BadDate(#[from] TimeError),
    #[error("X-Sdk-Date is {skew_s} s off server time (now - date; the limit is ±{MAX_CLOCK_SKEW_S} s)")]
    ClockSkew {
        /// `now - X-Sdk-Date`: positive when the request is older than the server clock.
        skew_s: i64,
    },
    #[error("V11 credential scope: {0}")]
    BadCredentialScope(String),
    #[error("signature does not match")]
    SignatureMismatch,
    /// `X-Sdk-Content-Sha256` does not describe the body received: either not its SHA-256, or
    /// `UNSIGNED-PAYLOAD` on a request that has a body (every body of this API is JSON, which
    /// the SDK always hashes). Without this check a captured request could be replayed with
    /// another body and the old body's hash in that header.
    #[error("X-Sdk-Content-Sha256 does not match the request body")]
    PayloadHashMismatch,
}

/// Parses an `Authorization` header value. Tolerates spaces around the comma-separated
/// parameters; requires each expected parameter exactly once and nothing else.
pub fn parse_authorization(value: &str) -> Result<Authorization, AuthError> {
    if value.len() > MAX_AUTHORIZATION_LEN_BYTES {
        return Err(malformed(format!("longer than {MAX_AUTHORIZATION_LEN_BYTES} bytes")));
    }
    let value = value.trim();
    let (algorithm, parameters) = value.split_once(' ').unwrap_or((value, ""));
    let credential_key = match algorithm {
        SDK_ALGORITHM => "Access",
        V11_ALGORITHM => "Credential",
        other => return Err(AuthError::UnsupportedAlgorithm(other.chars().take(32).collect())),
    };
    let [credential, signed_headers, signature] =
        parameter_values(parameters, [credential_key, "SignedHeaders", "Signature"])?;
    let signed_headers = parse_signed_headers(signed_headers)?;
    if signature.len() != 64 || !signature.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(malformed("Signature must be 64 lower-case hex digits".into()));
    }
    let signature = signature.to_owned();
    if algorithm == SDK_ALGORITHM {
        let access_key = check_access_key(credential)?.to_owned();
        return Ok(Authorization::SdkHmacSha256 { access_key, signed_headers, signature });
    }
    let (access_key, info) = credential
        .split_once('/')
        .ok_or_else(|| malformed("Credential must be AK/YYYYMMDD/region/service".into()))?;
    let access_key = check_access_key(access_key)?.to_owned();
    let scope_parts: Vec<&str> = info.split('/').collect();
    if scope_parts.len() != 3 || scope_parts.iter().any(|part| part.is_empty()) {
        return Err(malformed("Credential scope must be YYYYMMDD/region/service".into()));
    }
    Ok(Authorization::V11HmacSha256 { access_key, info: info.to_owned(), signed_headers, signature })
}

fn malformed(reason: String) -> AuthError {
    AuthError::MalformedAuthorization(reason)
}

/// Splits `Key=value, Key=value, ...` and returns the values of `keys`, in that order.
fn parameter_values<'a, const N: usize>(
    parameters: &'a str,
    keys: [&str; N],
) -> Result<[&'a str; N], AuthError> {
    let mut values: [Option<&'a str>; N] = [None; N];
    for parameter in parameters.split(',') {
        let parameter = parameter.trim();
        let (key, value) =
            parameter.split_once('=').ok_or_else(|| malformed("expected Key=value parameters".into()))?;
        let index = keys.iter().position(|expected| *expected == key).ok_or_else(|| {
            malformed(format!("unexpected parameter {:?}", key.chars().take(32).collect::<String>()))
        })?;
        if values[index].replace(value).is_some() {
            return Err(malformed(format!("{key} given twice")));
        }
    }
    let mut found = [""; N];
    for (index, value) in values.iter().enumerate() {
        found[index] = value.ok_or_else(|| malformed(format!("missing {}", keys[index])))?;
    }
    Ok(found)
}

fn parse_signed_headers(list: &str) -> Result<Vec<String>, AuthError> {
    let names: Vec<String> = list.split(';').map(str::to_owned).collect();
    if names.len() > MAX_SIGNED_HEADERS {
        return Err(malformed(format!("more than {MAX_SIGNED_HEADERS} SignedHeaders")));
    }
    if names.iter().any(|name| name.is_empty() || !name.bytes().all(is_header_name_byte)) {
        return Err(malformed("SignedHeaders must be ';'-separated header names".into()));
    }
    Ok(names)
}

/// RFC 9110 `tchar`: the bytes a header name may contain.
fn is_header_name_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

fn check_access_key(access_key: &str) -> Result<&str, AuthError> {
    if access_key.is_empty() || !access_key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(malformed("access key must be non-empty printable ASCII".into()));
    }
    Ok(access_key)
}

/// Checks `req` against `auth` with the credential's `secret_key`, server side.
///
/// Requires an `X-Sdk-Date` header within [`MAX_CLOCK_SKEW_S`] of `now_unix_s`; for V11 the
/// credential scope must be `<that date's YYYYMMDD>/<region>/iotdm` (any region: the engine
/// decides whether the region matters). The signed headers are those listed in the
/// `Authorization` header. When an older SDK's payload-hash rule would have hashed something
/// else (see `PayloadHashLines`), either form is accepted.
pub fn verify(
    req: &RequestParts<'_>,
    auth: &Authorization,
    secret_key: &str,
    now_unix_s: i64,
) -> Result<(), AuthError> {
    let sdk_date = sdk_date(req)?;
    let skew_s = now_unix_s.saturating_sub(parse_sdk_date(sdk_date)?);
    if skew_s.abs() > MAX_CLOCK_SKEW_S {
        return Err(AuthError::ClockSkew { skew_s });
    }
    let (signature, signing) = match auth {
        Authorization::SdkHmacSha256 { signature, .. } => (signature, Signing::Sdk { secret_key }),
        Authorization::V11HmacSha256 { access_key, info, signature, .. } => {
            check_credential_scope(info, sdk_date)?;
            (signature, Signing::V11 { access_key, secret_key, info })
        }
    };
    check_declared_payload_hash(req)?;
    let without_payload = canonical_request_without_payload(req, auth.signed_headers())?;
    let payload_hash_lines = PayloadHashLines::of(req)?;
    let candidates = std::iter::once(&payload_hash_lines.current).chain(payload_hash_lines.legacy.as_ref());
    let mut matched = false;
    for payload_hash in candidates {
        let canonical = format!("{without_payload}{payload_hash}");
        let expected = signing.signature(sdk_date, &canonical);
        // Not short-circuited: both candidates cost the same whether the first matched or not.
        matched |= constant_time_eq(expected.as_bytes(), signature.as_bytes());
    }
    if matched {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// A declared payload hash must be the body's own hash whenever there is a body.
fn check_declared_payload_hash(req: &RequestParts<'_>) -> Result<(), AuthError> {
    let declared = header_text(req.headers, canonical::CONTENT_SHA256_HEADER)?;
    match declared {
        Some(value) if !req.body.is_empty() && !value.eq_ignore_ascii_case(&sha256_hex(req.body)) => {
            Err(AuthError::PayloadHashMismatch)
        }
        _ => Ok(()),
    }
}

fn check_credential_scope(info: &str, sdk_date: &str) -> Result<(), AuthError> {
    let scope_date = info.split('/').next().unwrap_or("");
    if scope_date != &sdk_date[..8] {
        return Err(AuthError::BadCredentialScope("date differs from X-Sdk-Date".into()));
    }
    if !info.ends_with(&format!("/{V11_SERVICE_NAME}")) {
        return Err(AuthError::BadCredentialScope(format!("service must be {V11_SERVICE_NAME}")));
    }
    Ok(())
}

/// The `X-Sdk-Date` value, validated as `yyyyMMddTHHmmssZ` (so slicing its first 8 bytes
/// is safe and the value equals the SDK's `strftime` of it).
fn sdk_date<'a>(req: &RequestParts<'a>) -> Result<&'a str, AuthError> {
    let sdk_date = header_text(req.headers, SDK_DATE_HEADER)?.ok_or(AuthError::MissingDate)?;
    parse_sdk_date(sdk_date)?;
    Ok(sdk_date)
}

/// One of the two ways to turn a canonical request into a signature.
enum Signing<'a> {
    Sdk { secret_key: &'a str },
    V11 { access_key: &'a str, secret_key: &'a str, info: &'a str },
}

impl Signing<'_> {
    fn signature(&self, sdk_date: &str, canonical: &str) -> String {
        let canonical_hash = sha256_hex(canonical.as_bytes());
        match self {
            Signing::Sdk { secret_key } => {
                let string_to_sign = format!("{SDK_ALGORITHM}\n{sdk_date}\n{canonical_hash}");
                hex_lower(&hmac_sha256(secret_key.as_bytes(), string_to_sign.as_bytes()))
            }
            Signing::V11 { access_key, secret_key, info } => {
                let string_to_sign = format!("{V11_ALGORITHM}\n{sdk_date}\n{info}\n{canonical_hash}");
                let signing_key = digest::v11_signing_key(access_key, secret_key, info);
                hex_lower(&hmac_sha256(signing_key.as_bytes(), string_to_sign.as_bytes()))
            }
        }
    }
}

/// Client side: the `Authorization` value `huaweicloudsdkcore` would send for `req`, which
/// must already carry `X-Sdk-Date` (and `Host`). Signs every header whose name has no `_`,
/// except `Authorization` itself, lower-cased and sorted.
pub fn sign_sdk_hmac_sha256(
    req: &RequestParts<'_>,
    access_key: &str,
    secret_key: &str,
) -> Result<String, AuthError> {
    let (signed_headers, signature) = sign(req, Signing::Sdk { secret_key })?;
    Ok(format!("{SDK_ALGORITHM} Access={access_key}, SignedHeaders={signed_headers}, Signature={signature}"))
}

/// Client side, derived-key variant (spec §4.3) for `region_id` and service `iotdm`.
pub fn sign_v11_hmac_sha256(
    req: &RequestParts<'_>,
    access_key: &str,
    secret_key: &str,
    region_id: &str,
) -> Result<String, AuthError> {
    let sdk_date = sdk_date(req)?;
    let info = format!("{}/{region_id}/{V11_SERVICE_NAME}", &sdk_date[..8]);
    let (signed_headers, signature) = sign(req, Signing::V11 { access_key, secret_key, info: &info })?;
    Ok(format!("{V11_ALGORITHM} Credential={access_key}/{info}, SignedHeaders={signed_headers}, Signature={signature}"))
}

/// Returns `(SignedHeaders value, signature)`.
fn sign(req: &RequestParts<'_>, signing: Signing<'_>) -> Result<(String, String), AuthError> {
    let sdk_date = sdk_date(req)?;
    let mut signed_headers: Vec<String> = req
        .headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .filter(|name| !name.contains('_') && name != "authorization")
        .collect();
    signed_headers.sort_unstable();
    if let Some(pair) = signed_headers.windows(2).find(|pair| pair[0] == pair[1]) {
        return Err(AuthError::DuplicateHeader(pair[0].clone()));
    }
    let canonical = canonical_request(req, &signed_headers)?;
    Ok((signed_headers.join(";"), signing.signature(sdk_date, &canonical)))
}
