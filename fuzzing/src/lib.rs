//! # fuzzing — one entry point per fuzz target, shared by cargo-fuzz and `cargo test`
//!
//! Each `pub fn <target>(data: &[u8])` feeds arbitrary bytes through the code the engine runs
//! on that input, in the order it runs it. The cargo-fuzz crate in `fuzz/` (nightly, outside the
//! workspace) calls them from one-line targets; `tests/corpus_replay.rs` (stable, part of
//! `cargo test`) runs every checked-in corpus file and crash reproducer through the same
//! functions, so a fixed finding stays fixed without a nightly toolchain.
//!
//! ## Targets
//! - [`mqtt_session`]: `protocol::mqtt::codec::read_packet` over a byte stream — the listener's
//!   first-packet read (CONNECT, login) or the session's reads for MQTT 3.1.1 / 5.0 — and, for
//!   every decoded packet, the pure steps the device session takes: topic classification and
//!   ACL, property reports applied to a shadow, shadow-get requests and their downlink, call
//!   answers, message-report content, SUBSCRIBE filters, and the answers it writes.
//! - [`rest_bodies`]: the body parse and validation of every REST resource that takes one
//!   (products, devices add/update, commands, property set, messages, batch tasks, routing
//!   rules and rule actions create/update, and query strings), then the checks the home shard
//!   applies (product model) and the re-read the log replay does of what would be stored.
//! - [`aksk_auth`]: `Authorization` header parsing, the canonical request and signature
//!   verification of `protocol::auth`, and a sign → verify round trip over the same request.
//! - [`device_login`]: the clientId grammar, `device_id_of` and `check_login` (keep-alive,
//!   username, timestamp window, HMAC password).
//! - [`log_replay`]: shard log recovery over bytes — segment scanning (header, checksum,
//!   padding, reserved kinds), snapshot parsing (footer), registry record decoding (rkyv
//!   checked access), replay by revision, and the JSON re-reads a recovering shard does.
//!
//! ## Invariants the targets assert
//! - No input panics, hangs or allocates without bound (the campaign runs with
//!   `-malloc_limit_mb` and `-rss_limit_mb`): every failure is an `Err`.
//! - `read_packet` returns `Ok(None)` only with the buffer untouched, and consumes bytes
//!   whenever it returns a packet.
//! - A request signed by `protocol::auth`'s own signer never fails verification with a
//!   signature mismatch; a device password made by `device_password` always logs in.
//! - A validated REST document serializes to JSON that the shard's replay parses back.
//! - A segment scan never reports more valid bytes than it was given, and records it
//!   returns re-encode to exactly those bytes.

mod aksk;
mod log_replay;
mod login;
mod mqtt;
mod rest;
pub mod seeds;

pub use aksk::aksk_auth;
pub use log_replay::log_replay;
pub use login::device_login;
pub use mqtt::mqtt_session;
pub use rest::rest_bodies;

/// What every target is: bytes in, a panic the only failure.
pub type EntryPoint = fn(&[u8]);

/// Every target by the name of its `fuzz/fuzz_targets/<name>.rs` and corpus directory.
pub const TARGETS: [(&str, EntryPoint); 5] = [
    ("mqtt_session", mqtt_session),
    ("rest_bodies", rest_bodies),
    ("aksk_auth", aksk_auth),
    ("device_login", device_login),
    ("log_replay", log_replay),
];

/// The secret every target's device and access key uses.
const SECRET: &str = "fuzz-secret-123";
/// A fixed clock (2024-01-01T00:00:00Z) where the input does not choose one.
const NOW_UNIX_S: i64 = 1_704_067_200;
