//! The canonical request (spec §4.2 step 2), rebuilt from the request *as received* so that
//! it is byte-identical to what `huaweicloudsdkcore`'s `Signer._process_canonical_request`
//! hashed on the client.
//!
//! ```text
//! METHOD \n CanonicalURI \n CanonicalQuery \n CanonicalHeaders \n SignedHeaders \n PayloadHash
//! ```
//!
//! Each piece mirrors one SDK function, including its Python quirks:
//! - **URI**: `unquote(path)` (UTF-8, invalid sequences become U+FFFD, malformed `%` escapes
//!   stay literal), split on `/` — so `%2F` separates segments —, `quote(segment, safe='~')`
//!   each, join, and end with `/`.
//! - **Query**: the SDK sends the query already canonical, so we percent-decode each
//!   `name=value` pair, sort by name then value (code-point order, like Python's `str`), and
//!   encode again. `+` is a literal plus, not a space: the SDK writes spaces as `%20` and a
//!   plus as `%2B`. A pair without `=` counts as an empty value (`name=`); empty pieces
//!   between `&`s are skipped.
//! - **Headers**: `name:value\n` per signed name, in the order the client listed them; the
//!   value is decoded as UTF-8 and trimmed like Python's `str.strip()`.
//! - **Payload hash**: see [`PayloadHashLines`].

use std::borrow::Cow;

use super::digest::sha256_hex;
use super::{AuthError, RequestParts};

/// Header carrying a client-chosen payload hash (the SDK sets `UNSIGNED-PAYLOAD` there for
/// bodies that are not JSON).
pub(super) const CONTENT_SHA256_HEADER: &str = "X-Sdk-Content-Sha256";

/// SHA-256 of the empty string: the current SDK's payload hash for every empty body.
const EMPTY_BODY_SHA256_HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The canonical request of spec §4.2 step 2 for `req`, with `signed_headers` (names as the
/// client listed them in `SignedHeaders=`) read from the request.
pub fn canonical_request(req: &RequestParts<'_>, signed_headers: &[String]) -> Result<String, AuthError> {
    let mut canonical = canonical_request_without_payload(req, signed_headers)?;
    canonical.push_str(&PayloadHashLines::of(req)?.current);
    Ok(canonical)
}

/// Every line of the canonical request except the last (the payload hash), which the caller
/// appends. Split out because [`super::verify`] may have two payload-hash candidates.
pub(super) fn canonical_request_without_payload(
    req: &RequestParts<'_>,
    signed_headers: &[String],
) -> Result<String, AuthError> {
    let mut canonical = String::with_capacity(256 + req.path.len() * 3);
    canonical.push_str(&req.method.to_ascii_uppercase());
    canonical.push('\n');
    push_canonical_uri(&mut canonical, req.path);
    canonical.push('\n');
    push_canonical_query(&mut canonical, req.query.unwrap_or(""));
    canonical.push('\n');
    for name in signed_headers {
        let value =
            header_text(req.headers, name)?.ok_or_else(|| AuthError::MissingSignedHeader(name.clone()))?;
        canonical.push_str(name);
        canonical.push(':');
        canonical.push_str(value);
        canonical.push('\n');
    }
    canonical.push('\n');
    for (index, name) in signed_headers.iter().enumerate() {
        if index > 0 {
            canonical.push(';');
        }
        canonical.push_str(name);
    }
    canonical.push('\n');
    Ok(canonical)
}

/// The last line of the canonical request. SDK generations disagree on one corner:
/// - current `huaweicloudsdkcore`: empty body ⇒ hash of the empty string, whatever the
///   headers say; otherwise a non-empty `X-Sdk-Content-Sha256` value; otherwise SHA-256 of
///   the body;
/// - older releases (and spec §4.2): the header's value whenever it is present, even on an
///   empty body.
///
/// [`canonical_request`] uses the current rule; [`super::verify`] also accepts the older one
/// where it differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PayloadHashLines<'a> {
    pub current: Cow<'a, str>,
    pub legacy: Option<Cow<'a, str>>,
}

impl<'a> PayloadHashLines<'a> {
    pub fn of(req: &RequestParts<'a>) -> Result<Self, AuthError> {
        let declared = header_text(req.headers, CONTENT_SHA256_HEADER)?;
        let body_hash = || -> Cow<'a, str> {
            if req.body.is_empty() {
                Cow::Borrowed(EMPTY_BODY_SHA256_HEX)
            } else {
                Cow::Owned(sha256_hex(req.body))
            }
        };
        let current = match declared {
            Some(value) if !value.is_empty() && !req.body.is_empty() => Cow::Borrowed(value),
            _ => body_hash(),
        };
        let legacy = match declared {
            Some(value) if value != current => Some(Cow::Borrowed(value)),
            _ => None,
        };
        Ok(PayloadHashLines { current, legacy })
    }
}

/// Looks up a header by case-insensitive name and returns its value as UTF-8, trimmed as
/// Python's `str.strip()` trims. `None` when absent. A repeated header is an error rather than
/// a guess: the SDK never repeats one, and picking "the first" here while the engine's HTTP
/// layer picks another would let the signed and the acted-on values differ.
pub(super) fn header_text<'a>(
    headers: &[(&str, &'a [u8])],
    name: &str,
) -> Result<Option<&'a str>, AuthError> {
    let mut found: Option<&'a [u8]> = None;
    for (header_name, value) in headers {
        if header_name.eq_ignore_ascii_case(name) {
            if found.is_some() {
                return Err(AuthError::DuplicateHeader(name.to_owned()));
            }
            found = Some(value);
        }
    }
    let Some(raw) = found else { return Ok(None) };
    let text = std::str::from_utf8(raw).map_err(|_| AuthError::NonUtf8Header(name.to_owned()))?;
    Ok(Some(text.trim_matches(is_python_whitespace)))
}

/// `str.isspace()` in Python: Unicode `White_Space` plus the ASCII separators 0x1C..=0x1F.
fn is_python_whitespace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn push_canonical_uri(out: &mut String, raw_path: &str) {
    let decoded_path = percent_decode(raw_path);
    for (index, segment) in decoded_path.split('/').enumerate() {
        if index > 0 {
            out.push('/');
        }
        push_percent_encoded(out, segment);
    }
    if !out.ends_with('/') {
        out.push('/');
    }
}

fn push_canonical_query(out: &mut String, raw_query: &str) {
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect();
    pairs.sort_unstable();
    for (index, (name, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        push_percent_encoded(out, name);
        out.push('=');
        push_percent_encoded(out, value);
    }
}

/// Python's `urllib.parse.unquote`: `%XX` (either case) becomes a byte, anything else —
/// including a `%` not followed by two hex digits, and `+` — stays as it is; the bytes are
/// read as UTF-8 with each invalid sequence replaced by U+FFFD.
fn percent_decode(text: &str) -> Cow<'_, str> {
    if !text.contains('%') {
        return Cow::Borrowed(text);
    }
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = match bytes.get(index..index + 3) {
            Some([b'%', high, low]) => hex_value(*high).zip(hex_value(*low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                decoded.push(high << 4 | low);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    Cow::Owned(String::from_utf8_lossy(&decoded).into_owned())
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Python's `urllib.parse.quote(text, safe='~')`: keeps `A-Z a-z 0-9 - _ . ~`, writes every
/// other UTF-8 byte as `%XX` with upper-case hex.
fn push_percent_encoded(out: &mut String, text: &str) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(DIGITS[usize::from(byte >> 4)]));
            out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(path: &str) -> String {
        let mut out = String::new();
        push_canonical_uri(&mut out, path);
        out
    }

    fn query(raw: &str) -> String {
        let mut out = String::new();
        push_canonical_query(&mut out, raw);
        out
    }

    #[test]
    fn uri_gains_a_trailing_slash_once() {
        assert_eq!(uri("/v5/iot/proj123/devices"), "/v5/iot/proj123/devices/");
        assert_eq!(uri("/v5/iot/proj123/devices/"), "/v5/iot/proj123/devices/");
        assert_eq!(uri("/"), "/");
        assert_eq!(uri(""), "/");
    }

    #[test]
    fn uri_segments_are_decoded_then_quoted_like_python() {
        // Expected values computed with Python: '/'.join(quote(s, safe='~') for s in unquote(p).split('/')).
        assert_eq!(uri("/v5/iot/p/devices/dev%20001"), "/v5/iot/p/devices/dev%20001/");
        assert_eq!(uri("/v5/iot/p/devices/dev 001"), "/v5/iot/p/devices/dev%20001/");
        assert_eq!(uri("/d/a%2Fb"), "/d/a/b/");
        assert_eq!(uri("/d/a%2fb%7e%7E"), "/d/a/b~~/");
        assert_eq!(uri("/d/%E8%AE%BE%E5%A4%87"), "/d/%E8%AE%BE%E5%A4%87/");
        assert_eq!(uri("/d/设备"), "/d/%E8%AE%BE%E5%A4%87/");
        assert_eq!(
            uri("/d/a+b:c@d!e*f'g(h)i;j=k,l$m&n"),
            "/d/a%2Bb%3Ac%40d%21e%2Af%27g%28h%29i%3Bj%3Dk%2Cl%24m%26n/"
        );
        assert_eq!(uri("/d/100%/x%zz/%4"), "/d/100%25/x%25zz/%254/");
        assert_eq!(uri("/d/%FF%E8"), "/d/%EF%BF%BD%EF%BF%BD/");
        assert_eq!(uri("/d/-_.~"), "/d/-_.~/");
    }

    #[test]
    fn query_is_sorted_by_name_then_value_and_requoted() {
        assert_eq!(query("task_type=createCommands&limit=10"), "limit=10&task_type=createCommands");
        assert_eq!(query("b=2&a=2&a=10&a=1"), "a=1&a=10&a=2&b=2");
        assert_eq!(query("name=a%20b&tag=%E6%B8%A9%E5%BA%A6"), "name=a%20b&tag=%E6%B8%A9%E5%BA%A6");
        assert_eq!(query("tag=温度"), "tag=%E6%B8%A9%E5%BA%A6");
        assert_eq!(query("x=1%2b1&y=%7e-._"), "x=1%2B1&y=~-._");
        assert_eq!(query("q=a=b"), "q=a%3Db");
    }

    #[test]
    fn query_plus_is_a_literal_plus() {
        assert_eq!(query("p=a+b"), "p=a%2Bb");
    }

    #[test]
    fn query_empty_values_and_pieces() {
        assert_eq!(query(""), "");
        assert_eq!(query("marker=&limit=10"), "limit=10&marker=");
        assert_eq!(query("marker&limit=10"), "limit=10&marker=");
        assert_eq!(query("&limit=10&&"), "limit=10");
    }

    #[test]
    fn query_sorts_decoded_text_by_code_point() {
        // 'Z' (0x5A) < '_' (0x5F) < 'a' (0x61) < 'é' (U+00E9), whatever the escapes looked like.
        assert_eq!(query("%C3%A9=1&a=1&_=1&Z=1"), "Z=1&_=1&a=1&%C3%A9=1");
    }

    #[test]
    fn header_lookup_is_case_insensitive_and_trims_python_whitespace() {
        let headers: &[(&str, &[u8])] = &[("X-Project-Id", b" \t proj123\x1f "), ("host", b"h")];
        assert_eq!(header_text(headers, "x-project-id"), Ok(Some("proj123")));
        assert_eq!(header_text(headers, "HOST"), Ok(Some("h")));
        assert_eq!(header_text(headers, "absent"), Ok(None));
    }

    #[test]
    fn header_lookup_rejects_repeats_and_non_utf8() {
        let headers: &[(&str, &[u8])] = &[("A", b"1"), ("a", b"2"), ("b", b"\xff")];
        assert_eq!(header_text(headers, "a"), Err(AuthError::DuplicateHeader("a".into())));
        assert_eq!(header_text(headers, "b"), Err(AuthError::NonUtf8Header("b".into())));
    }
}
