//! Device access over MQTT: every shard accepts, only the home shard logs a device in.
//!
//! - [`admission`]: the bounds on connections that have not logged in yet (a per-shard table
//!   of connections waiting for their CONNECT, oldest evicted first; first-byte timeout).
//! - [`close`]: why a session ended, said once at info.
//! - [`listener`]: the accept loop of a shard. It reads one complete CONNECT (bounded in size
//!   and time), finds the device's home shard from the clientId, and either runs the session
//!   here or hands the socket to the home shard over the mesh (dup the fd, drop the glommio
//!   stream, send `{fd, bytes already read, CONNECT}`; NOTES.md "Handing a socket").
//! - [`link`]: a live session's downlink, shared by its reader and by the shard (commands and
//!   property calls are published through it).
//! - [`downlink`]: what a session sends a device — delivery QoS (explicit or implicit
//!   subscription) and the bounded QoS 1 in-flight window.
//! - [`session`]: one device connection on its home shard: the IoTDA login, CONNACK, takeover
//!   of an older connection, keep-alive, PINGREQ, uplink PUBLISH with the topic ACL,
//!   SUBSCRIBE/UNSUBSCRIBE, DISCONNECT, and the device's ONLINE/OFFLINE status.
//!
//! Invariants:
//! - Only the home shard authenticates a device and owns its live session.
//! - A connection has one reader loop and one writer fed by a bounded queue; no read future is
//!   ever raced or dropped while bytes may be in flight (the keep-alive is the socket's own
//!   read timeout, and a takeover shuts the socket down so the reader sees EOF).
//! - A session's entry in the shard's live-session table is removed before its socket is
//!   closed, so a takeover never shuts down a reused file descriptor.

pub mod admission;
pub mod close;
pub mod downlink;
pub mod link;
pub mod listener;
pub mod session;

use std::sync::Arc;

use crate::listen::DescriptorBudget;

use bytes::BytesMut;
use std::time::Duration;

/// Limits and addresses of the MQTT side.
#[derive(Debug, Clone)]
pub struct DeviceAccessConfig {
    /// Time a client has, from connecting, to send a complete CONNECT.
    pub connect_timeout: Duration,
    /// Time a client has, from connecting, to send its first byte (shorter: a connection that
    /// sends nothing is a flood's, not a device's).
    pub first_byte_timeout: Duration,
    /// Connections of one shard that may wait for their CONNECT; one more evicts the oldest.
    pub connecting_per_shard_max: usize,
    /// The process-wide share of the open-files limit that MQTT connections may hold.
    pub connection_budget: Arc<DescriptorBudget>,
    /// Largest MQTT packet accepted (refused from its fixed header).
    pub packet_bytes_max: usize,
    /// Open MQTT connections per shard; more are closed at once.
    pub connections_per_shard_max: usize,
    /// Synchronous calls (commands, property set/get) waiting per device; more get 429.
    pub device_calls_in_flight_max: usize,
    /// How long a call the shard makes itself (desired properties) waits for the answer.
    pub device_call_timeout: Duration,
}

/// Bytes asked of the socket per read: device packets are mostly small, and a larger one just
/// takes several reads.
pub const SESSION_READ_BYTES: usize = 1024;

/// Reads what the socket has (up to [`SESSION_READ_BYTES`]) onto the end of `buffer`, without
/// a separate chunk: an idle session holds no read buffer of its own.
pub(crate) async fn read_into(
    reader: &mut (impl futures_lite::AsyncRead + Unpin),
    buffer: &mut BytesMut,
) -> std::io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + SESSION_READ_BYTES, 0);
    let result = futures_lite::AsyncReadExt::read(reader, &mut buffer[start..]).await;
    buffer.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// Gives back the memory of a buffer that grew for a large packet once it is drained: most
/// connections are idle most of the time, and their footprint is what bounds a fleet.
pub(crate) fn shrink_if_idle(buffer: &mut BytesMut) {
    if buffer.is_empty() && buffer.capacity() > 4 * SESSION_READ_BYTES {
        *buffer = BytesMut::new();
    }
}

/// Largest CONNECT accepted: clientId, username and password are ≤ 256 characters each
/// (spec §1.2), so a few KiB is generous.
pub const CONNECT_BYTES_MAX: usize = 16 * 1024;
