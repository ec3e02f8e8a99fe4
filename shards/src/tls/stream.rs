//! A TLS server connection over a glommio TCP stream, as a futures-io byte stream.
//!
//! rustls does the protocol in memory (`ServerConnection`); this type moves its records to and
//! from the socket. glommio's `poll_read`/`poll_write` first try a plain non-blocking
//! `recv`/`send` into the caller's buffer, so rustls reads and writes the socket directly
//! through [`SocketIo`] (no intermediate buffer, nothing held by glommio between polls).
//!
//! Invariants:
//! - [`TlsStream::accept`] returns only with the handshake complete, within the caller's
//!   deadline and [`HANDSHAKE_BYTES_MAX`] bytes from the client; anything else is an error
//!   that says why ([`HandshakeFailure`]).
//! - A read never writes: TLS records rustls wants to send while reading (a KeyUpdate answer,
//!   an alert) go out with the next write or flush, so a session's reader and writer — the
//!   two halves of one split stream — never wait on each other's socket direction.
//! - `poll_write` may leave encrypted bytes queued in rustls when the socket is full; they go
//!   out with the next write or `poll_flush`, and a writer that must not leave bytes behind
//!   flushes (the MQTT session's writer does after each packet; hyper always does).
//! - [`TlsStream::into_parts`] and [`TlsStream::from_parts`] let a connection move to
//!   another shard between two reads: the socket as a descriptor and rustls's state (which
//!   holds any record received but not yet read) as a `Send` value.

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// Most bytes a client may send before its handshake is complete: a ClientHello, a
/// certificate chain of a few certificates, its key exchange and Finished.
pub const HANDSHAKE_BYTES_MAX: usize = 64 * 1024;

/// Why a handshake did not complete. `label` is the metric's `reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeFailure {
    #[error("no complete handshake within the time allowed")]
    TimedOut,
    #[error("the client closed the connection during the handshake")]
    Closed,
    #[error("the handshake is larger than {HANDSHAKE_BYTES_MAX} bytes")]
    TooLarge,
    /// rustls refused what the client sent (not TLS, no common version or suite, a bad
    /// certificate or signature); the client got an alert if it could take one.
    #[error("TLS error: {0}")]
    Protocol(String),
    #[error("socket error: {0}")]
    Io(String),
}

impl HandshakeFailure {
    /// The metric's `reason` values, in [`HandshakeFailure::index`] order.
    pub const LABELS: [&'static str; 5] = ["timeout", "closed", "too_large", "protocol", "io"];

    pub fn index(&self) -> usize {
        match self {
            HandshakeFailure::TimedOut => 0,
            HandshakeFailure::Closed => 1,
            HandshakeFailure::TooLarge => 2,
            HandshakeFailure::Protocol(_) => 3,
            HandshakeFailure::Io(_) => 4,
        }
    }

    pub fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }
}

/// A server-side TLS connection (see the module doc).
#[derive(Debug)]
pub struct TlsStream {
    io: TcpStream,
    conn: ServerConnection,
    /// close_notify was queued (by `poll_close`).
    closing: bool,
}

impl TlsStream {
    /// Runs the server side of a handshake on `io` until it completes, the client fails it,
    /// a deadline passes — `first_byte_deadline` while the client has sent nothing, then
    /// `deadline` (checked by the socket's read timeout, which this leaves cleared) — or the
    /// client has sent more than [`HANDSHAKE_BYTES_MAX`] bytes. `first_byte` is called once,
    /// when the client's first bytes arrive.
    pub async fn accept(
        mut io: TcpStream,
        config: Arc<ServerConfig>,
        first_byte_deadline: Instant,
        deadline: Instant,
        mut first_byte: impl FnMut(),
    ) -> Result<TlsStream, (TcpStream, HandshakeFailure)> {
        let mut conn = match ServerConnection::new(config) {
            Ok(conn) => conn,
            Err(error) => return Err((io, HandshakeFailure::Protocol(error.to_string()))),
        };
        let mut received = 0usize;
        let mut buffer = [0u8; 4096];
        loop {
            if let Err(error) = write_pending(&mut io, &mut conn).await {
                return Err((io, HandshakeFailure::Io(error.to_string())));
            }
            if !conn.is_handshaking() {
                let _ = io.set_read_timeout(None);
                return Ok(TlsStream { io, conn, closing: false });
            }
            let left = if received == 0 { first_byte_deadline.min(deadline) } else { deadline }
                .saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err((io, HandshakeFailure::TimedOut));
            }
            if let Err(error) = io.set_read_timeout(Some(left)) {
                return Err((io, HandshakeFailure::Io(error.to_string())));
            }
            let read = match futures_lite::AsyncReadExt::read(&mut io, &mut buffer).await {
                Ok(0) => return Err((io, HandshakeFailure::Closed)),
                Ok(read) => read,
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    return Err((io, HandshakeFailure::TimedOut))
                }
                Err(error) => return Err((io, HandshakeFailure::Io(error.to_string()))),
            };
            if received == 0 {
                first_byte();
            }
            received += read;
            if received > HANDSHAKE_BYTES_MAX {
                return Err((io, HandshakeFailure::TooLarge));
            }
            let mut slice = &buffer[..read];
            while !slice.is_empty() {
                let taken = conn.read_tls(&mut slice);
                let processed = taken
                    .map_err(|e| e.to_string())
                    .and_then(|_| conn.process_new_packets().map(drop).map_err(|e| e.to_string()));
                if let Err(reason) = processed {
                    // The alert rustls queued for the client, if the socket takes it now.
                    let _ = write_pending(&mut io, &mut conn).await;
                    return Err((io, HandshakeFailure::Protocol(reason)));
                }
            }
        }
    }

    /// The socket and rustls's state, to move the connection to another shard.
    pub fn into_parts(self) -> (TcpStream, ServerConnection) {
        (self.io, self.conn)
    }

    /// A connection moved here from another shard (see [`TlsStream::into_parts`]).
    pub fn from_parts(io: TcpStream, conn: ServerConnection) -> TlsStream {
        TlsStream { io, conn, closing: false }
    }

    pub fn socket(&self) -> &TcpStream {
        &self.io
    }

    pub fn connection(&self) -> &ServerConnection {
        &self.conn
    }

    /// The protocol version agreed, as `tls1.2` / `tls1.3`.
    pub fn version_label(&self) -> &'static str {
        match self.conn.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "tls1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "tls1.2",
            _ => "tls",
        }
    }

    /// Writes what rustls has queued until the socket would block. `Ready(Ok(()))`: nothing
    /// is queued any more.
    fn poll_write_queued(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.conn.wants_write() {
            let written = self.conn.write_tls(&mut SocketIo { io: &mut self.io, cx });
            match written {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// Writes everything rustls has queued, waiting for the socket as needed.
async fn write_pending(io: &mut TcpStream, conn: &mut ServerConnection) -> io::Result<()> {
    while conn.wants_write() {
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        io.write_all(&out).await?;
    }
    Ok(())
}

/// The socket as the blocking `Read`/`Write` rustls expects: `Pending` becomes `WouldBlock`,
/// and the task's waker is registered with glommio.
struct SocketIo<'a, 'b> {
    io: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for SocketIo<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_read(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for SocketIo<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.io).poll_write(self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match this.conn.reader().read(buf) {
                // Ok(0) is the client's close_notify: a clean end of stream.
                Ok(read) => return Poll::Ready(Ok(read)),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                // UnexpectedEof: the socket closed without close_notify; a hang-up as well.
                Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(error) => return Poll::Ready(Err(error)),
            }
            let taken = this.conn.read_tls(&mut SocketIo { io: &mut this.io, cx });
            match taken {
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
                Err(error) => return Poll::Ready(Err(error)),
            }
            if let Err(error) = this.conn.process_new_packets() {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, error)));
            }
        }
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        // What an earlier write left queued goes first, so rustls's buffer stays small.
        match this.poll_write_queued(cx) {
            Poll::Ready(Ok(())) => {}
            Poll::Ready(Err(error)) => return Poll::Ready(Err(error)),
            Poll::Pending => return Poll::Pending,
        }
        let accepted = match this.conn.writer().write(buf) {
            Ok(accepted) => accepted,
            Err(error) => return Poll::Ready(Err(error)),
        };
        // The encrypted records go out now if the socket takes them, else with the next
        // write or flush; the plaintext is accepted either way.
        if let Poll::Ready(Err(error)) = this.poll_write_queued(cx) {
            return Poll::Ready(Err(error));
        }
        Poll::Ready(Ok(accepted))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match this.poll_write_queued(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_flush(cx),
            other => other,
        }
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.closing {
            this.conn.send_close_notify();
            this.closing = true;
        }
        match this.poll_write_queued(cx) {
            Poll::Ready(Ok(())) => Pin::new(&mut this.io).poll_close(cx),
            other => other,
        }
    }
}
