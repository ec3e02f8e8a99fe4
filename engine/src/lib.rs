//! # engine — the ringiot process
//!
//! ringiot is a device access engine compatible with Huawei Cloud IoTDA. This crate is the
//! process around the shards: configuration, start-up and shutdown (including binding every
//! shard's MQTT listener, whose sessions live in `shards::device_access`), and the shard-0 HTTP
//! front desk that serves IoTDA's REST API v5.
//!
//! ## Layout
//! - [`config`]: defaults (`default-config.toml`), TOML file, flags; `ringiot print-config`.
//! - [`bootstrap`]: the default project made at first start when none is configured.
//! - [`start`]: the process life cycle — limits, signals, shards, the front desk.
//! - [`http`]: hyper on glommio — adapters, accept loop, auth, routing, the error mapping.
//! - [`api`]: one file per REST resource (products, devices) plus query/paging.
//! - [`app`]: the front desk's shared state.
//!
//! ## Flow of a REST call
//! shard 0 accepts → hyper parses → the body is read (bounded) → the credential is checked and
//! must belong to the path's project → the router picks a handler → the handler validates with
//! `protocol` and calls the device's home shard (`shards::registry::Shard::call`) → the home
//! shard logs the change and replies once it is durable → the handler shapes the JSON answer.
//!
//! ## Invariants
//! - Every response carries `X-Request-Id`; every error is `{"error_code","error_msg"}` made by
//!   `http::error::ApiError` alone.
//! - A credential only reaches its own project.
//! - Secrets (device secrets, SKs, tokens) never reach a log line or a list response.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod http;
pub mod random;
pub mod start;
