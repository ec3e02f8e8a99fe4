//! # protocol — the pure half of ringiot
//!
//! Everything here is a function of its inputs: no sockets, no executor, no clock reads (the
//! caller passes `now`). That keeps it fuzzable and testable on its own and lets `shards` and
//! `engine` share one definition of the wire.
//!
//! ## Layout
//! - [`routing`]: `stable_hash(device_id)` and `home_shard` — the function every per-shard log
//!   depends on; fixed test vectors pin it forever.
//! - [`auth`]: REST authentication — AK/SK `SDK-HMAC-SHA256` and `V11-HMAC-SHA256` exactly as
//!   `huaweicloudsdkcore` signs, the canonical request, constant-time comparison.
//! - [`time`]: IoTDA's time formats (T1 `20151212T121212Z`, T2 `2015-12-12T12:12:12.000Z`) and
//!   `X-Sdk-Date` parsing, without a date crate.
//! - [`model`]: the product model (services, properties, commands) with its validation.
//! - [`device`]: device REST bodies (add / update) with their validation.
//! - [`shadow`]: the device shadow (desired / reported per service) and property reports.
//! - [`json`]: simd-json in (objects only where a struct is expected), serde out.
//! - [`mqtt`]: the device side — one packet type over MQTT 3.1.1 and 5.0 (mqttbytes), the
//!   IoTDA device login (clientId grammar, HMAC password), topics and the topic ACL.
//! - [`error`]: [`ValidationError`](error::ValidationError) and [`JsonError`](error::JsonError).
//!
//! ## Flow
//! The engine reads an HTTP request, calls [`auth`] to learn which project the credential
//! belongs to, parses the body with [`json`], validates it with [`model`] or [`device`], and
//! routes the result by [`routing::home_shard`].
//!
//! ## Invariants
//! - `protocol` never depends on glommio or any I/O crate.
//! - `stable_hash` never changes: data directories depend on it.
//! - Secret comparisons go through `auth::constant_time_eq`.

pub mod auth;
pub mod base64;
pub mod batch;
pub mod device;
pub mod error;
pub mod json;
pub mod model;
pub mod mqtt;
pub mod routing;
pub mod rules;
pub mod shadow;
pub mod time;
