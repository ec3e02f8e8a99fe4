//! How the bench reaches a server: plain TCP, or TLS over it (`--tls`).
//!
//! An [`Endpoint`] is an address and, for TLS, the client configuration and the name the
//! server's certificate must carry. [`Endpoint::connect`] (or [`Endpoint::secure`] on a socket
//! the caller set up itself, as the fleet does to choose its source address) gives a
//! [`Connection`] that reads and writes the same either way, so the fleet, the REST clients and
//! the broker clients have one code path for both transports.
//!
//! TLS is rustls with the ring provider; the server's certificate is verified against the CA
//! given (`--tls-ca`, or the one the engine the bench started generated) and must name the
//! host the bench dialled. TLS 1.3 and 1.2 are both offered unless `--tls-version` pins one,
//! so 1.3 is what a modern server negotiates. **Every connection makes a full handshake:**
//! session resumption is off (`Resumption::disabled()`), so each login costs what a device's
//! first login costs — the figure to size a reconnect storm with — not the cheaper resumed one.
//!
//! # Invariants
//!
//! - Whoever waits for an answer has flushed its request first ([`Connection::send`]): rustls
//!   may keep encrypted bytes when the socket would block, and `write_all` alone leaves them
//!   there.
//! - One TLS client configuration per run, shared by every connection to every server; only
//!   the record of the negotiated version is per server ([`TlsClient::for_another_server`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context as TaskContext, Poll};

use anyhow::{bail, Context};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ProtocolVersion, RootCertStore, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// A TLS version the bench can be told to offer alone (`--tls-version`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TlsVersion {
    #[value(name = "1.2")]
    Tls12,
    #[value(name = "1.3")]
    Tls13,
}

/// The client side of TLS for one run: roots, versions, no resumption.
#[derive(Debug)]
pub struct TlsClient {
    config: Arc<ClientConfig>,
    /// What the first completed handshake with this server negotiated: `"1.2"` or `"1.3"`.
    negotiated: OnceLock<&'static str>,
}

impl TlsClient {
    /// Trusts the certificates in `ca_pem`; offers `version` alone, or 1.3 and 1.2.
    pub fn new(ca_pem: &[u8], version: Option<TlsVersion>) -> anyhow::Result<TlsClient> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_slice_iter(ca_pem) {
            roots.add(certificate.context("reading the CA PEM")?).context("adding a CA certificate")?;
        }
        if roots.is_empty() {
            bail!("the CA PEM holds no certificate");
        }
        let versions: &[&'static SupportedProtocolVersion] = match version {
            None => &[&rustls::version::TLS13, &rustls::version::TLS12],
            Some(TlsVersion::Tls12) => &[&rustls::version::TLS12],
            Some(TlsVersion::Tls13) => &[&rustls::version::TLS13],
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.resumption = Resumption::disabled();
        Ok(TlsClient { config: Arc::new(config), negotiated: OnceLock::new() })
    }

    /// The same configuration, recording the version another server negotiates.
    pub fn for_another_server(&self) -> TlsClient {
        TlsClient { config: self.config.clone(), negotiated: OnceLock::new() }
    }

    /// `"1.3"` or `"1.2"` once a handshake has completed.
    pub fn negotiated_version(&self) -> Option<&'static str> {
        self.negotiated.get().copied()
    }

    async fn handshake(
        &self,
        server_name: ServerName<'static>,
        tcp: TcpStream,
    ) -> io::Result<TlsStream<TcpStream>> {
        let stream = TlsConnector::from(self.config.clone()).connect(server_name, tcp).await?;
        if self.negotiated.get().is_none() {
            let version = match stream.get_ref().1.protocol_version() {
                Some(ProtocolVersion::TLSv1_3) => "1.3",
                Some(ProtocolVersion::TLSv1_2) => "1.2",
                _ => "?",
            };
            let _ = self.negotiated.set(version);
        }
        Ok(stream)
    }
}

/// The certificate check's name for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> anyhow::Result<ServerName<'static>> {
    ServerName::try_from(host.to_owned())
        .map_err(|_| anyhow::anyhow!("{host:?} is not a valid TLS server name"))
}

#[derive(Debug, Clone)]
struct TlsPeer {
    client: Arc<TlsClient>,
    server_name: ServerName<'static>,
}

/// A server address and how to speak to it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub address: SocketAddr,
    tls: Option<TlsPeer>,
}

impl Endpoint {
    pub fn tcp(address: SocketAddr) -> Endpoint {
        Endpoint { address, tls: None }
    }

    pub fn tls(address: SocketAddr, server_name: ServerName<'static>, client: Arc<TlsClient>) -> Endpoint {
        Endpoint { address, tls: Some(TlsPeer { client, server_name }) }
    }

    /// Another server reached the same way: same TLS configuration and certificate name
    /// (the baseline broker serves the engine's certificate), its own negotiated version.
    pub fn same_transport_to(&self, address: SocketAddr) -> Endpoint {
        let tls = self.tls.as_ref().map(|peer| TlsPeer {
            client: Arc::new(peer.client.for_another_server()),
            server_name: peer.server_name.clone(),
        });
        Endpoint { address, tls }
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The negotiated TLS version (`"1.3"`, `"1.2"`); `None` over TCP or before a handshake.
    pub fn tls_version(&self) -> Option<&'static str> {
        self.tls.as_ref()?.client.negotiated_version()
    }

    /// `tcp`, `tls1.3`, `tls1.2` (`tls` before any handshake completed).
    pub fn transport_label(&self) -> String {
        transport_label(self.is_tls(), self.tls_version())
    }

    /// A new connection with TCP_NODELAY, handshaken when TLS.
    pub async fn connect(&self) -> io::Result<Connection> {
        let tcp = TcpStream::connect(self.address).await?;
        tcp.set_nodelay(true)?;
        self.secure(tcp).await
    }

    /// Wraps a connected socket: TLS handshake or nothing.
    pub async fn secure(&self, tcp: TcpStream) -> io::Result<Connection> {
        match &self.tls {
            None => Ok(Connection::Tcp(tcp)),
            Some(peer) => {
                let stream = peer.client.handshake(peer.server_name.clone(), tcp).await?;
                Ok(Connection::Tls(Box::new(stream)))
            }
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tls {
            None => write!(formatter, "{}", self.address),
            Some(peer) => {
                write!(formatter, "{} (TLS, certificate for {})", self.address, peer.server_name.to_str())
            }
        }
    }
}

/// `tcp` or `tls{version}`: how reports name a transport.
pub fn transport_label(tls: bool, tls_version: Option<&str>) -> String {
    match (tls, tls_version) {
        (false, _) => "tcp".to_owned(),
        (true, Some(version)) => format!("tls{version}"),
        (true, None) => "tls".to_owned(),
    }
}

/// One connection, plain or TLS; reads and writes the same way.
#[derive(Debug)]
pub enum Connection {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    /// Writes all of `bytes` and flushes them to the socket.
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.write_all(bytes).await?;
        self.flush().await
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(stream) => Pin::new(stream).poll_read(context, buffer),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_read(context, buffer),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        context: &mut TaskContext<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Tcp(stream) => Pin::new(stream).poll_write(context, bytes),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_write(context, bytes),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(stream) => Pin::new(stream).poll_flush(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(context),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, context: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Tcp(stream) => Pin::new(stream).poll_shutdown(context),
            Connection::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(context),
        }
    }
}

/// A server's certificate chain and key, PEM, as the Mosquitto baseline serves them.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl fmt::Debug for ServerIdentity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ServerIdentity")
            .field("cert_chain_pem_bytes", &self.cert_chain_pem.len())
            .finish_non_exhaustive()
    }
}

impl ServerIdentity {
    pub fn read(cert_chain: &std::path::Path, key: &std::path::Path) -> anyhow::Result<ServerIdentity> {
        Ok(ServerIdentity {
            cert_chain_pem: std::fs::read(cert_chain)
                .with_context(|| format!("reading {}", cert_chain.display()))?,
            key_pem: std::fs::read(key).with_context(|| format!("reading {}", key.display()))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{HandshakeKind, ServerConfig};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::*;

    /// A throwaway CA and a server certificate it signed for localhost, 127.0.0.1 and ::1,
    /// made once per test run (no key is checked in): `(ca, chain, key)` as PEM.
    fn test_pki() -> &'static (Vec<u8>, Vec<u8>, Vec<u8>) {
        static PKI: std::sync::OnceLock<(Vec<u8>, Vec<u8>, Vec<u8>)> = std::sync::OnceLock::new();
        PKI.get_or_init(|| {
            let ca_key = rcgen::KeyPair::generate().unwrap();
            let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            ca_params.distinguished_name.push(rcgen::DnType::CommonName, "bench test CA");
            let ca = ca_params.self_signed(&ca_key).unwrap();
            let issuer = rcgen::Issuer::new(ca_params, &ca_key);
            let key = rcgen::KeyPair::generate().unwrap();
            let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
            let leaf = rcgen::CertificateParams::new(names).unwrap().signed_by(&key, &issuer).unwrap();
            let chain = format!("{}{}", leaf.pem(), ca.pem());
            (ca.pem().into_bytes(), chain.into_bytes(), key.serialize_pem().into_bytes())
        })
    }

    /// A rustls server as willing to resume as a server gets by default (session cache, TLS 1.3
    /// tickets) that echoes 4 bytes per connection and reports each handshake's kind and version.
    async fn echo_server(
        connections: usize,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<(HandshakeKind, ProtocolVersion)>>) {
        let chain = CertificateDer::pem_slice_iter(&test_pki().1).collect::<Result<Vec<_>, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_slice(&test_pki().2).unwrap();
        let config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            for _ in 0..connections {
                let (tcp, _) = listener.accept().await.unwrap();
                let Ok(mut stream) = acceptor.accept(tcp).await else { continue };
                let (_, session) = stream.get_ref();
                seen.push((session.handshake_kind().unwrap(), session.protocol_version().unwrap()));
                let mut ping = [0; 4];
                stream.read_exact(&mut ping).await.unwrap();
                stream.write_all(&ping).await.unwrap();
                stream.flush().await.unwrap();
            }
            seen
        });
        (address, server)
    }

    /// Connects twice through `client` and returns what the server saw.
    async fn two_logins(client: TlsClient) -> (Vec<(HandshakeKind, ProtocolVersion)>, Option<&'static str>) {
        let (address, server) = echo_server(2).await;
        let endpoint = Endpoint::tls(address, server_name("127.0.0.1").unwrap(), Arc::new(client));
        for _ in 0..2 {
            let mut connection = endpoint.connect().await.unwrap();
            connection.send(b"ping").await.unwrap();
            let mut pong = [0; 4];
            connection.read_exact(&mut pong).await.unwrap();
            assert_eq!(&pong, b"ping");
        }
        (server.await.unwrap(), endpoint.tls_version())
    }

    #[tokio::test]
    async fn every_connection_is_a_full_handshake() {
        for (version, expected) in [
            (None, ProtocolVersion::TLSv1_3),
            (Some(TlsVersion::Tls13), ProtocolVersion::TLSv1_3),
            (Some(TlsVersion::Tls12), ProtocolVersion::TLSv1_2),
        ] {
            let (seen, negotiated) = two_logins(TlsClient::new(&test_pki().0, version).unwrap()).await;
            assert_eq!(seen, vec![(HandshakeKind::Full, expected); 2], "{version:?}");
            let label = if expected == ProtocolVersion::TLSv1_3 { "1.3" } else { "1.2" };
            assert_eq!(negotiated, Some(label));
        }
    }

    #[tokio::test]
    async fn the_test_server_would_resume_a_client_that_asked() {
        let client = TlsClient::new(&test_pki().0, None).unwrap();
        let mut config = (*client.config).clone();
        config.resumption = Resumption::default();
        let resuming = TlsClient { config: Arc::new(config), negotiated: OnceLock::new() };
        let (seen, _) = two_logins(resuming).await;
        assert_eq!(seen[1].0, HandshakeKind::Resumed);
    }

    #[tokio::test]
    async fn a_certificate_for_another_name_is_refused() {
        let (address, server) = echo_server(1).await;
        let client = Arc::new(TlsClient::new(&test_pki().0, None).unwrap());
        let wrong_name = Endpoint::tls(address, server_name("example.com").unwrap(), client);
        assert!(wrong_name.connect().await.is_err());
        assert_eq!(server.await.unwrap(), vec![]);
    }

    #[test]
    fn transports_are_labelled_with_the_negotiated_version() {
        assert_eq!(transport_label(false, None), "tcp");
        assert_eq!(transport_label(true, Some("1.3")), "tls1.3");
        assert_eq!(transport_label(true, Some("1.2")), "tls1.2");
        assert_eq!(transport_label(true, None), "tls");
    }

    #[test]
    fn a_ca_pem_without_certificates_is_refused() {
        assert!(TlsClient::new(b"not a certificate", None).is_err());
    }

    #[test]
    fn server_names_may_be_addresses_or_dns_names() {
        assert!(matches!(server_name("127.0.0.1").unwrap(), ServerName::IpAddress(_)));
        assert!(matches!(server_name("localhost").unwrap(), ServerName::DnsName(_)));
        assert!(server_name("not a name").is_err());
    }
}
