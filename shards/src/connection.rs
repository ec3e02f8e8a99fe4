//! A device's connection as the MQTT code sees it: plain TCP or TLS, one byte stream either
//! way. Everything about TLS stays in [`crate::tls`]; the session only asks what it needs for
//! the login (was it TLS, which client certificate) and the socket for its timeouts.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{AsyncRead, AsyncWrite};
use glommio::net::TcpStream;

use crate::tls::client_cert::PresentedCertificate;
use crate::tls::stream::TlsStream;

/// A device connection: the socket, with TLS over it or not.
#[derive(Debug)]
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// How a connection reached the engine: what the login may require of it.
#[derive(Debug, Clone, Default)]
pub struct Transport {
    pub tls: bool,
    /// The client certificate presented in the TLS handshake, if any and well-formed.
    pub client_certificate: Option<PresentedCertificate>,
}

impl Connection {
    pub fn socket(&self) -> &TcpStream {
        match self {
            Connection::Plain(stream) => stream,
            Connection::Tls(stream) => stream.socket(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Connection::Tls(_))
    }

    /// What the login needs to know of the transport.
    pub fn transport(&self) -> Transport {
        match self {
            Connection::Plain(_) => Transport::default(),
            Connection::Tls(stream) => Transport {
                tls: true,
                client_certificate: stream
                    .connection()
                    .peer_certificates()
                    .and_then(|chain| chain.first())
                    .and_then(|leaf| PresentedCertificate::from_der(leaf.as_ref()).ok()),
            },
        }
    }

    /// The socket's read timeout (glommio's, checked on every read of the byte stream).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_read_timeout(timeout).map_err(io::Error::from)
    }

    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket().set_write_timeout(timeout).map_err(io::Error::from)
    }

    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.socket().set_nodelay(nodelay).map_err(io::Error::from)
    }
}

impl AsRawFd for Connection {
    fn as_raw_fd(&self) -> RawFd {
        self.socket().as_raw_fd()
    }
}

impl AsyncRead for Connection {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            Connection::Tls(stream) => Pin::new(&mut **stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            Connection::Tls(stream) => Pin::new(&mut **stream).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_flush(cx),
            Connection::Tls(stream) => Pin::new(&mut **stream).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(stream) => Pin::new(stream).poll_close(cx),
            Connection::Tls(stream) => Pin::new(&mut **stream).poll_close(cx),
        }
    }
}
