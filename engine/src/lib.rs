//! # engine — the ringiot process
//!
//! ringiot is a device access engine compatible with Huawei Cloud IoTDA. This crate is the
//! process around the shards: configuration, start-up and shutdown (including binding every
//! shard's MQTT listener, whose sessions live in `shards::device_access`), and the HTTP front
//! desk that serves IoTDA's REST API v5 on every shard (SO_REUSEPORT).
//!
//! ## Layout
//! - [`config`]: defaults (`default-config.toml`), TOML file, flags; `ringiot print-config`.
//! - [`bootstrap`]: the default project made at first start when none is configured.
//! - [`start`]: the process life cycle — limits, signals, shards, the front desk.
//! - [`listeners`]: MQTT, MQTT over TLS, HTTP and HTTPS, bound on every shard.
//! - [`tls_setup`]: the TLS certificate — configured or generated — and its SIGHUP reload.
//! - [`http`]: hyper on glommio — adapters, accept loop, auth, routing, the error mapping.
//! - [`api`]: one file per REST resource (products, devices, device calls, messages, routing
//!   rules, batch tasks, metrics) plus query/paging.
//! - [`app`]: the front desk's shared state.
//!
//! ## Flow of a REST call
//! any shard accepts (the kernel spreads connections) → hyper parses → the body is read
//! (bounded) → the credential is checked and must belong to the path's project → the router
//! forwards what shard 0 owns (product and routing-rule writes, batch tasks) to shard 0, and
//! otherwise picks a handler → the handler validates with `protocol` and calls the device's
//! home shard (`shards::registry::Shard::call`) → the home shard logs the change and replies
//! once it is durable → the handler shapes the JSON answer.
//!
//! DESIGN.md §7 puts the front desk on shard 0 alone; measured, that shard saturated its core at
//! ~35k command round trips/s whatever the shard count (16-core machine: shard 0 at 99 %, the
//! seven others at 35 %), so every shard now serves HTTP and only shard-0-owned writes hop.
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
pub mod console;
pub mod http;
pub mod listeners;
pub mod random;
pub mod start;
pub mod tls_setup;
