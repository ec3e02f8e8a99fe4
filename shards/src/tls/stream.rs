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
            match write_pending(&mut io, &mut conn, deadline).await {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::TimedOut => {
                    return Err((io, HandshakeFailure::TimedOut))
                }
                Err(error) => return Err((io, HandshakeFailure::Io(error.to_string()))),
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
                let processed = match conn.read_tls(&mut slice) {
                    // rustls takes nothing more after the client's close_notify: the rest is
                    // dropped (regression: this loop never emptied the slice and spun the
                    // shard).
                    Ok(0) => break,
                    Ok(_) => conn.process_new_packets().map(drop).map_err(|e| e.to_string()),
                    Err(error) => Err(error.to_string()),
                };
                if let Err(reason) = processed {
                    // The alert rustls queued for the client, if the socket takes it in time.
                    let _ = write_pending(&mut io, &mut conn, deadline).await;
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

/// Writes everything rustls has queued, waiting for the socket until `deadline` at most (a
/// client that does not read its handshake flight does not hold the connection longer).
async fn write_pending(io: &mut TcpStream, conn: &mut ServerConnection, deadline: Instant) -> io::Result<()> {
    while conn.wants_write() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        let mut out = Vec::new();
        conn.write_tls(&mut out)?;
        // The deadline races the write (a socket timeout would re-arm on every partial write).
        let deadline_passes = async {
            glommio::timer::sleep(left).await;
            Err(io::ErrorKind::TimedOut.into())
        };
        futures_lite::future::or(io.write_all(&out), deadline_passes).await?;
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

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::*;
    use crate::tls::certs;

    /// A server TLS configuration (asking for client certificates, as the MQTT listener does)
    /// and a client configuration trusting its CA, presenting `client_cert` if given.
    fn configs(
        client_cert: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
    ) -> (Arc<ServerConfig>, Arc<rustls::ClientConfig>) {
        let dir = tempfile::tempdir().unwrap();
        let files = certs::ensure_generated(dir.path(), &[]).unwrap();
        let server = crate::tls::ServerTls::new(certs::load(&files.cert, &files.key).unwrap()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&files.ca_cert).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots);
        let client = match client_cert {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        };
        (server.mqtt(), Arc::new(client))
    }

    /// Runs `serve` on a glommio executor of its own against one accepted connection; returns
    /// the address and a handle that yields what `serve` returned.
    fn server<T: Send + 'static>(
        serve: impl FnOnce(TcpStream) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
    ) -> (std::net::SocketAddr, std::thread::JoinHandle<T>) {
        let (ready, address) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            glommio::LocalExecutorBuilder::default().make().unwrap().run(async move {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                ready.send(listener.local_addr().unwrap()).unwrap();
                let stream = listener.accept().await.unwrap();
                serve(stream).await
            })
        });
        (address.recv().unwrap(), handle)
    }

    #[test]
    fn bytes_go_both_ways_through_a_split_stream_and_close_notify_ends_the_read_side() {
        let (server_config, client_config) = configs(None);
        let (address, handle) = server(move |stream| {
            Box::pin(async move {
                let now = Instant::now();
                let deadline = now + Duration::from_secs(5);
                let tls = TlsStream::accept(stream, server_config, deadline, deadline, || {}).await.unwrap();
                let (mut reader, mut writer) = futures_lite::io::split(tls);
                let mut request = [0u8; 5];
                futures_lite::AsyncReadExt::read_exact(&mut reader, &mut request).await.unwrap();
                writer.write_all(b"pong:").await.unwrap();
                writer.write_all(&request).await.unwrap();
                writer.flush().await.unwrap();
                let mut rest = Vec::new();
                futures_lite::AsyncReadExt::read_to_end(&mut reader, &mut rest).await.unwrap();
                writer.close().await.unwrap();
                rest
            })
        });
        let connection =
            rustls::ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut client = rustls::StreamOwned::new(connection, std::net::TcpStream::connect(address).unwrap());
        client.write_all(b"ping!").unwrap();
        let mut answer = [0u8; 10];
        client.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"pong:ping!");
        client.write_all(b"last words").unwrap();
        client.conn.send_close_notify();
        client.flush().unwrap();
        assert_eq!(handle.join().unwrap(), b"last words", "what came before close_notify is read, then EOF");
        let mut end = Vec::new();
        assert!(
            client.read_to_end(&mut end).is_ok(),
            "the server's close_notify ends the client's read cleanly"
        );
    }

    /// Regression: a final flight with one record larger than rustls takes while it is
    /// incomplete, then the rest with a close_notify and filler in one read, made the
    /// handshake loop spin on `read_tls` returning 0 and froze the shard.
    #[test]
    fn a_close_notify_in_the_final_flight_does_not_spin_the_handshake() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["device".to_owned()]).unwrap();
        let mut padding = vec![0x04, 0x82, 0x39, 0x08];
        padding.extend(std::iter::repeat_n(0x41u8, 0x3908));
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(&[1, 3, 6, 1, 4, 1, 99999, 1], padding));
        let cert = params.self_signed(&key).unwrap().der().clone();
        let (server_config, client_config) =
            configs(Some((cert, PrivateKeyDer::try_from(key.serialize_der()).unwrap())));
        let (address, handle) = server(move |stream| {
            Box::pin(async move {
                let deadline = Instant::now() + Duration::from_secs(3);
                TlsStream::accept(stream, server_config, deadline, deadline, || {})
                    .await
                    .map(drop)
                    .map_err(|(_, e)| e)
            })
        });
        let mut client =
            rustls::ClientConnection::new(client_config, ServerName::try_from("localhost").unwrap()).unwrap();
        let mut socket = std::net::TcpStream::connect(address).unwrap();
        let mut flight = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut flight).unwrap();
        }
        socket.write_all(&flight).unwrap();
        flight.clear();
        let mut chunk = [0u8; 8192];
        while client.is_handshaking() {
            let read = socket.read(&mut chunk).unwrap();
            assert!(read > 0, "the server closed during the handshake");
            let mut slice = &chunk[..read];
            while !slice.is_empty() {
                client.read_tls(&mut slice).unwrap();
                client.process_new_packets().unwrap();
            }
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
        }
        let big_record_end = flight.len();
        client.send_close_notify();
        while client.wants_write() {
            client.write_tls(&mut flight).unwrap();
        }
        flight.extend(std::iter::repeat_n(0u8, 4096));
        // Most of the certificate's record, a pause, then everything else in one go.
        let split = big_record_end.min(14_400);
        socket.write_all(&flight[..split]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        socket.write_all(&flight[split..]).unwrap();
        let started = std::time::Instant::now();
        while !handle.is_finished() {
            assert!(started.elapsed() < Duration::from_secs(6), "the handshake did not return: it spins");
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = handle.join().unwrap();
    }
}
