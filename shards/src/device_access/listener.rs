//! The MQTT accept loop of one shard, and the hand-off of a connection to its home shard.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::time::Instant;

use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use protocol::mqtt::codec::{self, Connect, Packet};
use protocol::mqtt::login;
use protocol::routing::home_shard;

use super::{read_into, session, CONNECT_BYTES_MAX};
use crate::messages::{Adoption, Reply, Request};
use crate::registry::Shard;

/// A 3.1.1 CONNACK "server unavailable": what a connection over the per-shard bound gets
/// before it is closed, without reading its CONNECT.
const CONNACK_SERVER_UNAVAILABLE_V4: [u8; 4] = [0x20, 0x02, 0x00, 0x03];

/// Accepts until `stop` resolves.
pub async fn serve(shard: Rc<Shard>, listener: TcpListener, stop: impl std::future::Future<Output = ()>) {
    let accept_loop = async {
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(shard = shard.id(), %error, "accepting an MQTT connection");
                    glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            if !shard.connection_opened() {
                tracing::warn!(shard = shard.id(), "MQTT connection refused: the per-shard bound is reached");
                glommio::spawn_local(refuse(stream)).detach();
                continue;
            }
            let shard = shard.clone();
            glommio::spawn_local(async move {
                accept_one(&shard, stream).await;
            })
            .detach();
        }
    };
    futures_lite::future::or(accept_loop, stop).await;
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream.write_all(&CONNACK_SERVER_UNAVAILABLE_V4).await;
    let _ = stream.close().await;
}

/// Reads the CONNECT, then runs the session here or hands the socket to the home shard. The
/// connection count taken by `connection_opened` stays with this shard until the home shard
/// has taken the socket (and counted it there).
async fn accept_one(shard: &Rc<Shard>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let (buffer, connect) = match read_connect(shard, &mut stream).await {
        Ok(read) => read,
        Err(ConnectFailure { reason, answer }) => {
            tracing::debug!(shard = shard.id(), reason, "MQTT connection closed before login");
            if let Some(code) = answer {
                // An unsupported protocol level is answered in 3.1.1 form [MQTT-3.1.2-2].
                let mut out = BytesMut::new();
                codec::write_connack(codec::MqttVersion::V4, code, &mut out);
                let _ = stream.write_all(&out).await;
            }
            let _ = stream.close().await;
            shard.connection_closed();
            return;
        }
    };
    let device_id =
        login::device_id_of(&connect.client_id).or(connect.username.as_deref()).unwrap_or_default();
    let home = home_shard(device_id, shard.shard_count());
    if home == shard.id() {
        session::run(shard.clone(), stream, buffer, connect).await;
        return;
    }
    // SAFETY: the descriptor is open (owned by `stream`, which lives until after the dup) and
    // no read or write is in flight on it.
    let duplicate = unsafe { BorrowedFd::borrow_raw(stream.as_raw_fd()) }.try_clone_to_owned();
    drop(stream);
    let fd = match duplicate {
        Ok(fd) => fd,
        Err(error) => {
            tracing::warn!(shard = shard.id(), %error, "duplicating a socket for hand-off");
            shard.connection_closed();
            return;
        }
    };
    let adoption = Adoption { fd, buffered: buffer.to_vec(), connect };
    let reply = shard.call(home, Request::AdoptConnection(Box::new(adoption))).await;
    shard.connection_closed();
    if !matches!(reply, Reply::Done) {
        tracing::warn!(shard = shard.id(), home, ?reply, "hand-off refused; connection closed");
    }
}

/// Why no CONNECT was read, and the CONNACK to answer with, if any.
struct ConnectFailure {
    reason: String,
    answer: Option<codec::ConnectCode>,
}

impl From<String> for ConnectFailure {
    fn from(reason: String) -> Self {
        ConnectFailure { reason, answer: None }
    }
}

/// Reads until one complete CONNECT is buffered, within the connect timeout (in all, not per
/// read) and [`CONNECT_BYTES_MAX`]. Anything else first is a protocol error.
async fn read_connect(shard: &Shard, stream: &mut TcpStream) -> Result<(BytesMut, Connect), ConnectFailure> {
    let timeout = shard.device_access_config().connect_timeout;
    let deadline = Instant::now() + timeout;
    let mut buffer = BytesMut::new();
    loop {
        match codec::read_packet(&mut buffer, None, CONNECT_BYTES_MAX) {
            Ok(Some(Packet::Connect(connect))) => return Ok((buffer, connect)),
            Ok(Some(_)) => return Err(String::from("[MQTT-3.1.0-1] the first packet must be CONNECT").into()),
            Ok(None) => {}
            Err(error) => {
                return Err(ConnectFailure { answer: error.connack_code(), reason: error.to_string() });
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("no complete CONNECT within {timeout:?}").into());
        }
        stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let read = read_into(stream, &mut buffer).await.map_err(|e| e.to_string())?;
        if read == 0 {
            return Err(String::from("closed by the client").into());
        }
    }
}
