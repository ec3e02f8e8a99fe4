//! `aksk_auth`: a REST request's credential as the engine checks it.
//!
//! Input, as text lines (`\n`): the `Authorization` value, the method, the raw path, the raw
//! query (`?` first, or an empty line for none), then one `Name: value` header per line up to
//! an empty line; every byte after that is the body. Header values stay bytes (they may be
//! anything on the wire); the other lines must be UTF-8, as hyper hands them over. A header
//! hyper would refuse (a name that is not a token, a control byte in a value) drops the input.

use protocol::auth::{self, AuthError, RequestParts};

const ACCESS_KEY: &str = "FUZZAK";
const REGION_ID: &str = "cn-north-4";
/// Most header lines read; the engine's HTTP server caps headers too.
const HEADERS_MAX: usize = 100;

pub fn aksk_auth(data: &[u8]) {
    let Some(request) = Request::parse(data) else { return };
    let parts = request.parts();
    // The server: parse the header, then verify against the key's secret, at the request's own
    // date (so the check reaches the canonical request) and a day later (clock skew).
    let now = date_of(&parts).unwrap_or(crate::NOW_UNIX_S);
    if let Ok(authorization) = auth::parse_authorization(request.authorization) {
        let _ = authorization.region_id();
        let _ = auth::verify(&parts, &authorization, crate::SECRET, now);
        let _ = auth::verify(&parts, &authorization, crate::SECRET, now.saturating_add(86_400));
        let _ = auth::canonical_request(&parts, authorization.signed_headers());
    }
    // The client: what the SDK would send for this request must verify.
    let signed = [
        auth::sign_sdk_hmac_sha256(&parts, ACCESS_KEY, crate::SECRET),
        auth::sign_v11_hmac_sha256(&parts, ACCESS_KEY, crate::SECRET, REGION_ID),
    ];
    for authorization in signed.into_iter().flatten() {
        // A request whose header names the grammar refuses cannot be signed for the server.
        let Ok(parsed) = auth::parse_authorization(&authorization) else { continue };
        assert_eq!(parsed.access_key(), ACCESS_KEY);
        if let Err(AuthError::SignatureMismatch) = auth::verify(&parts, &parsed, crate::SECRET, now) {
            panic!("our own signature does not verify: {authorization}");
        }
    }
}

fn date_of(parts: &RequestParts<'_>) -> Option<i64> {
    let (_, value) = parts.headers.iter().find(|(name, _)| name.eq_ignore_ascii_case("x-sdk-date"))?;
    protocol::time::parse_sdk_date(std::str::from_utf8(value).ok()?).ok()
}

/// The pieces of one fuzz input, borrowed from it.
struct Request<'a> {
    authorization: &'a str,
    method: &'a str,
    path: &'a str,
    query: Option<&'a str>,
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
}

impl<'a> Request<'a> {
    fn parse(data: &'a [u8]) -> Option<Request<'a>> {
        let mut rest = data;
        let mut line = || -> Option<&'a [u8]> {
            let end = rest.iter().position(|&byte| byte == b'\n').unwrap_or(rest.len());
            let (line, after) = rest.split_at(end);
            rest = after.get(1..).unwrap_or_default();
            Some(line)
        };
        let text = |bytes: &'a [u8]| std::str::from_utf8(bytes).ok();
        let authorization = text(line()?)?;
        let method = text(line()?)?;
        let path = text(line()?)?;
        let query = text(line()?)?.strip_prefix('?');
        let mut headers = Vec::new();
        for _ in 0..HEADERS_MAX {
            let header = line()?;
            if header.is_empty() {
                break;
            }
            let colon = header.iter().position(|&byte| byte == b':')?;
            let name = text(&header[..colon])?;
            let value = header[colon + 1..].strip_prefix(b" ").unwrap_or(&header[colon + 1..]);
            // hyper answers 400 to anything else, so the engine never sees it: a name is an
            // RFC 9110 token (no spaces before the colon), a value has no control bytes but tab.
            let is_token = !name.is_empty() && name.bytes().all(is_token_byte);
            if !is_token || value.iter().any(|&byte| byte.is_ascii_control() && byte != b'\t') {
                return None;
            }
            headers.push((name, value));
        }
        Some(Request { authorization, method, path, query, headers, body: rest })
    }

    fn parts(&self) -> RequestParts<'_> {
        RequestParts {
            method: self.method,
            path: self.path,
            query: self.query,
            headers: &self.headers,
            body: self.body,
        }
    }
}

/// RFC 9110 `tchar`.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Used by the seeds: an `Authorization` value for `request` as the SDK makes it.
pub(crate) fn sign(parts: &RequestParts<'_>, v11: bool) -> Result<String, AuthError> {
    if v11 {
        auth::sign_v11_hmac_sha256(parts, ACCESS_KEY, crate::SECRET, REGION_ID)
    } else {
        auth::sign_sdk_hmac_sha256(parts, ACCESS_KEY, crate::SECRET)
    }
}
