//! # shards — the per-shard world
//!
//! ringiot runs one glommio executor per core. Every device has one **home shard**,
//! `protocol::routing::home_shard(device_id, shard_count)`, and only that shard touches the
//! device's state; shards share nothing mutable and talk only through bounded channel meshes.
//!
//! ## Layout
//! - [`runtime`]: starting the executors, the meshes, the stop flag, resource limits.
//! - [`mesh`]: request/reply between shards with correlation ids ([`mesh::ToShard`],
//!   [`mesh::FromShard`]).
//! - [`messages`]: what travels on the mesh ([`messages::Request`], [`messages::Reply`]).
//! - [`registry`]: a shard's devices and products, and [`registry::Shard`], the shell that
//!   logs every change and answers requests.
//! - [`log`]: the durable per-shard append-only log with group commit, recovery, snapshots.
//! - [`data_dir`]: the data-directory lock and the recorded shard count.
//! - [`device_access`]: MQTT — the accept loop on every shard, the hand-off of a connection to
//!   its home shard, and device sessions.
//! - [`listen`]: the shared listening sockets (SO_REUSEPORT + SO_REUSEADDR), the check that no
//!   other process listens on the engine's ports, the open-files plan and the accept back-off.
//! - [`record_id`]: the 96-bit ids behind IoTDA's 24-hex list markers.
//! - [`batch`]: batch tasks — shard 0 owns them, every shard runs its slice.
//! - [`calls`]: synchronous commands and property set/get — waiters, deadlines, metrics.
//! - [`mailbox`]: downlink messages — the 20-message history, delivery, TTL, QoS 1 resends.
//! - [`notify`] and [`push`]: rule-engine notifications — envelopes, and the bounded per-shard
//!   outbox with its HTTP sender (hyper client on glommio, [`hyper_io`]).
//!
//! ## Flow
//! Shard 0's front desk (in `engine`) turns a REST call into a [`messages::Request`], and
//! [`registry::Shard::call`] runs it on the home shard — directly when that is shard 0, over
//! the mesh otherwise. The home shard applies the change, appends a record to its log, waits
//! for the group commit to make it durable, and replies.
//!
//! ## Invariants
//! - Only the home shard mutates a device (and its messages); only shard 0 writes products and
//!   routing rules.
//! - No reply to a write leaves a shard before the write is durable (unless the operator chose
//!   `durability = "none"`).
//! - Every queue is bounded: mesh channels, the log buffer, waiters per device, messages per
//!   device, the push outbox.

pub mod batch;
pub mod calls;
pub mod connection;
pub mod data_dir;
pub mod desired;
pub mod device_access;
pub mod gateway;
pub mod hyper_io;
pub mod listen;
pub mod log;
pub mod mailbox;
pub mod mesh;
pub mod messages;
pub mod notify;
pub mod push;
pub mod record_id;
pub mod registry;
pub mod runtime;
pub mod tls;

/// Wall-clock time in unix seconds (the shards' one clock read for device logins).
pub fn now_unix_s() -> i64 {
    now_unix_ms() / 1000
}

/// Wall-clock time in unix milliseconds.
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}
