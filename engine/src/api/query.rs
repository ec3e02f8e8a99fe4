//! Query strings and IoTDA paging (`limit` 1–50 default 10, `marker` 24 hex, `offset` 0–500;
//! spec §2.1).

use protocol::error::ValidationError;
use shards::record_id::{format_marker, parse_marker, RECORD_ID_MAX};

use crate::http::error::ApiError;

/// Decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, ApiError> {
        let mut pairs = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            pairs.push((percent_decode(name)?, percent_decode(value)?));
        }
        Ok(Query(pairs))
    }

    /// The first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The value of `name` if present and not empty.
    pub fn non_empty(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty()).map(str::to_owned)
    }
}

/// `%XX` decoding; `+` stays `+` (the SDKs encode spaces as `%20`).
pub fn percent_decode(text: &str) -> Result<String, ApiError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = bytes.get(index + 1..index + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            let byte =
                byte.ok_or_else(|| ApiError::BadRequest(format!("bad percent-encoding in '{text}'")))?;
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded)
        .map_err(|_| ApiError::BadRequest(format!("'{text}' is not UTF-8 once decoded")))
}

/// A validated page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub limit: usize,
    pub marker: u128,
    pub offset: usize,
}

pub const LIMIT_DEFAULT: usize = 10;
pub const LIMIT_MAX: usize = 50;
pub const OFFSET_MAX: usize = 500;

impl Paging {
    pub fn from_query(query: &Query) -> Result<Paging, ApiError> {
        let limit = limit_of(query)?;
        let marker = match query.get("marker") {
            None | Some("") => RECORD_ID_MAX,
            Some(text) => parse_marker(text)
                .ok_or_else(|| ApiError::MarkerOutOfRange(format!("'{text}' is not 24 hex digits")))?,
        };
        let offset = offset_of(query)?;
        Ok(Paging { limit, marker, offset })
    }
}

/// `limit` (1–50, default 10) and `offset` (0–500) for lists paged by something other than
/// record ids (routing rules, batch tasks and their details).
pub fn limit_and_offset(query: &Query) -> Result<(usize, usize), ApiError> {
    Ok((limit_of(query)?, offset_of(query)?))
}

fn limit_of(query: &Query) -> Result<usize, ApiError> {
    match query.get("limit") {
        None | Some("") => Ok(LIMIT_DEFAULT),
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=LIMIT_MAX).contains(l))
            .ok_or_else(|| ApiError::LimitOutOfRange(format!("'{text}' is not in 1..={LIMIT_MAX}"))),
    }
}

fn offset_of(query: &Query) -> Result<usize, ApiError> {
    match query.get("offset") {
        None | Some("") => Ok(0),
        Some(text) => text.parse::<usize>().ok().filter(|o| *o <= OFFSET_MAX).ok_or_else(|| {
            ApiError::Validation(ValidationError::new(
                "offset",
                format!("'{text}' is not in 0..={OFFSET_MAX}"),
            ))
        }),
    }
}

/// The `page` object of list responses.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Page {
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
}

impl Page {
    pub fn new(count: u64, last_record_id: Option<u128>) -> Page {
        Page { count, marker: last_record_id.map(format_marker) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bounds() {
        let paging = Paging::from_query(&Query::parse(None).unwrap()).unwrap();
        assert_eq!(paging, Paging { limit: 10, marker: RECORD_ID_MAX, offset: 0 });
        let query = Query::parse(Some("limit=50&offset=500&marker=00000000000000000000000a")).unwrap();
        assert_eq!(Paging::from_query(&query).unwrap(), Paging { limit: 50, marker: 10, offset: 500 });
        for bad in ["limit=0", "limit=51", "limit=x"] {
            let error = Paging::from_query(&Query::parse(Some(bad)).unwrap()).unwrap_err();
            assert_eq!(error.status_and_code().1, "IOTDA.000017", "{bad}");
        }
        let error = Paging::from_query(&Query::parse(Some("marker=abc")).unwrap()).unwrap_err();
        assert_eq!(error.status_and_code().1, "IOTDA.000018");
        let error = Paging::from_query(&Query::parse(Some("offset=501")).unwrap()).unwrap_err();
        assert!(error.to_string().contains("offset"));
    }

    #[test]
    fn values_are_percent_decoded() {
        let query = Query::parse(Some("device_name=pump%20%C3%BC&x=a+b&flag")).unwrap();
        assert_eq!(query.get("device_name"), Some("pump ü"));
        assert_eq!(query.get("x"), Some("a+b"));
        assert_eq!(query.get("flag"), Some(""));
        assert!(Query::parse(Some("a=%zz")).is_err());
    }
}
