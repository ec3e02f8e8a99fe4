//! What a shard's front desk holds: the local shard handle, the credentials, the config, and
//! the id generators. One `App` per shard, shared as `Rc` by every HTTP connection it serves.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

use http::StatusCode;
use serde::Serialize;
use shards::record_id::RecordIdGenerator;
use shards::registry::Shard;

use crate::api::query::Query;
use crate::config::Config;
use crate::http::auth::Credentials;

#[derive(Debug)]
pub struct App {
    pub shard: Rc<Shard>,
    pub credentials: Credentials,
    pub config: Config,
    pub record_ids: RecordIdGenerator,
    request_id_nonce: u64,
    request_id_counter: Cell<u64>,
}

impl App {
    /// `record_id_max`: the highest record id stored anywhere, so new ids sort above it.
    pub fn new(shard: Rc<Shard>, credentials: Credentials, config: Config, record_id_max: u128) -> App {
        let (id, count) = (shard.id(), shard.shard_count());
        App {
            shard,
            credentials,
            config,
            record_ids: RecordIdGenerator::for_shard(record_id_max, id, count),
            request_id_nonce: crate::random::u64(),
            request_id_counter: Cell::new(0),
        }
    }

    /// A fresh `X-Request-Id`: 32 hex digits, unique within and across runs.
    pub fn next_request_id(&self) -> String {
        let counter = self.request_id_counter.get().wrapping_add(1);
        self.request_id_counter.set(counter);
        format!("{:016x}{counter:016x}", self.request_id_nonce)
    }
}

/// Wall-clock time in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A call that passed authentication, with the project it is for.
#[derive(Debug)]
pub struct ApiRequest<'a> {
    pub project_id: &'a str,
    pub query: Query,
    /// The query as received, for a call forwarded to shard 0.
    pub raw_query: Option<&'a str>,
    pub body: &'a [u8],
}

/// A successful answer: status, body (empty for 204) and its content type.
#[derive(Debug)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Vec<u8>,
    pub content_type: &'static str,
    /// More response headers (the console's security and caching headers).
    pub headers: &'static [(&'static str, &'static str)],
}

const JSON: &str = "application/json";

impl ApiResponse {
    pub fn json<T: Serialize>(status: StatusCode, value: &T) -> ApiResponse {
        ApiResponse { status, body: protocol::json::to_vec(value), content_type: JSON, headers: &[] }
    }

    /// A JSON body built by the caller (it embeds JSON text verbatim).
    pub fn raw_json(status: StatusCode, body: Vec<u8>) -> ApiResponse {
        ApiResponse { status, body, content_type: JSON, headers: &[] }
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn prometheus(body: String) -> ApiResponse {
        ApiResponse {
            status: StatusCode::OK,
            body: body.into_bytes(),
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            headers: &[],
        }
    }

    pub fn no_content() -> ApiResponse {
        ApiResponse { status: StatusCode::NO_CONTENT, body: Vec::new(), content_type: JSON, headers: &[] }
    }
}

pub type ApiResult = Result<ApiResponse, crate::http::error::ApiError>;
