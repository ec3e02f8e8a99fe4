//! The MQTT accept loops of one shard (plain and TLS), and the hand-off of a connection to
//! its home shard.
//!
//! A TLS connection is handshaken here, on the accepting shard (the device id is inside the
//! TLS stream): the handshake counts as waiting for the CONNECT — same waiting table, same
//! first-byte and connect timeouts, at most `tls::stream::HANDSHAKE_BYTES_MAX` bytes — and a
//! failed one is counted by reason and logged at debug. Then the CONNECT is read through TLS,
//! and the socket moves to the home shard with rustls's state beside it.

use std::os::fd::{AsRawFd, BorrowedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_lite::AsyncWriteExt;
use glommio::net::{TcpListener, TcpStream};
use protocol::mqtt::codec::{self, Connect, Packet};
use protocol::mqtt::login;
use protocol::routing::home_shard;

use super::admission::{self, Admission, Waiting};
use super::{read_into, session, CONNECT_BYTES_MAX};
use crate::connection::Connection;
use crate::listen::{self, AcceptBackoff, BudgetSlot, DescriptorBudget};
use crate::messages::{Adoption, Reply, Request};
use crate::registry::Shard;
use crate::tls::stream::TlsStream;
use crate::tls::{ServerTls, TlsListener};

/// A 3.1.1 CONNACK "server unavailable": what a connection over the per-shard bound gets
/// before it is closed, without reading its CONNECT.
const CONNACK_SERVER_UNAVAILABLE_V4: [u8; 4] = [0x20, 0x02, 0x00, 0x03];

/// Accepts until `stop` resolves; with `tls`, every connection starts with a TLS handshake. A
/// connection gets a slot of the process-wide MQTT budget and a place among the shard's
/// connections waiting for a CONNECT (see [`super::admission`]); with no slot or no room on
/// the shard it is answered CONNACK 3 (in the clear; a TLS client sees a failed handshake)
/// and closed at once.
pub async fn serve(
    shard: Rc<Shard>,
    listener: TcpListener,
    tls: Option<Arc<ServerTls>>,
    stop: impl std::future::Future<Output = ()>,
) {
    let config = shard.device_access_config();
    let admission = shard.admission();
    let accept_loop = async {
        let mut backoff = AcceptBackoff::default();
        loop {
            let stream = match listener.accept().await {
                Ok(stream) => stream,
                Err(error) => {
                    listen::after_failed_accept("MQTT", shard.id(), &mut backoff, error).await;
                    continue;
                }
            };
            backoff.succeeded();
            match admit(&shard, &config.connection_budget, &admission) {
                Some(slot) => {
                    let waiting = admission.enter(stream.as_raw_fd());
                    if admission::has_bytes_waiting(stream.as_raw_fd()) {
                        waiting.started();
                    }
                    let (shard, tls) = (shard.clone(), tls.clone());
                    glommio::spawn_local(async move {
                        accept_one(&shard, stream, waiting, slot, tls).await;
                    })
                    .detach();
                }
                None => {
                    admission.count(|counts| counts.refused_full += 1);
                    tracing::debug!(
                        shard = shard.id(),
                        "MQTT connection refused: the connection bound is reached"
                    );
                    glommio::spawn_local(refuse(stream)).detach();
                }
            }
            // glommio accepts without waiting while the backlog holds connections: let the rest
            // of the shard (and the new connection's task) run between two accepts.
            futures_lite::future::yield_now().await;
        }
    };
    futures_lite::future::or(accept_loop, stop).await;
}

/// A process-wide budget slot and a place in the shard's connection count for a new
/// connection. When the budget is spent but connections wait for their CONNECT, the oldest of
/// them makes room (its slot comes back as soon as its task sees the shutdown).
fn admit(shard: &Shard, budget: &Arc<DescriptorBudget>, admission: &Admission) -> Option<BudgetSlot> {
    let slot = match budget.take() {
        Some(slot) => slot,
        None if admission.evict_oldest() => budget.take_in_place_of_evicted(),
        None => return None,
    };
    shard.connection_opened().then_some(slot)
}

async fn refuse(mut stream: TcpStream) {
    let _ = stream.write_all(&CONNACK_SERVER_UNAVAILABLE_V4).await;
    let _ = stream.close().await;
}

/// Runs the TLS handshake (with `tls`), reads the CONNECT, then runs the session here or hands
/// the socket to the home shard. The connection count taken by `connection_opened` stays
/// with this shard until the home shard has taken the socket (and counted it there); the
/// budget slot travels with the socket.
async fn accept_one(
    shard: &Rc<Shard>,
    stream: TcpStream,
    waiting: Waiting,
    slot: BudgetSlot,
    tls: Option<Arc<ServerTls>>,
) {
    let _ = stream.set_nodelay(true);
    let started = Instant::now();
    let mut stream = match tls {
        None => Connection::Plain(stream),
        Some(tls) => match handshake(shard, stream, &tls, &waiting, started).await {
            Ok(stream) => Connection::Tls(Box::new(stream)),
            Err(stream) => {
                // Out of the waiting table before the descriptor is closed.
                drop(waiting);
                drop(stream);
                shard.connection_closed();
                return;
            }
        },
    };
    let mut read = read_connect(shard, &mut stream, &waiting, started).await;
    if waiting.was_evicted() {
        // Its socket is shut down: even a CONNECT read in full cannot be answered.
        read = Err(EVICTED.to_owned().into());
    }
    // Out of the waiting table before the descriptor can be closed or handed over.
    drop(waiting);
    let (buffer, connect) = match read {
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
        session::run(shard.clone(), stream, buffer, connect, slot).await;
        return;
    }
    let (stream, tls) = match stream {
        Connection::Plain(stream) => (stream, None),
        Connection::Tls(stream) => {
            let (stream, tls) = stream.into_parts();
            (stream, Some(Box::new(tls)))
        }
    };
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
    let adoption = Adoption { fd, buffered: buffer.to_vec(), connect, slot, tls };
    let reply = shard.call(home, Request::AdoptConnection(Box::new(adoption))).await;
    shard.connection_closed();
    if !matches!(reply, Reply::Done) {
        tracing::warn!(shard = shard.id(), home, ?reply, "hand-off refused; connection closed");
    }
}

/// The server side of a TLS handshake, within the first-byte and connect timeouts counted
/// from `started`; if it failed (counted, logged at debug) the socket comes back, for the
/// caller to close once the connection has left the waiting table.
async fn handshake(
    shard: &Shard,
    stream: TcpStream,
    tls: &ServerTls,
    waiting: &Waiting,
    started: Instant,
) -> Result<TlsStream, TcpStream> {
    let config = shard.device_access_config();
    let deadline = started + config.connect_timeout;
    let first_byte_deadline = started + config.first_byte_timeout;
    let peer = stream.peer_addr().ok();
    let accepted =
        TlsStream::accept(stream, tls.mqtt(), first_byte_deadline, deadline, || waiting.started()).await;
    let meter = shard.tls_meter();
    match accepted {
        Ok(stream) => {
            meter.handshake_done(TlsListener::Mqtt);
            Ok(stream)
        }
        Err((stream, failure)) => {
            meter.handshake_failed(TlsListener::Mqtt, &failure);
            tracing::debug!(shard = shard.id(), ?peer, reason = %failure, "MQTT TLS handshake failed");
            Err(stream)
        }
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

/// Why a connection shut down by [`super::admission`] to make room for a newer one ended.
const EVICTED: &str = "evicted: the oldest of the connections waiting for a CONNECT, to make room";

/// Reads until one complete CONNECT is buffered, within the connect timeout (in all, not per
/// read) and [`CONNECT_BYTES_MAX`]; the first byte must come within the shorter first-byte
/// timeout. Anything else first is a protocol error.
async fn read_connect(
    shard: &Shard,
    stream: &mut Connection,
    waiting: &Waiting,
    started: Instant,
) -> Result<(BytesMut, Connect), ConnectFailure> {
    let config = shard.device_access_config();
    let timeout = config.connect_timeout;
    let deadline = started + timeout;
    // A TLS client has spoken already (its handshake): only the connect timeout applies.
    let spoke = stream.is_tls();
    let first_byte_deadline = started + config.first_byte_timeout.min(timeout);
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
        let silent = buffer.is_empty() && !spoke;
        let left =
            if silent { first_byte_deadline } else { deadline }.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out(shard, silent, config.first_byte_timeout, timeout));
        }
        // The deadline races the read (rather than being the socket's read timeout, which
        // every byte re-arms): a TLS record trickled in byte by byte would otherwise hold the
        // connection for as long as the record is long. The connection closes on a timeout,
        // so dropping the read is safe.
        let deadline_passes = async {
            glommio::timer::sleep(left).await;
            Err(std::io::ErrorKind::TimedOut.into())
        };
        let read = match futures_lite::future::or(read_into(stream, &mut buffer), deadline_passes).await {
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {
                return Err(timed_out(shard, silent, config.first_byte_timeout, timeout));
            }
            Err(error) => return Err(error.to_string().into()),
        };
        if read == 0 {
            return Err(String::from("closed by the client").into());
        }
        if silent {
            waiting.started();
        }
    }
}

/// Counts a connection that ran out of time before its CONNECT, and says which clock ran out.
fn timed_out(shard: &Shard, silent: bool, first_byte: Duration, connect: Duration) -> ConnectFailure {
    let admission = shard.admission();
    if silent {
        admission.count(|counts| counts.silent_timeouts += 1);
        format!("sent nothing within {} ms", first_byte.as_millis()).into()
    } else {
        admission.count(|counts| counts.connect_timeouts += 1);
        format!("no complete CONNECT within {} ms", connect.as_millis()).into()
    }
}
