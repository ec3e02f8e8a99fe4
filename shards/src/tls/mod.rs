//! TLS for the listeners: MQTT over TLS and HTTPS, with rustls (TLS 1.2 and 1.3, the ring
//! provider, no OpenSSL). It lives beside the listeners: a session sees a
//! [`crate::connection::Connection`], never rustls.
//!
//! - [`certs`]: the server certificate — loaded from the configured PEM files, or generated
//!   on first start (a private CA and a server certificate in the data dir, keys 0600).
//! - [`client_cert`]: X.509 device login — the MQTT listener asks for a client certificate
//!   (optional: SECRET devices log in with a password over TLS), checks that the client holds
//!   its key, and leaves the decision to the login, which matches its fingerprint.
//! - [`stream`]: the TLS connection over a glommio socket, and how it moves between shards.
//!
//! Invariants:
//! - One certificate serves both listeners. [`ServerTls::reload`] swaps the configurations
//!   every later handshake uses; connections already up keep theirs (nothing is dropped).
//! - No session tickets and no session cache: every connection does a full handshake, on
//!   whichever shard accepted it, so no shard needs another's resumption state.
//! - Key material is never logged: errors name files and reasons only.

pub mod certs;
pub mod client_cert;
pub mod stream;

use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::ServerConfig;

use self::certs::ServerCertificate;
use self::client_cert::AnyClientCertificate;

/// The TLS configurations of the two listeners, replaceable while the engine runs.
#[derive(Debug)]
pub struct ServerTls {
    mqtt: RwLock<Arc<ServerConfig>>,
    https: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    pub fn new(certificate: ServerCertificate) -> Result<ServerTls, rustls::Error> {
        let (mqtt, https) = configs(certificate)?;
        Ok(ServerTls { mqtt: RwLock::new(mqtt), https: RwLock::new(https) })
    }

    /// The configuration a new MQTT connection's handshake uses.
    pub fn mqtt(&self) -> Arc<ServerConfig> {
        self.mqtt.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// The configuration a new HTTPS connection's handshake uses.
    pub fn https(&self) -> Arc<ServerConfig> {
        self.https.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Serves `certificate` from the next handshake on.
    pub fn reload(&self, certificate: ServerCertificate) -> Result<(), rustls::Error> {
        let (mqtt, https) = configs(certificate)?;
        *self.mqtt.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = mqtt;
        *self.https.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = https;
        Ok(())
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The MQTT configuration (asks for an optional client certificate) and the HTTPS one.
fn configs(certificate: ServerCertificate) -> Result<(Arc<ServerConfig>, Arc<ServerConfig>), rustls::Error> {
    let provider = provider();
    let versions = &[&rustls::version::TLS13, &rustls::version::TLS12];
    let ServerCertificate { chain, key } = certificate;
    let mut mqtt = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)?
        .with_client_cert_verifier(AnyClientCertificate::new(provider.clone()))
        .with_single_cert(chain.clone(), key.clone_key())?;
    let mut https = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    for config in [&mut mqtt, &mut https] {
        config.send_tls13_tickets = 0;
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    }
    https.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(mqtt), Arc::new(https)))
}

/// Which listener a TLS figure is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsListener {
    Mqtt,
    Https,
}

/// One listener's TLS figures on one shard, for `/metrics`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TlsCounts {
    pub handshakes_ok: u64,
    /// Failed handshakes, indexed as [`stream::HandshakeFailure::LABELS`].
    pub handshakes_failed: [u64; 5],
    /// TLS connections open now (for MQTT: sessions on this shard, counted on the home shard).
    pub open: u64,
}

/// A shard's TLS figures (shard-local cells: only the shard's own thread touches them).
#[derive(Debug, Default)]
pub struct TlsMeter {
    mqtt: std::cell::Cell<TlsCounts>,
    https: std::cell::Cell<TlsCounts>,
}

impl TlsMeter {
    fn change(&self, listener: TlsListener, change: impl FnOnce(&mut TlsCounts)) {
        let cell = match listener {
            TlsListener::Mqtt => &self.mqtt,
            TlsListener::Https => &self.https,
        };
        let mut counts = cell.get();
        change(&mut counts);
        cell.set(counts);
    }

    pub fn handshake_done(&self, listener: TlsListener) {
        self.change(listener, |counts| counts.handshakes_ok += 1);
    }

    pub fn handshake_failed(&self, listener: TlsListener, failure: &stream::HandshakeFailure) {
        self.change(listener, |counts| counts.handshakes_failed[failure.index()] += 1);
    }

    pub fn opened(&self, listener: TlsListener) {
        self.change(listener, |counts| counts.open += 1);
    }

    pub fn closed(&self, listener: TlsListener) {
        self.change(listener, |counts| counts.open = counts.open.saturating_sub(1));
    }

    /// `(mqtt, https)`.
    pub fn counts(&self) -> (TlsCounts, TlsCounts) {
        (self.mqtt.get(), self.https.get())
    }
}
